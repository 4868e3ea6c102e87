package filing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// The hand-over decides, per filing, which service may act on its open
// NCMEC report: ncmec-reporter finishing it or the retraction service
// retracting it. The two never overlap: a retraction that has begun is
// never followed by a finish, and a finish that has begun is never retracted
// halfway.
//
// The claim lives in the JetStream key-value bucket TAKEDOWN_FILINGS, one
// key per filing (a report filed again is a new NCMEC report with a claim of
// its own), and changes only by compare-and-swap, so whichever service
// swaps first wins and the other sees the winner's claim:
//
//	(none) ──Opened──▶ filing ──ClaimFinish──▶ finishing ──Finished──▶ finished
//	                      │
//	                      └──ClaimRetract──▶ retracting ──Retracted──▶ retracted
//	                                                    └─FinishedAtNCMEC─▶ finished
//
// One exception: a filing that failed after claiming finishing (NCMEC
// refused /finish) is never resumed, so ClaimRetract after that failure
// takes finishing→retracting; NCMEC answers 5102 should the finish have gone
// through after all. When the bucket is unreachable, a claim fails and the
// caller waits: nobody finishes or retracts without holding it.

// Bucket is the key-value bucket holding every filing's claim.
const Bucket = "TAKEDOWN_FILINGS"

// claim is a filing's state in the bucket.
type claim string

const (
	unclaimed  claim = ""
	filing     claim = "filing"
	finishing  claim = "finishing"
	finished   claim = "finished"
	retracting claim = "retracting"
	retracted  claim = "retracted"
)

// ErrRetracting means the retraction service holds the filing: the
// reporter must stop.
var ErrRetracting = errors.New("the retraction service has taken the filing over")

// HandoverConfig describes the bucket.
type HandoverConfig struct {
	Replicas int // 1 on one machine, 3 in a cluster
}

// Handover reads and swaps claims. It binds the bucket on first use, so a
// service starting while NATS is away still starts; it is safe for
// concurrent use.
type Handover struct {
	js  jetstream.JetStream
	cfg HandoverConfig

	mu sync.Mutex
	kv jetstream.KeyValue
}

// NewHandover returns the hand-over over js.
func NewHandover(js jetstream.JetStream, cfg HandoverConfig) *Handover {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	return &Handover{js: js, cfg: cfg}
}

// Opened marks the filing as being filed, the moment NCMEC opened it, so
// that a retraction knows to claim it.
func (h *Handover) Opened(ctx context.Context, reportID string, n int) error {
	_, _, err := h.swap(ctx, reportID, n, []claim{unclaimed}, filing)
	return err
}

// RetractionBegun reports whether the retraction service has claimed the
// filing: the reporter sends nothing more.
func (h *Handover) RetractionBegun(ctx context.Context, reportID string, n int) (bool, error) {
	c, _, err := h.get(ctx, key(reportID, n))
	return c == retracting || c == retracted, err
}

// ClaimFinish gives the reporter the filing's finish: nil when it may send
// /finish (including a claim this filing took before a crash), ErrRetracting
// when the retraction service holds it.
func (h *Handover) ClaimFinish(ctx context.Context, reportID string, n int) error {
	ok, cur, err := h.swap(ctx, reportID, n, []claim{unclaimed, filing}, finishing)
	switch {
	case err != nil, ok, cur == finishing, cur == finished:
		return err
	case cur == retracting, cur == retracted:
		return ErrRetracting
	}
	return fmt.Errorf("handover: filing %s in unexpected state %q", key(reportID, n), cur)
}

// Finished records that the reporter finished the filing. Failing to is
// harmless: "finishing" already keeps the retraction service away.
func (h *Handover) Finished(ctx context.Context, reportID string, n int) error {
	_, _, err := h.swap(ctx, reportID, n, []claim{finishing}, finished)
	return err
}

// Retraction is the answer to ClaimRetract.
type Retraction int

