package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"takedown/pkg/config"
	"takedown/pkg/database"
	"takedown/services/audit-logger/internal/auditlog"
)

// Exit codes of the verify command.
const (
	VerifyOK    = 0
	VerifyBad   = 1
	VerifyError = 2
)

// Verify is the `audit-logger verify` command: it walks the chain in the
// database of DATABASE_URL, writes the result as JSON to stdout
// ({"ok":true,"entries":N} or the first bad entry) and returns VerifyOK,
// VerifyBad, or VerifyError when it could not walk the chain at all.
//
// It reads in one read-only transaction as the login user (it needs no
// writer role) and applies no migrations: verifying changes nothing.
func Verify(ctx context.Context, lookup config.LookupFunc, stdout, stderr io.Writer) int {
	l := config.New(lookup)
	url := l.Secret("DATABASE_URL", config.Required)
	batch := l.Int("VERIFY_BATCH", 1000, 1, 1_000_000)
	if err := l.Err(); err != nil {
		fmt.Fprintln(stderr, err)
		return VerifyError
	}
	pool, err := database.Open(ctx, url.Reveal(), Schema)
	if err != nil {
		fmt.Fprintln(stderr, "verify:", err)
		return VerifyError
	}
	defer pool.Close()
	res, err := auditlog.Verify(ctx, pool, batch)
	if err != nil {
		fmt.Fprintln(stderr, "verify:", err)
		return VerifyError
	}
	b, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(b))
	if !res.OK {
		return VerifyBad
	}
	return VerifyOK
}
