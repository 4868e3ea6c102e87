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

// Record is an event to append: refused says why the consumer refused it,
// "" if it did not.
type Record struct {
	Event     *pb.Envelope
	StreamSeq uint64
	Refused   string
}

// Append adds the records, in their order, as the next entries of the chain
// within tx, leaving out those whose event has an entry already, and returns
// the entries added. The chain head's row lock orders concurrent appends, so
// seqs are gap-free and each entry links to the one before it.
//
// Two statements however many records (every event of the system passes
// here): read the head, locked, with which of the events are logged
// already; then insert the entries and move the head in one statement. An
// entry committed by another writer while this one waited for the lock is
// not in the first statement's snapshot: the insert then fails on the
// unique event id, and the consumer's retry sees it.
func Append(ctx context.Context, tx pgx.Tx, recs []Record, now time.Time) ([]Entry, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.Event.EventId
	}
	var headSeq int64
	var headHash []byte
	var logged []int64 // 1-based positions in recs
	if err := tx.QueryRow(ctx, `SELECT seq, hash, ARRAY(SELECT u.i FROM unnest($1::uuid[]) WITH ORDINALITY AS u (id, i)
			JOIN entries e ON e.event_id = u.id)
		FROM chain_head FOR UPDATE`, ids).Scan(&headSeq, &headHash, &logged); err != nil {
		return nil, fmt.Errorf("audit append %s…: chain head: %w", ids[0], err)
	}
	skip := make(map[int]bool, len(logged))
	for _, i := range logged {
		skip[int(i)-1] = true
	}
	var added []Entry
	var cols entryColumns
	for i, r := range recs {
		if skip[i] {
			continue
		}
		e, err := NewEntry(headSeq, headHash, r.Event, r.StreamSeq, now, r.Refused)
		if err != nil {
			return nil, err
		}
		headSeq, headHash = e.Seq, e.Hash
		added = append(added, e)
		cols.add(e)
	}
	if len(added) == 0 {
		return nil, nil // logged already
	}
	// The head moves once, to the last entry: the triggers let each entry
	// link to the one inserted before it in the same statement.
	_, err := tx.Exec(ctx, `WITH added AS (INSERT INTO entries (seq, event_id, type, report_id, actor_kind, actor_id, actor_name,
			occurred_at, recorded_at, stream_seq, refused, content, prev_hash, hash, actor_email)
		SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::timestamptz[], $9::timestamptz[], $10::bigint[], $11::text[], $12::bytea[], $13::bytea[], $14::bytea[], $15::text[])
		RETURNING seq, hash)
		UPDATE chain_head SET seq = last.seq, hash = last.hash
		FROM (SELECT seq, hash FROM added ORDER BY seq DESC LIMIT 1) AS last`,
		cols.seq, cols.eventID, cols.typ, cols.reportID, cols.actorKind, cols.actorID, cols.actorName,
		cols.occurred, cols.recorded, cols.streamSeq, cols.refused, cols.content, cols.prevHash, cols.hash, cols.actorEmail)
	if err != nil {
		return nil, fmt.Errorf("audit append %s…: %w", added[0].EventID, err)
	}
	return added, nil
}

// entryColumns holds entries column by column, for one multi-row insert.
type entryColumns struct {
	seq, streamSeq                                        []int64
	eventID, typ, reportID, actorKind, actorID, actorName []string
	refused, actorEmail                                   []string
	occurred                                              []*time.Time
	recorded                                              []time.Time
	content, prevHash, hash                               [][]byte
}

func (c *entryColumns) add(e Entry) {
	var occurred *time.Time
	if !e.OccurredAt.IsZero() {
		occurred = &e.OccurredAt
	}
	c.seq = append(c.seq, e.Seq)
	c.eventID = append(c.eventID, e.EventID)
	c.typ = append(c.typ, e.Type)
	c.reportID = append(c.reportID, e.ReportID)
	c.actorKind = append(c.actorKind, e.Actor.Kind)
	c.actorID = append(c.actorID, e.Actor.ID)
	c.actorName = append(c.actorName, e.Actor.Name)
	c.occurred = append(c.occurred, occurred)
	c.recorded = append(c.recorded, e.RecordedAt)
	c.streamSeq = append(c.streamSeq, int64(e.StreamSeq))
	c.refused = append(c.refused, e.Refused)
	c.content = append(c.content, e.Content)
	c.prevHash = append(c.prevHash, e.PrevHash)
	c.hash = append(c.hash, e.Hash)
	c.actorEmail = append(c.actorEmail, e.Actor.Email)
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
