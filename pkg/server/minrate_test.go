package server

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// minRateServer reads each request's body under MinRateBody, pausing
// between reads for pause, and sends what came out on results.
func minRateServer(t *testing.T, pause time.Duration) (string, chan error) {
	results := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		MinRateBody(w, r, 10_000, 300*time.Millisecond)
		buf := make([]byte, 1024)
		var err error
		for err == nil {
			_, err = r.Body.Read(buf)
			time.Sleep(pause) // the handler's own work, not the client's
		}
		if err == io.EOF {
			err = nil
		}
		results <- err
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), results
}

// send writes a request with a body of n bytes, in chunks of chunk bytes
// every gap, and keeps the connection open afterwards.
func send(t *testing.T, addr string, n, chunk int, gap time.Duration, stall bool) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	total := n
	if stall {
		total = n * 10 // promise more than is sent
	}
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(total)+"\r\n\r\n")
	for sent := 0; sent < n; sent += chunk {
		if _, err := c.Write(make([]byte, chunk)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(gap)
	}
}

func wait(t *testing.T, results chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-results:
		return err
	case <-time.After(within):
		t.Fatalf("the handler still reads after %s", within)
		return nil
	}
}

func TestMinRateBodyStopsAStalledClient(t *testing.T) {
	addr, results := minRateServer(t, 0)
	start := time.Now()
	send(t, addr, 4096, 4096, 0, true)
	err := wait(t, results, 5*time.Second)
	if !errors.Is(err, ErrTooSlow) {
		t.Fatalf("got %v, want ErrTooSlow", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stopped after %s, want about the 300 ms window", d)
	}
}

func TestMinRateBodyLetsASteadyClientThrough(t *testing.T) {
	addr, results := minRateServer(t, 0)
	// 4 KiB every 100 ms is 40 KB/s, four times the minimum, for 1.5 s:
	// five windows.
	send(t, addr, 60<<10, 4<<10, 100*time.Millisecond, false)
	if err := wait(t, results, 5*time.Second); err != nil {
		t.Fatalf("a client above the minimum rate: %v", err)
	}
}

func TestMinRateBodyDoesNotCountTheHandlersTime(t *testing.T) {
	// The whole body is sent at once; the handler takes 400 ms, more than
	// a window, between its reads.
	addr, results := minRateServer(t, 400*time.Millisecond)
	send(t, addr, 3<<10, 3<<10, 0, false)
	if err := wait(t, results, 10*time.Second); err != nil {
		t.Fatalf("a slow handler: %v", err)
	}
}
