package service

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
)

func TestPprofOnlyOnLoopback(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "not an address"} {
		if _, err := servePprof(addr, log); err == nil {
			t.Errorf("PPROF_ADDR %q accepted; profiles show the process's memory and must stay on loopback", addr)
		}
	}
	addr, err := servePprof("127.0.0.1:0", log)
	if err != nil {
		t.Fatalf("loopback refused: %v", err)
	}
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(b) == 0 {
		t.Fatalf("goroutine profile: %s, %d bytes", resp.Status, len(b))
	}
}
