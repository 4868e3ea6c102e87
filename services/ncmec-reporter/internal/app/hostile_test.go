package app_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"takedown/pkg/events"
	"takedown/pkg/ncmec"
	"takedown/pkg/ncmec/ncmecsim"
	"takedown/services/ncmec-reporter/internal/app"
)

// hostile lets the simulator apply one call to endpoint, then replaces its
// answer with what rewrite makes of it (a compromised or broken gateway).
func hostile(endpoint string, times int32, rewrite func(body []byte) []byte) func(http.Handler) http.Handler {
	var left atomic.Int32
	left.Store(times)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/"+endpoint) || left.Add(-1) < 0 {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(rewrite(rec.Body.Bytes()))
		})
	}
}

func constant(s string) func([]byte) []byte { return func([]byte) []byte { return []byte(s) } }

const entityBomb = `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<reportResponse><responseCode>0</responseCode><responseDescription>&lol2;</responseDescription><reportId>1</reportId></reportResponse>`

// Hostile NCMEC answers give clear errors and never crash the service.
func TestHostileAnswers(t *testing.T) {
	t.Parallel()
	huge := bytes.Repeat([]byte("<a>"), 1<<20)
	wrongMD5 := regexp.MustCompile(`<hash>[0-9a-f]{32}</hash>`)
	cases := []struct {
		name    string
		wrap    func(http.Handler) http.Handler
		outcome string // "finished" or the failed step
		desc    string // in the failure, or in the ambiguous /submit's event
	}{
		{"submit not XML", hostile("submit", 1, constant("<html><body>502 Bad Gateway</body></html>")), "finished", "not a CyberTipline XML document"},
		{"submit huge", hostile("submit", 1, func([]byte) []byte { return huge }), "finished", "exceeds the size limit"},
		{"submit doctype", hostile("submit", 1, constant(entityBomb)), "finished", "DOCTYPE"},
		{"submit without reportId", hostile("submit", 1, constant(`<reportResponse><responseCode>0</responseCode><responseDescription>Success</responseDescription></reportResponse>`)), "finished", "without reportId"},
		{"upload wrong MD5", hostile("upload", 1, func(b []byte) []byte {
			return wrongMD5.ReplaceAll(b, []byte("<hash>00000000000000000000000000000000</hash>"))
		}), "upload", "must not be finished"},
		{"upload not XML", hostile("upload", 1, constant("garbage")), "finished", ""},
		{"fileinfo huge", hostile("fileinfo", 1, func([]byte) []byte { return huge }), "finished", ""},
		{"fileinfo doctype", hostile("fileinfo", 2, constant(entityBomb)), "finished", ""},
		{"finish doctype", hostile("finish", 1, constant(entityBomb)), "finished", ""}, // then 5102
		{"finish empty", hostile("finish", 1, constant("")), "finished", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{wrap: c.wrap})
			r := h.start(app.Options{})
			id, _ := h.submit(false, files3()[:2]...)
			evs := h.waitEnd(id, 30*time.Second)
			last := evs[len(evs)-1]
			st := h.sim.State()
			submits := 1
			if c.outcome == "finished" {
				if last.Type != events.NcmecFinished {
					t.Fatalf("ended with %s %v", last.Type, last.GetNcmecFailed())
				}
				if strings.HasPrefix(c.name, "submit") {
					// An answer we cannot read may hide an opened report: it
					// is recorded as ambiguous and a fresh report is opened.
					submits = 2
					if a := evs[0].GetNcmecSubmitAmbiguous(); a == nil || !strings.Contains(a.Description, c.desc) {
						t.Fatalf("first event %v, want an ambiguous /submit saying %q", evs[0], c.desc)
					}
				}
			} else {
				fl := last.GetNcmecFailed()
				if fl == nil || fl.Step != c.outcome || !strings.Contains(fl.Description, c.desc) {
					t.Fatalf("want failed at %s with %q, got %s %v", c.outcome, c.desc, last.Type, fl)
				}
				for _, rep := range st.Reports {
					if rep.Status == ncmecsim.StatusFinished {
						t.Fatal("a report with a hostile answer was finished")
					}
				}
			}
			if n := st.Calls[ncmec.EndpointSubmit]; n != submits {
				t.Errorf("%d submits, want %d", n, submits)
			}
			select {
			case err := <-r.done:
				t.Fatalf("the service stopped: %v", err)
			default:
			}
		})
	}
}
