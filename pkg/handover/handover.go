// Package handover decides, per report, which service may act on its open
// NCMEC submission: ncmec-reporter finishing it or the retraction service
// retracting it. The two must never overlap: a retraction that has begun is
// never followed by a finish, and a finish that has begun is never retracted
// halfway.
//
// The state lives in the JetStream key-value bucket TAKEDOWN_FILINGS, keyed
// by our report id and filing number (Key: a report filed again after a
// retraction is a new NCMEC report with a handover of its own), and changes only by compare-and-swap on the key's
// revision, so whichever service swaps first wins and the other sees the
// winner's state:
//
//	(none) ──reporter──▶ filing ──reporter──▶ finishing ──reporter──▶ finished
//	                        │
//	                        └──retraction──▶ retracting ──retraction──▶ retracted
//
// The reporter claims filing→finishing before /finish and stops filing when
// it finds retracting or retracted; the retraction service claims
// filing→retracting and answers 409 when it finds finishing or finished.
// One exception: a filing that failed after claiming finishing (NCMEC
// refused /finish) is never resumed, so the retraction service, told of the
// failure, takes finishing→retracting; NCMEC answers 5102 should the
// finish have gone through after all.
// When the bucket is unreachable, Claim fails and the caller waits: nobody
// finishes or retracts without holding the claim.
package handover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket holding every report's state.
const Bucket = "TAKEDOWN_FILINGS"

// State is a report's handover state.
type State string

// States. None is a report the bucket does not know yet.
const (
	None       State = ""
	Filing     State = "filing"
	Finishing  State = "finishing"
	Finished   State = "finished"
	Retracting State = "retracting"
	Retracted  State = "retracted"
)

func (s State) valid() bool {
	switch s {
	case Filing, Finishing, Finished, Retracting, Retracted:
		return true
	}
	return false
}

// Config describes the bucket.
type Config struct {
	Replicas int // 1 on one machine, 3 in a cluster
}

// Store reads and swaps states. It binds the bucket on first use, so that a
// service starting while NATS is away still starts; it is safe for
// concurrent use.
type Store struct {
	js  jetstream.JetStream
	cfg Config

	mu sync.Mutex
	kv jetstream.KeyValue
}

// New returns a Store over js.
func New(js jetstream.JetStream, cfg Config) *Store {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	return &Store{js: js, cfg: cfg}
}

func (s *Store) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "who may act on a report's open NCMEC submission (pkg/handover)",
		History:     8, // the recent transitions, for whoever investigates
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("handover: bucket %s: %w", Bucket, err)
	}
	s.kv = kv
	return kv, nil
}

// Key names one filing of a report in the bucket.
func Key(reportID string, filing int) string { return fmt.Sprintf("%s.%d", reportID, filing) }

// Get returns the filing's state (None when unknown); key is Key(report, filing).
func (s *Store) Get(ctx context.Context, reportID string) (State, error) {
	st, _, err := s.get(ctx, reportID)
	return st, err
}

func (s *Store) get(ctx context.Context, reportID string) (State, uint64, error) {
	kv, err := s.bucket(ctx)
	if err != nil {
		return None, 0, err
	}
	e, err := kv.Get(ctx, reportID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return None, 0, nil
	}
	if err != nil {
		return None, 0, fmt.Errorf("handover: get %s: %w", reportID, err)
	}
	return State(e.Value()), e.Revision(), nil
}

// Claim moves the report to state to if its current state is one of from
// (None included when listed), atomically. It returns ok when this call made
// the change, and the state it found otherwise. An error means the bucket
// could not be read or written: the caller knows nothing and must not act.
func (s *Store) Claim(ctx context.Context, reportID string, from []State, to State) (ok bool, current State, err error) {
	if !to.valid() {
		return false, None, fmt.Errorf("handover: %q is not a state", to)
	}
	kv, err := s.bucket(ctx)
	if err != nil {
		return false, None, err
	}
	for {
		cur, rev, err := s.get(ctx, reportID)
		if err != nil {
			return false, None, err
		}
		if !slices.Contains(from, cur) {
			return false, cur, nil
		}
		if rev == 0 {
			_, err = kv.Create(ctx, reportID, []byte(to))
		} else {
			_, err = kv.Update(ctx, reportID, []byte(to), rev)
		}
		switch {
		case err == nil:
			return true, to, nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			// Someone else swapped first: look again at what they left.
			if ctx.Err() != nil {
				return false, None, ctx.Err()
			}
			continue
		default:
			return false, None, fmt.Errorf("handover: %s %s→%s: %w", reportID, cur, to, err)
		}
	}
}
