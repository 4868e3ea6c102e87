package ncmec_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"takedown/pkg/ncmec"
)

// FuzzAnswer: whatever a CyberTipline server (or a gateway before it)
// answers, every call returns either a success the caller can act on (a
// report id, a file id, a receipt) or one *ncmec.Error, and never a panic
// or a hang. The seeds (testdata/fuzz/FuzzAnswer) are the answer documents
// of the API guide and broken variants of them; make fuzz explores further.
func FuzzAnswer(f *testing.F) {
	var mu sync.Mutex
	var status int
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		st, b := status, body
		mu.Unlock()
		w.Header().Set("Request-ID", "req-1")
		w.WriteHeader(st)
		_, _ = w.Write(b)
	}))
	f.Cleanup(srv.Close)
	c, err := ncmec.New(ncmec.Options{BaseURL: srv.URL + "/ispws", Username: "u", Password: "p"})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, st uint16, raw []byte) {
		// Statuses net/http can write; 1xx would be taken as interim.
		mu.Lock()
		status, body = 200+int(st)%400, raw
		mu.Unlock()
		ctx := context.Background()

		check := func(ep string, err error) {
			t.Helper()
			var e *ncmec.Error
			if !errors.As(err, &e) {
				t.Fatalf("%s: %v (%T), want *ncmec.Error", ep, err, err)
			}
			if e.Endpoint != ep {
				t.Errorf("%s: error names endpoint %q", ep, e.Endpoint)
			}
			if e.HTTPStatus == 0 {
				t.Errorf("%s: an answer arrived but the error has no HTTP status: %v", ep, err)
			}
		}

		// Every answer document has a responseCode (the XSD requires it);
		// one without it says nothing, least of all success.
		saysCode := bytes.Contains(raw, []byte("responseCode"))
		succeeded := func(ep string) {
			t.Helper()
			if !saysCode {
				t.Errorf("%s succeeded on an answer without a responseCode: %q", ep, raw)
			}
		}

		if r, err := c.Submit(ctx, minimalReport()); err != nil {
			check(ncmec.EndpointSubmit, err)
		} else if succeeded(ncmec.EndpointSubmit); r.ReportID <= 0 {
			t.Errorf("submit succeeded without a report id: %+v", r)
		}
		if r, err := c.Upload(ctx, 1, "x", 1, strings.NewReader("x")); err != nil {
			check(ncmec.EndpointUpload, err)
		} else if succeeded(ncmec.EndpointUpload); r.FileID == "" {
			t.Errorf("upload succeeded without a file id: %+v", r)
		}
		if r, err := c.Finish(ctx, 1); err != nil {
			check(ncmec.EndpointFinish, err)
		} else if succeeded(ncmec.EndpointFinish); r.ReportID <= 0 {
			t.Errorf("finish succeeded without a report id: %+v", r)
		}
		if _, err := c.Retract(ctx, 1); err != nil {
			check(ncmec.EndpointRetract, err)
		} else {
			succeeded(ncmec.EndpointRetract)
		}
	})
}
