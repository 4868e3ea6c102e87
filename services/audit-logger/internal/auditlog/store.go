package auditlog

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"takedown/pkg/database"
	pb "takedown/pkg/proto/takedown/v1"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations create the log, its chain head and the triggers that keep it
// append-only, in the service's schema.
var Migrations = database.Migrations{Name: "auditlog", FS: migrationFiles}

// Querier is what reads need: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Append adds env as the next entry of the chain within tx (refused: why
// the consumer refused it, "" if it did not), unless an entry
// for the same event exists already (then it returns ok=false). The chain
// head's row lock orders concurrent appends, so seqs are gap-free and each
// entry links to the one committed before it.
func Append(ctx context.Context, tx pgx.Tx, env *pb.Envelope, streamSeq uint64, now time.Time, refused string) (e Entry, ok bool, err error) {
	// Two round trips per event (every event of the system passes here):
	// read the head, locked, then insert the entry and move the head in one
	// statement.
	var headSeq int64
	var headHash []byte
	if err := tx.QueryRow(ctx, `SELECT seq, hash FROM chain_head FOR UPDATE`).Scan(&headSeq, &headHash); err != nil {
		return Entry{}, false, fmt.Errorf("audit append %s: chain head: %w", env.EventId, err)
	}
	e, err = NewEntry(headSeq, headHash, env, streamSeq, now, refused)
	if err != nil {
		return Entry{}, false, err
	}
	var occurred *time.Time
	if !e.OccurredAt.IsZero() {
		occurred = &e.OccurredAt
	}
	// An entry for the same event (event_id is unique) leaves the log and
	// its head as they are: ON CONFLICT sees committed rows, not only this
	// transaction's snapshot, so a duplicate is never a second entry.
	tag, err := tx.Exec(ctx, `WITH added AS (INSERT INTO entries (seq, event_id, type, report_id, actor_kind, actor_id, actor_name,
		occurred_at, recorded_at, stream_seq, refused, content, prev_hash, hash, actor_email)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (event_id) DO NOTHING RETURNING seq, hash)
		UPDATE chain_head SET seq = added.seq, hash = added.hash FROM added`,
		e.Seq, e.EventID, e.Type, e.ReportID, e.Actor.Kind, e.Actor.ID, e.Actor.Name,
		occurred, e.RecordedAt, int64(e.StreamSeq), e.Refused, e.Content, e.PrevHash, e.Hash, e.Actor.Email)
	if err != nil {
		return Entry{}, false, fmt.Errorf("audit append %s: %w", env.EventId, err)
	}
	if tag.RowsAffected() == 0 {
		return Entry{}, false, nil // logged already
	}
	return e, true, nil
}

const columns = `seq, event_id::text, type, report_id, actor_kind, actor_id, actor_name,
	occurred_at, recorded_at, stream_seq, refused, content, prev_hash, hash, actor_email`

func scan(rows pgx.CollectableRow) (Entry, error) {
	var e Entry
	var occurred *time.Time
	var streamSeq int64
	err := rows.Scan(&e.Seq, &e.EventID, &e.Type, &e.ReportID, &e.Actor.Kind, &e.Actor.ID, &e.Actor.Name,
		&occurred, &e.RecordedAt, &streamSeq, &e.Refused, &e.Content, &e.PrevHash, &e.Hash, &e.Actor.Email)
	if occurred != nil {
		e.OccurredAt = occurred.UTC()
	}
	e.RecordedAt = e.RecordedAt.UTC()
	e.StreamSeq = uint64(streamSeq)
	return e, err
}

// List returns up to limit entries with seq > after, oldest first; only
// those about reportID when it is not empty.
func List(ctx context.Context, q Querier, reportID string, after int64, limit int) ([]Entry, error) {
	rows, err := q.Query(ctx, `SELECT `+columns+` FROM entries
		WHERE seq > $1 AND ($2 = '' OR report_id = $2) ORDER BY seq LIMIT $3`, after, reportID, limit)
	if err != nil {
		return nil, fmt.Errorf("audit list: %w", err)
	}
	out, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("audit list: %w", err)
	}
	return out, nil
}

// Head returns the chain head: the last entry's seq and hash.
func Head(ctx context.Context, q Querier) (int64, []byte, error) {
	var seq int64
	var hash []byte
	if err := q.QueryRow(ctx, `SELECT seq, hash FROM chain_head`).Scan(&seq, &hash); err != nil {
		return 0, nil, fmt.Errorf("audit chain head: %w", err)
	}
	return seq, hash, nil
}

// Verify walks the whole chain in batches of batch entries, within one
// read-only snapshot so that entries appended meanwhile neither confuse it
// nor make it run forever, and returns the first entry that does not verify.
func Verify(ctx context.Context, db database.Beginner, batch int) (Result, error) {
	if batch <= 0 {
		batch = 1000
	}
	var res Result
	tx, err := db.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	// Read-only: rolled back whatever happens.
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`); err != nil {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	headSeq, headHash, err := Head(ctx, tx)
	if err != nil {
		return res, err
	}
	w := NewWalker(headSeq, headHash)
	after := int64(-1 << 62) // entries with seq <= 0 would be forged; the walk must see them
	for {
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM entries WHERE seq > $1 ORDER BY seq LIMIT $2`, after, batch)
		if err != nil {
			return res, fmt.Errorf("audit verify: %w", err)
		}
		n := 0
		for rows.Next() {
			e, err := scan(rows)
			if err != nil {
				rows.Close()
				return res, fmt.Errorf("audit verify: %w", err)
			}
			w.Add(e)
			after = e.Seq
			n++
		}
		if err := rows.Err(); err != nil {
			return res, fmt.Errorf("audit verify: %w", err)
		}
		if n < batch {
			return w.Finish(), nil
		}
	}
}
