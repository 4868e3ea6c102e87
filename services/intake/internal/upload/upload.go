// Package upload hands a submission's HTTP request to the reports use case
// (reports.Service.Submit) for both adapters, the JSON API and the web
// form: the body bounded and its read errors named, and the answer's
// headers the outcome implies.
package upload

import (
	"errors"
	"io"
	"net/http"

	"takedown/pkg/auth"
	"takedown/pkg/fault"
	"takedown/pkg/server"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/reports"
)

// IdempotencyKeyHeader names a submission for its submitter
// (reports.Submission.IdempotencyKey).
const IdempotencyKeyHeader = "Idempotency-Key"

// Submit submits r's multipart body, whose report part(s) describe reads,
// for the signed-in staff member. The body must arrive at the minimum rate
// and stay within the limits as a whole, so a client cannot stream past
// the total limit in parts the per-file limit does not see. Neither bound
// reads anything: the use case reads the body only once it has room for it.
func Submit(w http.ResponseWriter, r *http.Request, svc *reports.Service, describe reports.Describe) (*report.Report, error) {
	staff, _ := auth.FromContext(r.Context())
	lim := svc.Limits()
	server.MinRateBody(w, r, lim.MinRate, lim.RateWindow)
	r.Body = http.MaxBytesReader(w, r.Body, lim.MaxBody())
	rep, replayed, err := svc.Submit(r.Context(), reports.Submission{
		Staff: staff, IdempotencyKey: r.Header.Get(IdempotencyKeyHeader), ContentType: r.Header.Get("Content-Type"),
		Body: body{r.Body}, Length: r.ContentLength, Describe: describe,
	})
	if replayed || err != nil {
		// The rest of the body is not read: close the connection rather
		// than drain gigabytes nobody will store.
		w.Header().Set("Connection", "close")
	}
	server.SetRetryAfter(w, err)
	return rep, err
}

// body names the request body's own failures as faults, which the use
// case passes on (reports.BodyError).
type body struct{ r io.Reader }

func (b body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		err = fault.Errorf(fault.TooLarge, "request_too_large", "", "the submission is larger than the limit of %d bytes in all", mbe.Limit)
	case errors.Is(err, server.ErrTooSlow):
		err = fault.Errorf(fault.TooSlow, "too_slow", "", "the upload was cut off: %v. Nothing was kept", err)
	}
	return n, err
}
