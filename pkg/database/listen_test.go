package database_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/database"
	"takedown/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const channel = "takedown_test_wake"

func TestListenWakesAndRelistens(t *testing.T) {
	ctx := t.Context()
	pool, err := database.Open(ctx, testenv.Postgres(t), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	woken := make(chan struct{}, 1)
	done := make(chan struct{})
	lctx, stop := context.WithCancel(ctx)
	go func() {
		defer close(done)
		database.Listen(lctx, pool, database.Named(channel), func() {
			select {
			case woken <- struct{}{}:
			default:
			}
		}, testenv.Logger(t))
	}()
	t.Cleanup(func() { stop(); <-done })

	// A notification wakes it. The first ones may come before it listens.
	notifyUntilWoken(t, pool, woken)
	first := listener(t, pool)

	// Its backend killed, it listens again on a new connection and is
	// woken again.
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, first); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		switch pid, err := listenerPID(ctx, pool); {
		case err != nil:
			return err
		case pid == first:
			return fmt.Errorf("backend %d, the one terminated, still listens", pid)
		}
		return nil
	})
	drain(woken)
	notifyUntilWoken(t, pool, woken)

	// It returns when its context ends.
	stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return within 10s of its context ending")
	}
}

// A channel whose name the connection tells (here its schema) is asked on
// the listening connection.
func TestListenChannelOfTheConnection(t *testing.T) {
	ctx := t.Context()
	pool, err := database.Open(ctx, testenv.Postgres(t), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	woken := make(chan struct{}, 1)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		database.Listen(lctx, pool, func(ctx context.Context, conn *pgx.Conn) (string, error) {
			var name string
			err := conn.QueryRow(ctx, `SELECT 'takedown_test_' || current_schema()`).Scan(&name)
			return name, err
		}, func() {
			select {
			case woken <- struct{}{}:
			default:
			}
		}, testenv.Logger(t))
	}()
	t.Cleanup(func() { stop(); <-done })
	testenv.WaitFor(t, 10*time.Second, func() error {
		if _, err := pool.Exec(ctx, `SELECT pg_notify('takedown_test_public', '')`); err != nil {
			return err
		}
		select {
		case <-woken:
			return nil
		case <-time.After(20 * time.Millisecond):
			return errors.New("a notification on takedown_test_public did not wake the listener")
		}
	})
}

// notifyUntilWoken notifies the channel until a wake-up arrives.
func notifyUntilWoken(t *testing.T, pool *pgxpool.Pool, woken <-chan struct{}) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if _, err := pool.Exec(t.Context(), `SELECT pg_notify($1, '')`, channel); err != nil {
			return err
		}
		select {
		case <-woken:
			return nil
		case <-time.After(20 * time.Millisecond):
			return errors.New("a notification did not wake the listener")
		}
	})
}

// listener returns the process id of the backend listening on channel.
func listener(t *testing.T, pool *pgxpool.Pool) uint32 {
	t.Helper()
	pid, err := listenerPID(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func listenerPID(ctx context.Context, pool *pgxpool.Pool) (uint32, error) {
	var pid uint32
	err := pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()
		ORDER BY backend_start DESC LIMIT 1`).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, errors.New("no backend listens")
	}
	return pid, err
}

func drain(c <-chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}
