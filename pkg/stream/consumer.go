package stream

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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
	Concurrency int             // batches handled at once (default 1)
	// Batch is the most events handled in one transaction (default 16):
	// events already waiting when a handler is free share its commit.
	Batch int
	// KeepRefused hands refused events (events.Check) to the handler with
	// Message.Refused set, for the audit-logger, which must record a
	// forgery rather than lose it. Every other consumer never sees them.
	KeepRefused bool
}

// Message is one delivered event.
type Message struct {
	*pb.Envelope
	StreamSeq uint64
	Delivered uint64
	// Refused is why the event must not be acted on; only consumers with
	// KeepRefused ever get a message where it is not nil.
	Refused *events.Refusal
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
	refused *prometheus.CounterVec
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
	if cfg.Batch <= 0 {
		cfg.Batch = 16
	}

	jc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: 2 * cfg.Concurrency * cfg.Batch,
	}
	for _, s := range cfg.Subjects {
		jc.FilterSubjects = append(jc.FilterSubjects, events.Subject(s))
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, events.Stream, jc)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", cfg.Durable, err)
	}
	c := &Consumer{cfg: cfg, pool: pool, cons: cons, log: log.With(logging.KeyConsumer, cfg.Durable),
		results: m.Counter("events_handled_total", "Events handled, by consumer, event type and result (ok, duplicate, retry, permanent).", "consumer", "type", "result"),
		refused: m.Counter("events_refused_total", "Events refused because subject, type, payload or publisher disagree with the ownership table (events.Check), by consumer, event type and reason.", "consumer", "type", "reason")}
	// One series at zero from the start, so that the metric is there for
	// the alert rule and dashboards before the first refusal (a labelled
	// counter otherwise appears only with its first increment).
	c.refused.WithLabelValues(cfg.Durable, "unknown", events.RefusedType)
	m.QueryGauge("consumer_pending", "Events of a consumer not yet delivered or acknowledged.", prometheus.Labels{"consumer": cfg.Durable}, func(ctx context.Context) (float64, error) {
		info, err := cons.Info(ctx)
		if err != nil {
			return 0, err
		}
		return float64(info.NumPending + uint64(info.NumAckPending)), nil
	})
	return c, nil
}

// Run consumes until ctx ends, then stops fetching, finishes the events in
// hand and returns.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	it, err := c.cons.Messages(jetstream.PullMaxMessages(c.cfg.Concurrency * c.cfg.Batch))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", c.cfg.Durable, err)
	}
	stop := context.AfterFunc(ctx, it.Drain)
	defer stop()

	// In-flight handlers finish even after ctx ends (graceful shutdown).
	work := context.WithoutCancel(ctx)
	queue := make(chan jetstream.Msg, c.cfg.Concurrency*c.cfg.Batch)
	var wg sync.WaitGroup
	for range c.cfg.Concurrency {
		wg.Go(func() {
			for msg := range queue {
				// Whatever else is already waiting joins this event's
				// transaction: one commit for many events under load,
				// no waiting for more when the stream is quiet.
				batch := []jetstream.Msg{msg}
			fill:
				for len(batch) < c.cfg.Batch {
					select {
					case m, ok := <-queue:
						if !ok {
							break fill
						}
						batch = append(batch, m)
					default:
						break fill
					}
				}
				c.handle(work, batch, h)
			}
		})
	}
	defer wg.Wait()
	defer close(queue)
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			c.log.Debug("consumer: fetch", logging.KeyErr, err)
			continue
		}
		queue <- msg
	}
}

// delivery is a decoded message.
type delivery struct {
	msg jetstream.Msg
	m   Message
	ctx context.Context // carries the event's logger
	log *slog.Logger
}

