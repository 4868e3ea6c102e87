package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"takedown/pkg/database"
	"takedown/pkg/logging"
	"takedown/pkg/metrics"
)

// Relay publishes a schema's outbox rows to JetStream.
type Relay struct {
	pool      *pgxpool.Pool
	js        jetstream.JetStream
	log       *slog.Logger
	batch     int
	poll      time.Duration
	linger    time.Duration
	keep      time.Duration
	published *prometheus.CounterVec

	// afterPublish runs after a batch was published and before it is marked;
	// an error aborts the batch as a crash there would. Tests only.
	afterPublish func() error
}

// RelayOptions tune a Relay; zero values take the defaults.
type RelayOptions struct {
	Batch int           // rows per transaction (default 100)
	Poll  time.Duration // fallback poll when no notification arrives (default 1s)
	Keep  time.Duration // how long published rows are kept (default 7 days)
	// Linger is how long a wake-up waits for more rows before it publishes
	// (default 10ms, negative: not at all): the events of many transactions
	// then share one pass, four statements, instead of a pass each.
	Linger time.Duration
}

// NewRelay returns a relay for the outbox in pool's search_path schema.
func NewRelay(pool *pgxpool.Pool, js jetstream.JetStream, m *metrics.Factory, log *slog.Logger, o RelayOptions) *Relay {
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Keep <= 0 {
		o.Keep = 7 * 24 * time.Hour
	}
	if o.Linger == 0 {
		o.Linger = 10 * time.Millisecond
	}
	r := &Relay{pool: pool, js: js, log: log, batch: o.Batch, poll: o.Poll, linger: max(o.Linger, 0), keep: o.Keep,
		published: m.Counter("outbox_published_total", "Outbox rows published, by result.", "result")}
	m.QueryGauge("outbox_lag_seconds", "Age of the oldest unpublished outbox row (0 when none).", nil, func(ctx context.Context) (float64, error) {
		age, _, err := Lag(ctx, pool)
		return age.Seconds(), err
	})
	m.QueryGauge("outbox_pending", "Unpublished outbox rows.", nil, func(ctx context.Context) (float64, error) {
		_, n, err := Lag(ctx, pool)
		return float64(n), err
	})
	return r
}

// Lag returns the age of the oldest unpublished row and how many there are.
func Lag(ctx context.Context, pool *pgxpool.Pool) (time.Duration, int64, error) {
	var secs float64
	var n int64
	err := pool.QueryRow(ctx, `SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8, count(*)
		FROM outbox WHERE published_at IS NULL`).Scan(&secs, &n)
	return time.Duration(secs * float64(time.Second)), n, err
}

// Run publishes until ctx ends. It wakes on the commit notification of Add
// and, in case a notification is missed (the listening connection dropped),
// every poll interval.
func (r *Relay) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	go database.Listen(ctx, r.pool, schemaChannel, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}, r.log.With("listen", "outbox"))
	lastPrune := time.Time{}
	for {
		for {
			n, err := r.publishBatch(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.published.WithLabelValues("error").Inc()
				r.log.Warn("outbox relay: publish failed; will retry", logging.KeyErr, err)
				break
			}
			if n < r.batch {
				break
			}
		}
		if time.Since(lastPrune) > time.Hour {
			if _, err := r.pool.Exec(ctx, `DELETE FROM outbox WHERE published_at < now() - $1::interval`, r.keep.String()); err != nil && ctx.Err() == nil {
				r.log.Warn("outbox relay: prune failed", logging.KeyErr, err)
			}
			lastPrune = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			// Rows committed meanwhile join this pass; their wake-ups,
			// delivered before the pass reads the outbox, are spent.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(r.linger):
			}
			select {
			case <-wake:
			default:
			}
		case <-time.After(r.poll):
		}
	}
}

// schemaChannel is the outbox channel of the listening connection's schema.
func schemaChannel(ctx context.Context, conn *pgx.Conn) (string, error) {
	var name string
	err := conn.QueryRow(ctx, `SELECT `+channelSQL).Scan(&name)
	return name, err
}

// publishBatch publishes up to r.batch rows in id order and marks them. An
// advisory lock per schema keeps replicas from publishing the same schema's
// rows concurrently, which would break their order.
func (r *Relay) publishBatch(ctx context.Context) (int, error) {
	n := 0
	err := database.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		// The lock is taken once, in the statement that reads the rows
		// (a CTE with a volatile function is evaluated once): no rows
		// when another replica's relay holds it.
		rows, err := tx.Query(ctx, `WITH relay AS (SELECT pg_try_advisory_xact_lock(hashtext('takedown.outbox.' || current_schema())) AS mine)
			SELECT id, event_id::text, subject, payload FROM outbox, relay
			WHERE relay.mine AND published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE OF outbox SKIP LOCKED`, r.batch)
		if err != nil {
			return err
		}
		type row struct {
			id      int64
			eventID string
			subject string
			payload []byte
		}
		var batch []row
		for rows.Next() {
			var x row
			if err := rows.Scan(&x.id, &x.eventID, &x.subject, &x.payload); err != nil {
				return err
			}
			batch = append(batch, x)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		// Publish asynchronously (one connection keeps them in order) and
		// wait for every acknowledgement before marking any row.
		futures := make([]jetstream.PubAckFuture, len(batch))
		ids := make([]int64, len(batch))
		for i, x := range batch {
			msg := nats.NewMsg(x.subject)
			msg.Data = x.payload
			msg.Header.Set(jetstream.MsgIDHeader, x.eventID)
			f, err := r.js.PublishMsgAsync(msg)
			if err != nil {
				return fmt.Errorf("publish %s: %w", x.eventID, err)
			}
			futures[i], ids[i] = f, x.id
		}
		timeout := time.After(10 * time.Second)
		for i, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("publish %s: %w", batch[i].eventID, err)
			case <-timeout:
				return fmt.Errorf("publish %s: no acknowledgement within 10s", batch[i].eventID)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if r.afterPublish != nil {
			if err := r.afterPublish(); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox SET published_at = now() WHERE id = ANY($1)`, ids); err != nil {
			return err
		}
		n = len(batch)
		r.published.WithLabelValues("ok").Add(float64(n))
		return nil
	})
	return n, err
}
