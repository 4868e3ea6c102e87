package web

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The header's attention count is loaded once per attentionCacheFor however
// many pages are shown, loaded again after it, and a failed load keeps the
// last count rather than dropping it from the header.
func TestAttentionCountIsCachedForAFewSeconds(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	loads, next, fail := 0, 3, false
	c := &countCache{ttl: attentionCacheFor, now: func() time.Time { return now },
		load: func(context.Context) (int, error) {
			loads++
			if fail {
				return 0, errors.New("database down")
			}
			return next, nil
		}}
	ctx := context.Background()
	for range 100 {
		if n, ok := c.get(ctx); n != 3 || !ok {
			t.Fatalf("count %d, %v; want 3, true", n, ok)
		}
	}
	if loads != 1 {
		t.Fatalf("100 page views loaded the count %d times, want 1", loads)
	}
	now = now.Add(attentionCacheFor - time.Millisecond)
	next = 4
	if n, _ := c.get(ctx); n != 3 || loads != 1 {
		t.Errorf("within the cache time: count %d after %d loads, want 3 after 1", n, loads)
	}
	now = now.Add(time.Millisecond)
	if n, _ := c.get(ctx); n != 4 || loads != 2 {
		t.Errorf("after the cache time: count %d after %d loads, want 4 after 2", n, loads)
	}
	now, fail = now.Add(attentionCacheFor), true
	if n, ok := c.get(ctx); n != 4 || !ok {
		t.Errorf("failed load: count %d, %v; want the last count 4, true", n, ok)
	}
	if n, ok := (&countCache{ttl: time.Second, now: time.Now, load: c.load}).get(ctx); n != 0 || ok {
		t.Errorf("failed first load: %d, %v; want 0, false", n, ok)
	}
}
