package stack

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// Marker is put in a report's notes, which the reporter sends to NCMEC as
// additionalInfo: it finds the report among the simulator's reports even
// when it was opened twice.
func Marker(key string) string { return "e2e-key:" + key + ";" }

// NewReport is a valid report JSON whose notes carry Marker(key).
func NewReport(key string) map[string]any {
	return map[string]any{
		"incident_time":  time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
		"platform":       "Example",
		"urls":           []string{"https://example.com/u/" + key},
		"uploader":       map[string]any{"username": "user-" + key, "ip": "203.0.113.7"},
		"legal_approved": true,
		"approver":       "Legal Counsel",
		"actions_taken":  []string{"content removed", "account locked"},
		"notes":          Marker(key),
	}
}

// RandomFile is a file of size pseudo-random bytes derived from seed, so
// that a seeded run submits the same bytes every time.
func RandomFile(name string, size int64, seed uint64) File {
	return File{Name: name, Size: size, Content: func() io.Reader {
		return &seededReader{r: rand.New(rand.NewPCG(seed, 0x7a6b))}
	}}
}

type seededReader struct{ r *rand.Rand }

func (s *seededReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(s.r.Uint32())
	}
	return len(p), nil
}

// SmallFiles are n small distinct files.
func SmallFiles(n int, seed uint64) []File {
	files := make([]File, n)
	for i := range files {
		files[i] = RandomFile(fmt.Sprintf("evidence-%d.bin", i+1), 2048+int64(i)*512, seed*31+uint64(i))
	}
	return files
}

// SubmitRetrying submits a report, trying again while intake or its
// dependencies are away (connection refused, 503): what a staff member's
// browser would make them do, with the same Idempotency-Key each time, as
// the form sends: an attempt stored whose answer was lost is answered with
// its report on the next. It returns the number of attempts.
func (s *Stack) SubmitRetrying(ctx context.Context, report any, files []File) (Report, int, error) {
	// One key for every attempt: an attempt whose answer was lost (intake
	// killed after storing it) is not stored a second time.
	key := randomHex(16)
	for attempt := 1; ; attempt++ {
		rep, err := s.submit(ctx, report, files, key)
		if err == nil {
			return rep, attempt, nil
		}
		if ctx.Err() != nil {
			return Report{}, attempt, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
