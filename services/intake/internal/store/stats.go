package store

import (
	"context"
	"time"
)

// Stats are the figures of intake's scrape-time gauges.
type Stats struct {
	ByStatus map[string]int // reports by overall status
	// OldestUnfinished is the age of the oldest report that is being filed
	// or is owed something (the attention queue, attention.go: failed,
	// retracted and not filed again, case failed...). Zero when none.
	OldestUnfinished time.Duration
}

// Stats counts reports by status and finds the oldest unfinished one.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{ByStatus: map[string]int{}}
	rows, err := s.pool.Query(ctx, `SELECT status, count(*),
			coalesce(extract(epoch FROM now() - min(submitted_at) FILTER (WHERE `+mayNeedAttention+`)), 0)::float8
		FROM reports GROUP BY status`)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			status string
			n      int
			oldest float64
		)
		if err := rows.Scan(&status, &n, &oldest); err != nil {
			return st, err
		}
		st.ByStatus[status] = n
		if d := time.Duration(oldest * float64(time.Second)); d > st.OldestUnfinished {
			st.OldestUnfinished = d
		}
	}
	return st, rows.Err()
}
