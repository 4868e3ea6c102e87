// Package outbox publishes events through a transactional outbox
// (DESIGN.md §3): Add writes an event in the caller's transaction, and the
// Relay publishes committed rows to JetStream in order, with the event id as
// Nats-Msg-Id, and marks them sent.
//
// A crash between publishing and marking republishes the row; the stream's
// duplicate window makes that a no-op, and consumers' inbox tables make it
// harmless after the window.
package outbox

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"takedown/pkg/database"
	"takedown/pkg/events"
	pb "takedown/pkg/proto/takedown/v1"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the outbox table in a service's schema.
var Migrations = database.Migrations{Name: "outbox", FS: migrationFiles}

// Add stores env in the outbox within tx, and wakes the relay when tx commits.
// The table is the one in the connection's search_path: the service's schema.
func Add(ctx context.Context, tx pgx.Tx, env *pb.Envelope) error {
	b, err := events.Marshal(env)
	if err != nil {
		return fmt.Errorf("outbox add %s: %w", env.Type, err)
	}
	// One round trip: every event of every service passes here. NOTIFY is
	// delivered at commit and folded per transaction.
	if _, err := tx.Exec(ctx, `WITH added AS (INSERT INTO outbox (event_id, subject, payload) VALUES ($1, $2, $3) RETURNING 1)
		SELECT pg_notify(`+channelSQL+`, '') FROM added`,
		env.EventId, events.Subject(env.Type), b); err != nil {
		return fmt.Errorf("outbox add %s: %w", env.Type, err)
	}
	return nil
}

// channelSQL names the notification channel per schema, so that relays of
// different services sharing one database wake only for their own rows.
const channelSQL = `'takedown_outbox_' || current_schema()`
