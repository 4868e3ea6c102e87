package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRealMainServesAndShutsDown(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"NCMECSIM_USERNAME": "u",
		"NCMECSIM_PASSWORD": "p",
		"NCMECSIM_ADMIN":    "true",
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() {
		done <- realMain(ctx, []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, logger, ready)
	}()

	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("realMain: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("simulator did not start")
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/ispws/status", nil)
	req.SetBasicAuth("u", "p")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Remote User : u") {
		t.Fatalf("status: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + addr + "/_sim/state")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("admin state: %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("simulator did not shut down")
	}
}

func TestConfigErrorsNameEveryBadValue(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NCMECSIM_ADMIN": "maybe", "NCMECSIM_LATENCY": "soon"}
	_, err := loadConfig(nil, func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"NCMECSIM_USERNAME", "NCMECSIM_PASSWORD", "NCMECSIM_ADMIN", "NCMECSIM_LATENCY"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
