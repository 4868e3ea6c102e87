// Command intake takes staff's reports and their evidence files, stores them
// encrypted, and announces each report to the other services (DESIGN.md §1).
//
// "intake expire [-dry-run]", "intake rewrap" and "intake keys" run the
// evidence lifecycle's one-off commands instead (docs/operator-guide.md).
package main

import (
	"context"
	"os"

	"takedown/pkg/service"
	"takedown/services/intake/internal/app"
)

func main() {
	if len(os.Args) > 1 && app.Commands[os.Args[1]] {
		service.Main(app.Name, func(ctx context.Context) error { return app.Command(ctx, os.Args[1:], os.Stdout) })
		return
	}
	service.Main(app.Name, service.Serve(app.LoadConfig, app.New))
}
