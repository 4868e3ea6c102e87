// Command ncmec-reporter files every submitted report with NCMEC's
// CyberTipline: submit, upload and describe each file, finish, resuming from
// its records after any crash (DESIGN.md §1, README.md).
package main

import (
	"context"
	"log/slog"

	"takedown/pkg/service"
	"takedown/services/ncmec-reporter/internal/app"
)

func main() {
	service.Main(app.Name, service.Serve(app.LoadConfig, open))
}

// open is app.New without the test options.
func open(ctx context.Context, cfg app.Config, log *slog.Logger) (*app.App, error) {
	return app.New(ctx, cfg, log)
}
