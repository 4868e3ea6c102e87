// Package stream provisions the TAKEDOWN JetStream stream and its durable
// consumers, and runs a consume loop that hands each event to a handler
// inside a PostgreSQL transaction together with an inbox row, so that an
// event delivered twice takes effect once (RELIABILITY.md).
package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"takedown/pkg/events"
)

// Config describes the stream (DESIGN.md §3).
type Config struct {
	Replicas   int           // 1 on one machine, 3 in a cluster
	Duplicates time.Duration // duplicate window, at least 2 minutes
	MaxAge     time.Duration // 0 keeps events until limits; default 30 days
}

// Provision creates the stream or updates it to cfg.
func Provision(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Stream, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Duplicates < 2*time.Minute {
		cfg.Duplicates = 2 * time.Minute
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 30 * 24 * time.Hour
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        events.Stream,
		Description: "takedown events (DESIGN.md §3)",
		Subjects:    []string{events.SubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.Duplicates,
		MaxAge:      cfg.MaxAge,
	})
	if err != nil {
		return nil, fmt.Errorf("provision stream %s: %w", events.Stream, err)
	}
	return s, nil
}

// Connect dials NATS so that a broker that is down at start or goes away
// later is waited for, not fatal: the outbox holds events meanwhile.
func Connect(url, name string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	opts = append([]nats.Option{
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// Retry asks for the event to be delivered again after delay.
func Retry(err error, delay time.Duration) error { return &retryError{err: err, delay: delay} }

// Permanent marks an error that no redelivery can fix: the event is
// terminated (and the error logged), not retried.
func Permanent(err error) error { return &permanentError{err: err} }

type retryError struct {
	err   error
	delay time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
