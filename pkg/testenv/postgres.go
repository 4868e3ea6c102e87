package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"takedown/pkg/localstack"
)

// localPostgres is where the machines this project runs on keep a server.
const localPostgres = "postgres://root@127.0.0.1:5432/test?sslmode=disable"

var (
	pgOnce sync.Once
	pgURL  string // admin URL of the server every test database lives on
	pgErr  error
)

// Postgres returns the URL of a new, empty database of its own for this
// test, dropped when the test ends. The server is TEST_DATABASE_URL; else
// the one on 127.0.0.1:5432 when it answers; else a throwaway cluster made
// with initdb and pg_ctl from PATH (or Debian's /usr/lib/postgresql) that
// lives as long as the test binary.
func Postgres(tb testing.TB) string {
	tb.Helper()
	pgOnce.Do(func() { pgURL, pgErr = findPostgres() })
	if pgErr != nil {
		tb.Fatalf("testenv: no PostgreSQL: %v", pgErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		tb.Fatalf("testenv: connect to PostgreSQL: %v", err)
	}
	defer admin.Close(context.Background())

	name := "t_" + randomHex(8)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("testenv: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, pgURL)
		if err != nil {
			tb.Logf("testenv: drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Logf("testenv: drop database %s: %v", name, err)
		}
	})
	cfg, err := pgx.ParseConfig(pgURL)
	if err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), name)
}

func findPostgres() (string, error) {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u, ping(u)
	}
	if ping(localPostgres) == nil {
		return localPostgres, nil
	}
	return startCluster()
}

func ping(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

// startCluster makes a throwaway cluster in a temporary directory that
// lives as long as the test binary.
func startCluster() (string, error) {
	dir, err := os.MkdirTemp("", "takedown-pg-")
	if err != nil {
		return "", err
	}
	pg, err := localstack.StartPostgres(dir, 0)
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	atExit(func() {
		_ = pg.Stop()
		os.RemoveAll(dir)
	})
	return pg.URL("postgres"), nil
}

func freePort() (int, error) { return localstack.FreePort() }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ServiceLogins gives each service its own PostgreSQL login in the
// database of dbURL (localstack.ServiceLogins: it owns its schema and
// reads no other), as production does, and removes the logins when the
// test ends. A login's Env() goes into its service's environment.
func ServiceLogins(tb testing.TB, dbURL string, services ...string) map[string]localstack.ServiceLogin {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logins, err := localstack.ServiceLogins(ctx, dbURL, services...)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := localstack.DropServiceLogins(ctx, dbURL, logins); err != nil {
			tb.Logf("testenv: %v", err)
		}
	})
	return logins
}

// DatabaseUsers returns, for the database of dbURL, the owner of each of
// schemas that exists and the users of the other sessions connected to it:
// who the services work as.
func DatabaseUsers(tb testing.TB, dbURL string, schemas ...string) (owners map[string]string, sessions []string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = ANY($1)`, schemas)
	if err != nil {
		tb.Fatalf("testenv: schema owners: %v", err)
	}
	owners = map[string]string{}
	for rows.Next() {
		var schema, owner string
		if err := rows.Scan(&schema, &owner); err != nil {
			tb.Fatal(err)
		}
		owners[schema] = owner
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("testenv: schema owners: %v", err)
	}
	err = c.QueryRow(ctx, `SELECT coalesce(array_agg(DISTINCT usename::text), '{}') FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&sessions)
	if err != nil {
		tb.Fatalf("testenv: sessions: %v", err)
	}
	return owners, sessions
}
