package lifecycle

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"takedown/pkg/database"
	"takedown/pkg/keyring"
)

// Rewrap wraps every stored data key that is not under the current master
// key under it, in batches, each batch one transaction, so that intake keeps
// serving meanwhile. It returns how many keys it rewrapped. A key under a
// master key no longer configured fails the batch: put the old key back
// into MASTER_KEYS until the rotation is done.
func (m *Manager) Rewrap(ctx context.Context) (int, error) {
	total := 0
	for {
		n := 0
		err := database.InTx(ctx, m.pool, func(tx pgx.Tx) error {
			n = 0
			rows, err := tx.Query(ctx, `SELECT id::text, data_key_id, data_key FROM reports
				WHERE data_key IS NOT NULL AND data_key_id <> $1 LIMIT 100 FOR UPDATE SKIP LOCKED`, m.keys.CurrentID())
			if err != nil {
				return err
			}
			type row struct {
				id string
				w  keyring.WrappedKey
			}
			list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
				var x row
				return x, r.Scan(&x.id, &x.w.MasterKeyID, &x.w.Ciphertext)
			})
			if err != nil {
				return err
			}
			for _, x := range list {
				nw, err := m.keys.Rewrap(x.id, x.w)
				if err != nil {
					return fmt.Errorf("rewrap data key of report %s: %w", x.id, err)
				}
				if _, err := tx.Exec(ctx, `UPDATE reports SET data_key_id = $2, data_key = $3 WHERE id = $1`, x.id, nw.MasterKeyID, nw.Ciphertext); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, nil
		}
	}
}

// KeyUse is how many stored data keys a master key wraps, and whether the
// keyring holds it.
type KeyUse struct {
	MasterKeyID string `json:"master_key_id"`
	DataKeys    int    `json:"data_keys"`
	Configured  bool   `json:"configured"`
	Current     bool   `json:"current"`
}

// KeysInUse lists every master key that wraps a stored data key, and every
// configured key (with 0 when it wraps none: it can be retired from
// intake). A key in use that is not configured means data that cannot be
// read until the key is restored.
func (m *Manager) KeysInUse(ctx context.Context) ([]KeyUse, error) {
	rows, err := m.pool.Query(ctx, `SELECT data_key_id, count(*) FROM reports WHERE data_key IS NOT NULL GROUP BY 1 ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("keys in use: %w", err)
	}
	used := map[string]int{}
	var ids []string
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, err
		}
		used[id] = n
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys in use: %w", err)
	}
	configured := map[string]bool{}
	for _, id := range m.keys.IDs() {
		configured[id] = true
		if _, ok := used[id]; !ok {
			ids = append(ids, id)
		}
	}
	out := make([]KeyUse, 0, len(ids))
	for _, id := range ids {
		out = append(out, KeyUse{MasterKeyID: id, DataKeys: used[id], Configured: configured[id], Current: id == m.keys.CurrentID()})
	}
	return out, nil
}
