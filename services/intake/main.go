// Command intake takes staff's reports and their evidence files, stores them
// encrypted, and announces each report to the other services (DESIGN.md §1).
package main

import (
	"context"

	"takedown/pkg/config"
	"takedown/pkg/logging"
	"takedown/pkg/service"
	"takedown/services/intake/internal/app"
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