// handle applies a batch of messages in one transaction. When one of them
// fails (or the commit does), the transaction is rolled back and each is
// applied in a transaction of its own, so that only the failing event is
// retried or terminated.
func (c *Consumer) handle(ctx context.Context, msgs []jetstream.Msg, h Handler) {
	ds := make([]*delivery, 0, len(msgs))
	for _, msg := range msgs {
		if d := c.decode(ctx, msg); d != nil {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return
	}
	if c.cfg.Concurrency > 1 {
		// Batches handled side by side lock their reports' rows in one
		// order, so that they wait for each other instead of deadlocking.
		slices.SortStableFunc(ds, func(a, b *delivery) int { return strings.Compare(a.m.ReportId, b.m.ReportId) })
	}

	// Long handlers keep the messages from being redelivered meanwhile.
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
				for _, d := range ds {
					_ = d.msg.InProgress()
				}
			}
		}
	}()

	if len(ds) > 1 {
		dup := make([]bool, len(ds))
		err := database.InTx(ctx, c.pool, func(tx pgx.Tx) error {
			for i, d := range ds {
				var err error
				if dup[i], err = c.apply(tx, d, h); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			for i, d := range ds {
				c.settle(d, dup[i], nil)
			}
			return
		}
		c.log.Debug("consumer: batch failed; handling its events one by one", "events", len(ds), logging.KeyErr, err)
	}
	for _, d := range ds {
		var dup bool
		err := database.InTx(ctx, c.pool, func(tx pgx.Tx) (err error) {
			dup, err = c.apply(tx, d, h)
			return err
		})
		c.settle(d, dup, err)
	}
}

// decode reads a message's metadata and event; a message without them, or
// whose event is refused (unless the consumer keeps refused events), is
// terminated (nil): no redelivery could make it acceptable.
func (c *Consumer) decode(ctx context.Context, msg jetstream.Msg) *delivery {
	meta, err := msg.Metadata()
	if err != nil {
		c.log.Error("consumer: message without metadata; terminated", logging.KeyErr, err)
		_ = msg.Term()
		return nil
	}
	env, err := events.Unmarshal(msg.Data())
	if err != nil {
		c.log.Error("consumer: undecodable event; terminated", logging.KeyErr, err, logging.KeyStreamSeq, meta.Sequence.Stream)
		c.results.WithLabelValues(c.cfg.Durable, "unknown", "permanent").Inc()
		_ = msg.TermWithReason("undecodable")
		return nil
	}
	ctx, log := logging.With(ctx, logging.KeyEventID, env.EventId, logging.KeyReportID, env.ReportId,
		logging.KeyStreamSeq, meta.Sequence.Stream, "type", env.Type)
	d := &delivery{msg: msg, ctx: ctx, log: log,
		m: Message{Envelope: env, StreamSeq: meta.Sequence.Stream, Delivered: meta.NumDelivered}}
	var refusal *events.Refusal
	if errors.As(events.Check(msg.Subject(), env), &refusal) {
		// The type label is the envelope's only when the table knows it:
		// a forger must not choose the metric's series.
		typ := env.Type
		if _, ok := events.Lookup(typ); !ok {
			typ = "unknown"
		}
		c.refused.WithLabelValues(c.cfg.Durable, typ, refusal.Reason).Inc()
		if !c.cfg.KeepRefused {
			log.Error("consumer: event refused; terminated without acting on it", logging.KeySubject, msg.Subject(), logging.KeyErr, refusal)
			_ = msg.TermWithReason("refused: " + refusal.Reason)
			return nil
		}
		log.Error("consumer: event refused; handed on to be recorded as refused", logging.KeySubject, msg.Subject(), logging.KeyErr, refusal)
		d.m.Refused = refusal
	}
	return d
}

// apply records the event in the inbox and, unless it was there already,
// runs the handler, both in tx.
func (c *Consumer) apply(tx pgx.Tx, d *delivery, h Handler) (duplicate bool, err error) {
	tag, err := tx.Exec(d.ctx, `INSERT INTO inbox (consumer, event_id, stream_seq) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, c.cfg.Durable, d.m.EventId, d.m.StreamSeq)
	if err != nil {
		return false, fmt.Errorf("inbox: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return true, nil
	}
	return false, h(d.ctx, tx, d.m)
}

// settle acknowledges, terminates or schedules the redelivery of a message
// after its transaction.
func (c *Consumer) settle(d *delivery, duplicate bool, err error) {
	result := "ok"
	switch {
	case err == nil && duplicate:
		result = "duplicate"
		d.log.Debug("event already handled")
		_ = d.msg.Ack()
	case err == nil:
		// A plain ack, not waiting for the server's answer: a lost one
		// only brings a redelivery, which the inbox row skips, and
		// waiting would hold the handler a round trip per event.
		if aerr := d.msg.Ack(); aerr != nil {
			d.log.Warn("ack failed; the event will be redelivered and skipped", logging.KeyErr, aerr)
		}
	case IsPermanent(err):
		result = "permanent"
		d.log.Error("event cannot be handled; terminated", logging.KeyErr, err)
		_ = d.msg.TermWithReason(err.Error())
	default:
		result = "retry"
		delay := c.backoff(d.m.Delivered)
		var r *retryError
		if errors.As(err, &r) {
			delay = r.delay
		}
		d.log.Warn("event handling failed; will retry", logging.KeyErr, err, "delivered", d.m.Delivered, logging.KeyRetryIn, delay)
		_ = d.msg.NakWithDelay(delay)
	}
	c.results.WithLabelValues(c.cfg.Durable, d.m.Type, result).Inc()
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
		log.Warn("consumer not created yet; NATS unreachable?", logging.KeyConsumer, cfg.Durable, logging.KeyErr, err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}
