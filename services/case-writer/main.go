// Command case-writer records each report as a Salesforce Case with one
// child record per file, and keeps the case's NCMEC state up to date
// (DESIGN.md §1). It never sends media: only metadata and hashes.
package main

import (
	"context"

	"takedown/pkg/config"
	"takedown/pkg/logging"
	"takedown/pkg/service"
	"takedown/services/case-writer/internal/app"
)

func main() { service.Main(app.Name, run) }

func run(ctx context.Context) error {
	l := config.FromEnv()
	cfg := app.LoadConfig(l)
	if err := l.Err(); err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, logging.FromContext(ctx))
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := a.Listen()
	if err != nil {
		return err
	}
	return a.Run(ctx, ln)
}
