package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// ErrTooSlow is the error reading a body gives once the client has sent
// slower than the minimum rate MinRateBody set.
var ErrTooSlow = errors.New("the client sent the body slower than the minimum rate")

// MinRateBody makes r.Body fail with ErrTooSlow, and the connection's read
// time out, when the client sends fewer than rate bytes a second over a
// window: each window of the given length must bring rate × window bytes,
// and a new window starts as soon as one has. A stalled client so holds its
// request, its buffers and whatever the handler keeps for it (an open S3
// upload) for one window at most; a client at any rate above the minimum
// never trips. Time the handler spends between reads (waiting on S3, on a
// budget, hashing) is not the client's and does not count. rate <= 0 leaves
// the body as it is.
func MinRateBody(w http.ResponseWriter, r *http.Request, rate int64, window time.Duration) {
	if rate <= 0 || window <= 0 {
		return
	}
	r.Body = &minRateReader{body: r.Body, rc: http.NewResponseController(w), rate: rate, window: window,
		need: max(1, int64(float64(rate)*window.Seconds()))}
}

type minRateReader struct {
	body   io.ReadCloser
	rc     *http.ResponseController
	rate   int64
	window time.Duration
	need   int64     // bytes a window must bring
	start  time.Time // of the current window
	got    int64     // bytes in the current window
	last   time.Time // when the last Read returned
	err    error
}

func (m *minRateReader) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	now := time.Now()
	switch {
	case m.start.IsZero() || m.got >= m.need:
		m.start, m.got = now, 0
	default:
		// The time since the last read was the handler's.
		m.start = m.start.Add(now.Sub(m.last))
	}
	if err := m.rc.SetReadDeadline(m.start.Add(m.window)); err != nil {
		return 0, fmt.Errorf("set read deadline: %w", err)
	}
	n, err := m.body.Read(p)
	m.got += int64(n)
	m.last = time.Now()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		m.err = fmt.Errorf("%w: fewer than %d bytes in %s (%d bytes/s)", ErrTooSlow, m.need, m.window, m.rate)
		return n, m.err
	}
	return n, err
}

func (m *minRateReader) Close() error { return m.body.Close() }
