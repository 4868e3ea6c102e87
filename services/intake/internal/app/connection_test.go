package app_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/ncmec"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
)

// The form and the reports list warn while the reporter announces an NCMEC
// environment refusing our credentials or not answering: which, since when,
// what NCMEC answered and what to do. An older announcement arriving late
// changes nothing, a repeated one keeps "since", and an ok clears it.
func TestNCMECConnectionWarning(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	staff := s.signIn(t, "rita", "reporter")
	t0 := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	handled := 0
	announce := func(env, state, detail string, at time.Time) {
		t.Helper()
		s.publish(t, "", &pb.NcmecConnection{Environment: env, State: state, Detail: detail, CheckedAt: timestamppb.New(at)})
		handled++
		s.waitHandled(t, "ncmec.connection", handled)
	}
	warnings := func(path string) map[string]string {
		t.Helper()
		code, html := page(t, staff, s.url+path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		out := map[string]string{}
		for _, part := range strings.Split(html, `<div class="ncmec-warning"`)[1:] {
			env := between(part, `data-environment="`, `"`)
			out[env] = part[:strings.Index(part, "</div>")]
		}
		return out
	}
	both := func() map[string]string {
		t.Helper()
		form, list := warnings("/"), warnings("/reports")
		if fmt.Sprint(form) != fmt.Sprint(list) {
			t.Errorf("the form warns %v, the list %v", form, list)
		}
		return form
	}

	if w := both(); len(w) != 0 {
		t.Fatalf("warnings before any announcement: %v", w)
	}
	announce("production", ncmec.ConnectionOK, "Remote User : esp", t0)
	announce("production", ncmec.ConnectionRefused, "NCMEC refused the credentials: ncmec status: http 401 (Unauthorized)", t0.Add(5*time.Minute))
	announce("test", ncmec.ConnectionUnreachable, "NCMEC did not answer /status as expected: ncmec status: http 503 (Service Unavailable)", t0.Add(6*time.Minute))
	w := both()
	prod, test := w["production"], w["test"]
	for _, want := range []string{"production environment refuses our credentials", "Since 2026-03-04 10:05:00 UTC",
		"last checked 2026-03-04 10:05:00 UTC", "http 401 (Unauthorized)", "file it again", "TakedownNCMECConnectionFailing"} {
		if !strings.Contains(prod, want) {
			t.Errorf("production warning lacks %q:\n%s", want, prod)
		}
	}
	for _, want := range []string{"test environment does not answer", "Reports marked test", "Since 2026-03-04 10:06:00 UTC", "http 503"} {
		if !strings.Contains(test, want) {
			t.Errorf("test warning lacks %q:\n%s", want, test)
		}
	}

	// A later check that finds it refused still (a reporter restarted)
	// keeps since; an ok checked before the refusal, arriving late, is
	// older news and changes nothing.
	announce("production", ncmec.ConnectionRefused, "NCMEC refused the credentials: ncmec status: code 2000 (Authentication required)", t0.Add(20*time.Minute))
	announce("production", ncmec.ConnectionOK, "Remote User : esp", t0.Add(time.Minute))
	prod = both()["production"]
	for _, want := range []string{"Since 2026-03-04 10:05:00 UTC", "last checked 2026-03-04 10:20:00 UTC", "code 2000"} {
		if !strings.Contains(prod, want) {
			t.Errorf("production warning after a repeated refusal lacks %q:\n%s", want, prod)
		}
	}

	announce("production", ncmec.ConnectionOK, "Remote User : esp", t0.Add(25*time.Minute))
	if w := both(); len(w) != 1 || w["test"] == "" {
		t.Fatalf("after production's recovery: %v, want the test environment's warning only", w)
	}
	announce("test", ncmec.ConnectionOK, "Remote User : esp-test", t0.Add(26*time.Minute))
	if w := both(); len(w) != 0 {
		t.Fatalf("after both recovered: %v", w)
	}
}

// waitHandled waits until intake's consumer has handled n events of type.
func (h *harness) waitHandled(t *testing.T, eventType string, n int) {
	t.Helper()
	series := fmt.Sprintf(`takedown_intake_events_handled_total{consumer="intake-progress",result="ok",type=%q} %d`, eventType, n)
	testenv.Eventually(t, 10*time.Second, series, func() bool {
		resp, err := http.Get(h.url + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), series+"\n")
	})
}

func between(s, from, to string) string {
	_, after, _ := strings.Cut(s, from)
	before, _, _ := strings.Cut(after, to)
	return before
}
