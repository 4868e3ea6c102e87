// Command audit-logger records every takedown event in an append-only,
// hash-chained audit log and serves it to auditors (DESIGN.md §1, §8).
//
//	audit-logger          run the service
//	audit-logger verify   walk the chain once; exit 0 when it verifies,
//	                      1 when an entry does not, 2 when it cannot be read
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"takedown/pkg/service"
	"takedown/services/audit-logger/internal/app"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "verify" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := app.Verify(ctx, os.LookupEnv, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	service.Main(app.Name, service.Serve(app.LoadConfig, app.New))
}
