package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// startCluster makes a throwaway cluster in a temporary directory. initdb
// refuses to run as root, so as root it runs as the "postgres" user.
func startCluster() (string, error) {
	bin, err := pgBinDir()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "takedown-pg-")
	if err != nil {
		return "", err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", fmt.Errorf("running as root and no postgres user to run initdb as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", err
		}
	}
	run := func(name string, args ...string) error {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", name, err, out)
		}
		return nil
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data")
	if err := run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"); err != nil {
		return "", err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300", port, dir)
	if err := run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start"); err != nil {
		return "", err
	}
	atExit(func() {
		_ = run("pg_ctl", "-D", data, "-m", "immediate", "stop")
		os.RemoveAll(dir)
	})
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), nil
}

// pgBinDir finds initdb on PATH or in Debian's versioned directories.
func pgBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) > 0 {
		return filepath.Dir(dirs[len(dirs)-1]), nil
	}
	return "", fmt.Errorf("no server at 127.0.0.1:5432, TEST_DATABASE_URL unset, and no initdb on PATH or in /usr/lib/postgresql: install the PostgreSQL server")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
