package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"takedown/pkg/config"
	"takedown/pkg/logging"
)

// Commands are the operator's one-off commands (docs/operator-guide.md):
// "intake expire [-dry-run]", "intake rewrap", "intake keys". They use the
// service's configuration and database; their events go to the outbox, and
// the running intake publishes them.
var Commands = map[string]bool{"expire": true, "rewrap": true, "keys": true}

// Command runs one command and writes its result as JSON to out.
func Command(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("intake "+args[0], flag.ContinueOnError)
	dryRun := fs.Bool("dry-run", false, "expire: list what would be deleted, delete nothing")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	l := config.FromEnv()
	cfg := LoadConfig(l)
	if err := l.Err(); err != nil {
		return err
	}
	a, err := New(ctx, cfg, logging.FromContext(ctx))
	if err != nil {
		return err
	}
	defer a.Close()
	var result any
	switch args[0] {
	case "expire":
		result, err = a.Lifecycle.Expire(ctx, *dryRun)
	case "rewrap":
		var n int
		n, err = a.Lifecycle.Rewrap(ctx)
		result = map[string]int{"rewrapped": n}
	case "keys":
		result, err = a.Lifecycle.KeysInUse(ctx)
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	if err != nil {
		return fmt.Errorf("intake %s: %w", args[0], err)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(result)
}
