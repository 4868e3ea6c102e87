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
	// events that arrive while every handler is busy share one commit.
	Batch int
	// Linger is how long a batch waits for more events before it is handed
	// to a free handler (default 0: it goes at once, with what is waiting).
	// A consumer off the filing's path lingers OffPathLinger.
	Linger time.Duration
	// KeepRefused hands refused events (events.Check) to the handler with
	// Message.Refused set, for the audit-logger, which must record a
	// forgery rather than lose it. Every other consumer never sees them.
	KeepRefused bool
}

// OffPathLinger is the Linger of every consumer off the filing's path (the
// audit log, the case, retractions, intake's progress): an event waits
// that long for others, so that a transaction and its inbox statement
// serve many events, and no filing waits for it.
const OffPathLinger = 50 * time.Millisecond

// Message is one delivered event.
type Message struct {
	*pb.Envelope
	StreamSeq uint64
	Delivered uint64
	// Refused is why the event must not be acted on; only consumers with
	// KeepRefused ever get a message where it is not nil.
	Refused *events.Refusal

	ctx context.Context // carries the event's logger
}

// Handler applies an event's effect within tx. It returns nil when done,
// Retry(err, d) to be called again after d, Permanent(err) when the event
// can never be handled, and any other error to be retried on the backoff
// schedule.
type Handler func(ctx context.Context, tx pgx.Tx, m Message) error

// BatchHandler applies the effects of several events, in their order,
// within tx, for a consumer whose events share a costly step (the audit
// chain's head). Its errors mean what a Handler's do; when it fails on a
// batch, each event is handed to it again alone, so that only the failing
// one is retried or terminated.
type BatchHandler func(ctx context.Context, tx pgx.Tx, ms []Message) error

// Each is the BatchHandler that applies h to the events one after another,
// each with its own logger in ctx.
func Each(h Handler) BatchHandler {
	return func(ctx context.Context, tx pgx.Tx, ms []Message) error {
		for _, m := range ms {
			mctx := ctx
			if m.ctx != nil {
				mctx = m.ctx
			}
			if err := h(mctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	}
}

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
func (c *Consumer) Run(ctx context.Context, h BatchHandler) error {
	it, err := c.cons.Messages(jetstream.PullMaxMessages(c.cfg.Concurrency * c.cfg.Batch))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", c.cfg.Durable, err)
	}
	stop := context.AfterFunc(ctx, it.Drain)
	defer stop()

	// In-flight handlers finish even after ctx ends (graceful shutdown).
	work := context.WithoutCancel(ctx)
	fetched := make(chan jetstream.Msg)
	batches := make(chan []jetstream.Msg)
	var wg sync.WaitGroup
	for range c.cfg.Concurrency {
		wg.Go(func() {
			for batch := range batches {
				c.handle(work, batch, h)
			}
		})
	}
	wg.Go(func() {
		defer close(batches)
		c.gather(fetched, batches)
	})
	defer wg.Wait()
	defer close(fetched)
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
		fetched <- msg
	}
}

// gather forms batches of the fetched messages and hands each to the
// first free handler: a batch is offered once it is full or has waited
// Linger since its first event, and grows meanwhile, and while every
// handler is busy, up to Batch. So a quiet stream costs no wait beyond
// Linger, and a busy one shares transactions.
func (c *Consumer) gather(fetched <-chan jetstream.Msg, batches chan<- []jetstream.Msg) {
	for first := range fetched {
		batch := []jetstream.Msg{first}
		ready := c.cfg.Linger <= 0
		var linger <-chan time.Time
		if !ready {
			linger = time.After(c.cfg.Linger)
		}
		in := fetched
	grow:
		for {
			var out chan<- []jetstream.Msg
			if ready || len(batch) >= c.cfg.Batch {
				out = batches
			}
			if len(batch) >= c.cfg.Batch {
				in = nil
			}
			select {
			case out <- batch:
				break grow
			case m, ok := <-in:
				if !ok { // stopping: hand over what is in hand
					batches <- batch
					return
				}
				batch = append(batch, m)
			case <-linger:
				ready, linger = true, nil
			}
		}
	}
}

// delivery is a decoded message.
type delivery struct {
	msg jetstream.Msg
	m   Message
	log *slog.Logger
}

// handle applies a batch of messages in one transaction. When one of them
// fails (or the commit does), the transaction is rolled back and each is
// applied in a transaction of its own, so that only the failing event is
// retried or terminated.
func (c *Consumer) handle(ctx context.Context, msgs []jetstream.Msg, h BatchHandler) {
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
		var dup []bool
		err := database.InTx(ctx, c.pool, func(tx pgx.Tx) (err error) {
			dup, err = c.apply(ctx, tx, ds, h)
			return err
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
		var dup []bool
		err := database.InTx(ctx, c.pool, func(tx pgx.Tx) (err error) {
			dup, err = c.apply(ctx, tx, []*delivery{d}, h)
			return err
		})
		c.settle(d, err == nil && dup[0], err)
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
	d := &delivery{msg: msg, log: log,
		m: Message{Envelope: env, StreamSeq: meta.Sequence.Stream, Delivered: meta.NumDelivered, ctx: ctx}}
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

// apply records the events in the inbox, in one statement, and hands those
// that were not there already to h, all in tx. duplicate[i] says that ds[i]
// was handled before (or is a second copy of an event of this batch).
func (c *Consumer) apply(ctx context.Context, tx pgx.Tx, ds []*delivery, h BatchHandler) (duplicate []bool, err error) {
	ids := make([]string, len(ds))
	seqs := make([]int64, len(ds))
	for i, d := range ds {
		ids[i], seqs[i] = d.m.EventId, int64(d.m.StreamSeq)
	}
	rows, err := tx.Query(ctx, `INSERT INTO inbox (consumer, event_id, stream_seq)
		SELECT $1, e, s FROM unnest($2::uuid[], $3::bigint[]) AS u (e, s)
		ON CONFLICT DO NOTHING RETURNING stream_seq`, c.cfg.Durable, ids, seqs)
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	// The stream sequence tells the added rows apart: each stored copy of
	// an event has its own, and of two copies only the first is added.
	added, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	fresh := make(map[int64]bool, len(added))
	for _, seq := range added {
		fresh[seq] = true
	}
	duplicate = make([]bool, len(ds))
	ms := make([]Message, 0, len(added))
	for i, d := range ds {
		if !fresh[seqs[i]] {
			duplicate[i] = true
			continue
		}
		delete(fresh, seqs[i]) // a redelivery in the same batch is a duplicate
		ms = append(ms, d.m)
	}
	if len(ms) == 0 {
		return duplicate, nil
	}
	return duplicate, h(ctx, tx, ms)
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
func Consume(ctx context.Context, js jetstream.JetStream, pool *pgxpool.Pool, m *metrics.Factory, log *slog.Logger, cfg ConsumerConfig, h BatchHandler) error {
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
