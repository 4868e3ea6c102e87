// Command ncmec-reporter files every submitted report with NCMEC's
// CyberTipline: submit, upload and describe each file, finish, resuming from
// its records after any crash (DESIGN.md §1, README.md).
package main

import (
	"context"

	"takedown/pkg/config"
	"takedown/pkg/logging"
	"takedown/pkg/service"
	"takedown/services/ncmec-reporter/internal/app"
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
