package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Connection is an NCMEC environment's state as the reporter's /status
// check last found it (ncmec.connection; states as in pkg/ncmec).
type Connection struct {
	Environment string
	State       string
	Detail      string
	Since       time.Time // when it entered State
	CheckedAt   time.Time
}

// ApplyConnection records c within tx unless a later check is already
// recorded: the consumer handles events concurrently, and replicas of the
// reporter announce on their own. Since is kept while the state stays.
func ApplyConnection(ctx context.Context, tx pgx.Tx, c Connection) error {
	_, err := tx.Exec(ctx, `INSERT INTO ncmec_connections AS cur (environment, state, detail, since, checked_at)
		VALUES ($1, $2, $3, $4, $4)
		ON CONFLICT (environment) DO UPDATE SET state = excluded.state, detail = excluded.detail,
			checked_at = excluded.checked_at,
			since = CASE WHEN cur.state = excluded.state THEN cur.since ELSE excluded.since END
		WHERE cur.checked_at < excluded.checked_at`,
		c.Environment, c.State, c.Detail, c.CheckedAt)
	if err != nil {
		return fmt.Errorf("record NCMEC connection of %s: %w", c.Environment, err)
	}
	return nil
}

// Connections returns every environment's last known state, production
// first.
func (s *Store) Connections(ctx context.Context) ([]Connection, error) {
	rows, err := s.pool.Query(ctx, `SELECT environment, state, detail, since, checked_at FROM ncmec_connections
		ORDER BY environment <> 'production', environment`)
	if err != nil {
		return nil, fmt.Errorf("read NCMEC connections: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Connection])
	if err != nil {
		return nil, fmt.Errorf("read NCMEC connections: %w", err)
	}
	return out, nil
}
