package database

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/backoff"
)

// A Channel names a LISTEN/NOTIFY channel. It is asked on the listening
// connection, so that a name may depend on the connection's schema.
type Channel func(ctx context.Context, conn *pgx.Conn) (string, error)

// Named is the channel called name.
func Named(name string) Channel {
	return func(context.Context, *pgx.Conn) (string, error) { return name, nil }
}

// The waits before listening again after the listening connection failed:
// soon after a blip, seldom while the database stays down.
const (
	relistenMin = 100 * time.Millisecond
	relistenMax = 5 * time.Second
)

// Listen calls wake after every notification on channel until ctx ends.
// When the listening connection fails (the database restarted, the backend
// was terminated) it listens again on a new one, after a backoff. A
// notification sent meanwhile is lost, so callers also poll: a lost
// notification delays work rather than losing it.
func Listen(ctx context.Context, pool *pgxpool.Pool, channel Channel, wake func(), log *slog.Logger) {
	failures := 0
	for {
		listened, err := listen(ctx, pool, channel, wake)
		if ctx.Err() != nil {
			return
		}
		if listened {
			failures = 0
		}
		delay := backoff.Delay(failures, relistenMin, relistenMax)
		failures++
		log.Debug("listen failed; polling until it is back", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// listen listens on one connection until it fails, and says whether it got
// as far as listening.
func listen(ctx context.Context, pool *pgxpool.Pool, channel Channel, wake func()) (listened bool, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Release()
	name, err := channel(ctx, conn.Conn())
	if err != nil {
		return false, err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{name}.Sanitize()); err != nil {
		return false, err
	}
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			// The connection may be unusable now; keep it out of the pool.
			conn.Hijack().Close(context.WithoutCancel(ctx))
			return true, err
		}
		wake()
	}
}
