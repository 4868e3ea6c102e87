package lifecycle

import (
	"context"
)

// Rewrap wraps every stored data key that is not under the current master
// key under it, in batches, each batch one transaction, so that intake keeps
// serving meanwhile. It returns how many keys it rewrapped. A key under a
// master key no longer configured fails the batch: put the old key back
// into MASTER_KEYS until the rotation is done.
func (m *Manager) Rewrap(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := m.store.RewrapDataKeys(ctx, m.keys.CurrentID(), m.keys.Rewrap)
		total += n
		if err != nil || n == 0 {
			return total, err
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
	counts, err := m.store.DataKeysInUse(ctx)
	if err != nil {
		return nil, err
	}
	used := map[string]int{}
	var ids []string
	for _, c := range counts {
		used[c.MasterKeyID] = c.DataKeys
		ids = append(ids, c.MasterKeyID)
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
