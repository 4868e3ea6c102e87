package stream

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/logging"
	"takedown/pkg/metrics"
	pb "takedown/pkg/proto/takedown/v1"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the inbox table in a service's schema.
var Migrations = database.Migrations{Name: "inbox", FS: migrationFiles}

// ConsumerConfig describes a durable pull consumer.
type ConsumerConfig struct {
	Durable     string   // also the inbox's consumer name
	Subjects    []string // event types, e.g. events.ReportSubmitted; empty: every event
	AckWait     time.Duration
	MaxDeliver  int
	BackOff     []time.Duration // delays between redeliveries, by delivery count
	Concurrency int             // events handled at once (default 1)
}

// Message is one delivered event.
type Message struct {
	*pb.Envelope
	StreamSeq uint64
	Delivered uint64
}

// Handler applies an event's effect within tx. It returns nil when done,
// Retry(err, d) to be called again after d, Permanent(err) when the event
// can never be handled, and any other error to be retried on the backoff
// schedule.
type Handler func(ctx context.Context, tx pgx.Tx, m Message) error

// Consumer runs a Handler over a durable consumer of the TAKEDOWN stream.
type Consumer struct {
	cfg     ConsumerConfig
	pool    *pgxpool.Pool
	cons    jetstream.Consumer
	log     *slog.Logger
	results *prometheus.CounterVec
}

// NewConsumer creates or updates the durable consumer cfg.Durable.
func NewConsumer(ctx context.Context, js jetstream.JetStream, pool *pgxpool.Pool, m *metrics.Factory, log *slog.Logger, cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Durable == "" {
		return nil, errors.New("consumer: no durable name")
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = 10
	}
	if len(cfg.BackOff) == 0 {
		cfg.BackOff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	jc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: 4 * cfg.Concurrency,
	}
	for _, s := range cfg.Subjects {
		jc.FilterSubjects = append(jc.FilterSubjects, events.Subject(s))
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, events.Stream, jc)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", cfg.Durable, err)
	}
	c := &Consumer{cfg: cfg, pool: pool, cons: cons, log: log.With("consumer", cfg.Durable),
		results: m.Counter("events_handled_total", "Events handled, by consumer, event type and result (ok, duplicate, retry, permanent).", "consumer", "type", "result")}
	m.GaugeFunc("consumer_pending", "Events of a consumer not yet delivered or acknowledged.", prometheus.Labels{"consumer": cfg.Durable}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		info, err := cons.Info(ctx)
		if err != nil {
			return 0
		}
		return float64(info.NumPending + uint64(info.NumAckPending))
	})
	return c, nil
}

// Run consumes until ctx ends, then stops fetching, finishes the events in
// hand and returns.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	it, err := c.cons.Messages(jetstream.PullMaxMessages(2 * c.cfg.Concurrency))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", c.cfg.Durable, err)
	}
	stop := context.AfterFunc(ctx, it.Drain)
	defer stop()

	// In-flight handlers finish even after ctx ends (graceful shutdown).
	work := context.WithoutCancel(ctx)
	sem := make(chan struct{}, c.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			c.log.Debug("consumer: fetch", "err", err)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.handle(work, msg, h)
		}()
	}
}

func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg, h Handler) {
	meta, err := msg.Metadata()
	if err != nil {
		c.log.Error("consumer: message without metadata; terminated", "err", err)
		_ = msg.Term()
		return
	}
	env, err := events.Unmarshal(msg.Data())
	if err != nil {
		c.log.Error("consumer: undecodable event; terminated", "err", err, logging.KeyStreamSeq, meta.Sequence.Stream)
		c.results.WithLabelValues(c.cfg.Durable, "unknown", "permanent").Inc()
		_ = msg.TermWithReason("undecodable")
		return
	}
	ctx, log := logging.With(ctx, logging.KeyEventID, env.EventId, logging.KeyReportID, env.ReportId,
		logging.KeyStreamSeq, meta.Sequence.Stream, "type", env.Type)

	// Long handlers keep the message from being redelivered meanwhile.
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(c.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()

	m := Message{Envelope: env, StreamSeq: meta.Sequence.Stream, Delivered: meta.NumDelivered}
	duplicate := false
	err = database.InTx(ctx, c.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, event_id, stream_seq) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, c.cfg.Durable, env.EventId, meta.Sequence.Stream)
		if err != nil {
			return fmt.Errorf("inbox: %w", err)
		}
		if tag.RowsAffected() == 0 {
			duplicate = true
			return nil
		}
		return h(ctx, tx, m)
	})
	result := "ok"
	switch {
	case err == nil && duplicate:
		result = "duplicate"
		log.Debug("event already handled")
		_ = msg.Ack()
	case err == nil:
		// DoubleAck so that a lost ack is noticed; a late ack racing a
		// redelivery is harmless thanks to the inbox row.
		if aerr := msg.DoubleAck(ctx); aerr != nil {
			log.Warn("ack failed; the event will be redelivered and skipped", "err", aerr)
		}
	case IsPermanent(err):
		result = "permanent"
		log.Error("event cannot be handled; terminated", "err", err)
		_ = msg.TermWithReason(err.Error())
	default:
		result = "retry"
		delay := c.backoff(meta.NumDelivered)
		var r *retryError
		if errors.As(err, &r) {
			delay = r.delay
		}
		log.Warn("event handling failed; will retry", "err", err, "delivered", meta.NumDelivered, "retry_in", delay)
		_ = msg.NakWithDelay(delay)
	}
	c.results.WithLabelValues(c.cfg.Durable, env.Type, result).Inc()
}

func (c *Consumer) backoff(delivered uint64) time.Duration {
	i := int(delivered) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(c.cfg.BackOff) {
		i = len(c.cfg.BackOff) - 1
	}
	return c.cfg.BackOff[i]
}

// Consume creates the durable consumer cfg, waiting for NATS when it is not
// there yet, and runs h over it until ctx ends. A service starts while the
// broker is away; its consumer begins when the broker is back.
func Consume(ctx context.Context, js jetstream.JetStream, pool *pgxpool.Pool, m *metrics.Factory, log *slog.Logger, cfg ConsumerConfig, h Handler) error {
	for {
		c, err := NewConsumer(ctx, js, pool, m, log, cfg)
		if err == nil {
			return c.Run(ctx, h)
		}
		log.Warn("consumer not created yet; NATS unreachable?", "consumer", cfg.Durable, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}
