package ncmec_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"takedown/pkg/ncmec"
)

// Answers a hostile or broken server might give produce clear, classified
// errors, never a success and never a blown-up process.
func TestHostileAnswers(t *testing.T) {
	t.Parallel()
	const decl = `<?xml version="1.0" encoding="UTF-8"?>`
	cases := []struct {
		name   string
		status int
		body   string
		call   func(*ncmec.Client) error
		want   error
	}{
		{"not XML", 200, "<html><body>Bad gateway</body></html>", submit, ncmec.ErrMalformedResponse},
		{"plain text", 200, "OK", submit, ncmec.ErrMalformedResponse},
		{"empty body", 200, "", submit, ncmec.ErrMalformedResponse},
		{"truncated XML", 200, decl + "<reportResponse><responseCode>0</respon", submit, ncmec.ErrMalformedResponse},
		{"huge body", 200, decl + "<reportResponse><responseDescription>" + strings.Repeat("A", 2<<20) + "</responseDescription></reportResponse>", submit, ncmec.ErrResponseTooLarge},
		{"DOCTYPE with entities", 200, decl + `<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><reportResponse><responseCode>0</responseCode><responseDescription>&b;</responseDescription><reportId>1</reportId></reportResponse>`, submit, ncmec.ErrDoctype},
		{"external entity", 200, decl + `<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><reportResponse><responseCode>0</responseCode><responseDescription>&x;</responseDescription><reportId>1</reportId></reportResponse>`, submit, ncmec.ErrDoctype},
		{"success without reportId", 200, decl + `<reportResponse><responseCode>0</responseCode><responseDescription>Success</responseDescription></reportResponse>`, submit, ncmec.ErrMissingReportID},
		{"upload success without fileId", 200, decl + `<reportResponse><responseCode>0</responseCode><responseDescription>Success</responseDescription><reportId>1</reportId></reportResponse>`, upload, ncmec.ErrMissingFileID},
		{"wrong root element", 200, decl + `<report><responseCode>0</responseCode></report>`, submit, ncmec.ErrMalformedResponse},
		{"non-numeric reportId", 200, decl + `<reportResponse><responseCode>0</responseCode><responseDescription>Success</responseDescription><reportId>abc</reportId></reportResponse>`, submit, ncmec.ErrMalformedResponse},
		{"finish answered with reportResponse", 200, decl + `<reportResponse><responseCode>0</responseCode><responseDescription>Success</responseDescription><reportId>1</reportId></reportResponse>`, finish, ncmec.ErrMalformedResponse},
		{"HTML 502 from a gateway", 502, "<html>bad gateway</html>", submit, nil},
		// Found by FuzzAnswer: without a responseCode, Code's zero value read as success.
		{"finish answered without responseCode", 200, decl + `<reportDoneResponse><reportId>1</reportId><files/></reportDoneResponse>`, finish, ncmec.ErrMalformedResponse},
		{"submit answered without responseCode", 200, decl + `<reportResponse><reportId>1</reportId></reportResponse>`, submit, ncmec.ErrMalformedResponse},
		{"text before the root", 200, "000" + `<reportResponse><responseCode>0</responseCode><reportId>1</reportId></reportResponse>`, submit, ncmec.ErrMalformedResponse},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Request-ID", "req-1")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			c, err := ncmec.New(ncmec.Options{BaseURL: srv.URL + "/ispws", Username: "u", Password: "p"})
			if err != nil {
				t.Fatal(err)
			}
			err = tc.call(c)
			var e *ncmec.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want *ncmec.Error", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if e.RequestID != "req-1" || e.HTTPStatus != tc.status || e.Endpoint == "" {
				t.Errorf("error lacks context: %+v", e)
			}
			// Any of these after a /submit may hide an opened report.
			if !e.Ambiguous {
				t.Errorf("%v should be ambiguous", err)
			}
			if len(err.Error()) > 300 {
				t.Errorf("unclear or leaking message: %.300s", err)
			}
		})
	}
}

func submit(c *ncmec.Client) error {
	_, err := c.Submit(context.Background(), minimalReport())
	return err
}

func upload(c *ncmec.Client) error {
	_, err := c.Upload(context.Background(), 1, "x", 1, strings.NewReader("x"))
	return err
}

func finish(c *ncmec.Client) error {
	_, err := c.Finish(context.Background(), 1)
	return err
}