const (
	// RetractNow: the retraction service holds the filing and may retract it.
	RetractNow Retraction = iota
	// FinishInProgress: the reporter is finishing; its outcome decides.
	FinishInProgress
	// FinishedFirst: the reporter finished the filing first.
	FinishedFirst
	// RetractedBefore: a retraction already went through.
	RetractedBefore
)

// ClaimRetract gives the retraction service the filing. afterFailure says
// that the reporter published the filing's failure: a finish it had claimed
// will not follow, so that claim is taken over.
func (h *Handover) ClaimRetract(ctx context.Context, reportID string, n int, afterFailure bool) (Retraction, error) {
	from := []claim{unclaimed, filing, retracting}
	if afterFailure {
		from = append(from, finishing)
	}
	ok, cur, err := h.swap(ctx, reportID, n, from, retracting)
	switch {
	case err != nil:
		return 0, err
	case ok:
		return RetractNow, nil
	case cur == finishing:
		return FinishInProgress, nil
	case cur == finished:
		return FinishedFirst, nil
	case cur == retracted:
		return RetractedBefore, nil
	}
	return 0, fmt.Errorf("handover: filing %s in unexpected state %q", key(reportID, n), cur)
}

// Retracted records that the filing is withdrawn (or that nothing had been
// opened). Failing to is harmless: "retracting" keeps the reporter away.
func (h *Handover) Retracted(ctx context.Context, reportID string, n int) error {
	_, _, err := h.swap(ctx, reportID, n, []claim{unclaimed, filing, retracting}, retracted)
	return err
}

// FinishedAtNCMEC records that a retraction found the filing finished
// (NCMEC answered 5102).
func (h *Handover) FinishedAtNCMEC(ctx context.Context, reportID string, n int) error {
	_, _, err := h.swap(ctx, reportID, n, []claim{retracting}, finished)
	return err
}

// key names one filing in the bucket.
func key(reportID string, n int) string { return fmt.Sprintf("%s.%d", reportID, n) }

func (h *Handover) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kv != nil {
		return h.kv, nil
	}
	kv, err := h.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "who may act on a filing's open NCMEC report (pkg/filing)",
		History:     8, // the recent transitions, for whoever investigates
		Storage:     jetstream.FileStorage,
		Replicas:    h.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("handover: bucket %s: %w", Bucket, err)
	}
	h.kv = kv
	return kv, nil
}

func (h *Handover) get(ctx context.Context, k string) (claim, uint64, error) {
	kv, err := h.bucket(ctx)
	if err != nil {
		return unclaimed, 0, err
	}
	e, err := kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return unclaimed, 0, nil
	}
	if err != nil {
		return unclaimed, 0, fmt.Errorf("handover: get %s: %w", k, err)
	}
	return claim(e.Value()), e.Revision(), nil
}

// swap moves the filing's claim to `to` if it is one of from, atomically.
// It returns ok when this call made the change, and the claim it found
// otherwise. An error means the bucket could not be read or written: the
// caller knows nothing and must not act.
func (h *Handover) swap(ctx context.Context, reportID string, n int, from []claim, to claim) (ok bool, current claim, err error) {
	k := key(reportID, n)
	kv, err := h.bucket(ctx)
	if err != nil {
		return false, unclaimed, err
	}
	for {
		cur, rev, err := h.get(ctx, k)
		if err != nil {
			return false, unclaimed, err
		}
		if !slices.Contains(from, cur) {
			return false, cur, nil
		}
		if rev == 0 {
			_, err = kv.Create(ctx, k, []byte(to))
		} else {
			_, err = kv.Update(ctx, k, []byte(to), rev)
		}
		switch {
		case err == nil:
			return true, to, nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			// Someone else swapped first: look again at what they left.
			if ctx.Err() != nil {
				return false, unclaimed, ctx.Err()
			}
			continue
		default:
			return false, unclaimed, fmt.Errorf("handover: %s %s→%s: %w", k, cur, to, err)
		}
	}
}
