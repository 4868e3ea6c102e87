package retract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"takedown/pkg/events"
	"takedown/pkg/filing"
	"takedown/pkg/logging"
)

// AdvisoryStream keeps the max-deliveries advisories of the TAKEDOWN
// consumers. The server publishes them on plain NATS subjects, which no one
// may be listening to at that moment; a stream keeps them until read.
const AdvisoryStream = "TAKEDOWN_ADVISORIES"

const advisorySubjects = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + events.Stream + ".>"

// maxDeliveries is the advisory the server sends when a message reached its
// consumer's MaxDeliver.
type maxDeliveries struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// WatchAdvisories makes a retraction due for every report whose event the
// reporter's consumer (durable reporter) gave up on: a message that exhausts
// MaxDeliver is a failure, not silence (DESIGN.md §3).
func (r *Retractor) WatchAdvisories(ctx context.Context, js jetstream.JetStream, replicas int, reporter string) error {
	var cons jetstream.Consumer
	for {
		s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: AdvisoryStream, Subjects: []string{advisorySubjects}, Storage: jetstream.FileStorage,
			Replicas: max(1, replicas), MaxAge: 30 * 24 * time.Hour,
		})
		if err == nil {
			cons, err = s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
				Durable: Name + "-advisories", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1, AckWait: 30 * time.Second,
			})
		}
		if err == nil {
			break
		}
		r.log.Warn("advisory stream not ready; NATS unreachable?", logging.KeyErr, err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("advisories: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			continue
		}
		if err := r.advisory(ctx, js, msg.Data(), reporter); err != nil {
			r.log.Warn("advisory not handled; will retry", logging.KeyErr, err)
			_ = msg.NakWithDelay(5 * time.Second)
			continue
		}
		_ = msg.Ack()
	}
}

func (r *Retractor) advisory(ctx context.Context, js jetstream.JetStream, data []byte, reporter string) error {
	var a maxDeliveries
	if err := json.Unmarshal(data, &a); err != nil || a.Consumer != reporter {
		return nil // not ours to act on
	}
	s, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return err
	}
	raw, err := s.GetMsg(ctx, a.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		r.log.Error("the reporter gave up on an event that is no longer in the stream", logging.KeyStreamSeq, a.StreamSeq)
		return nil
	}
	if err != nil {
		return err
	}
	env, err := events.Unmarshal(raw.Data)
	if err != nil || env.ReportId == "" {
		r.log.Error("the reporter gave up on an event that names no report", logging.KeyStreamSeq, a.StreamSeq, logging.KeyErr, err)
		return nil
	}
	reason := fmt.Sprintf("the ncmec-reporter gave up on the %s event after %d deliveries", env.Type, a.Deliveries)
	if ev, ok := filing.Of(env); ok {
		// Fold it first: the report may be known here only from it.
		current := false
		err := r.store.InTx(ctx, func(tx pgx.Tx) error {
			var err error
			current, err = r.fold(ctx, tx, env.ReportId, ev)
			return err
		})
		if err != nil {
			return err
		}
		if !current {
			// An earlier filing's event: the filing now under way is a
			// new NCMEC report, not the one the reporter gave up on.
			r.log.Warn("the reporter gave up on an earlier filing's event; nothing to retract now", logging.KeyReportID, env.ReportId, logging.KeyStreamSeq, a.StreamSeq)
			return nil
		}
	}
	r.log.Error("reporter exhausted its deliveries; retracting whatever was opened", logging.KeyReportID, env.ReportId, logging.KeyStreamSeq, a.StreamSeq)
	return r.requestFor(ctx, env.ReportId, reason, Name)
}
