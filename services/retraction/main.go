// Command retraction retracts NCMEC reports that were opened but could not
// be finished, and lets staff retract by hand (DESIGN.md §1, §8).
package main

import (
	"context"

	"takedown/pkg/config"
	"takedown/pkg/logging"
	"takedown/pkg/service"
	"takedown/services/retraction/internal/app"
)

func main() { service.Main("retraction", run) }

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
