package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) LookupFunc {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoaderDefaultsAndValues(t *testing.T) {
	l := New(env(map[string]string{"PORT": "9", "SIZE": "2GiB", "WAIT": "1m", "ON": "true"}))
	if got := l.Int("PORT", 1, 1, 10); got != 9 {
		t.Errorf("Int = %d, want 9", got)
	}
	if got := l.Int("UNSET", 4, 1, 10); got != 4 {
		t.Errorf("Int default = %d, want 4", got)
	}
	if got := l.Bytes("SIZE", 1); got != 2<<30 {
		t.Errorf("Bytes = %d, want %d", got, 2<<30)
	}
	if got := l.Duration("WAIT", time.Second); got != time.Minute {
		t.Errorf("Duration = %v", got)
	}
	if !l.Bool("ON", false) {
		t.Error("Bool = false")
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestLoaderReportsEveryBadValue(t *testing.T) {
	l := New(env(map[string]string{"PORT": "x", "SIZE": "-3", "WAIT": "soon", "MODE": "z"}))
	l.Int("PORT", 1, 1, 10)
	l.Bytes("SIZE", 1)
	l.Duration("WAIT", time.Second)
	l.OneOf("MODE", "a", "a", "b")
	l.MustString("NEEDED")
	l.Secret("PASSWORD", Required)
	err := l.Err()
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"PORT", "SIZE", "WAIT", "MODE", "NEEDED", "PASSWORD"} {
		if !strings.Contains(err.Error(), name+":") {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
	if n := strings.Count(err.Error(), "\n"); n != 5 {
		t.Errorf("want one line per bad value (6), got %d lines:\n%v", n+1, err)
	}
}

func TestSecretFromFileNeverPrints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := New(env(map[string]string{"PW_FILE": path}))
	s := l.Secret("PW", Required)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if s.Reveal() != "hunter2" {
		t.Fatalf("Reveal = %q", s.Reveal())
	}
	j, _ := json.Marshal(struct{ S Secret }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), string(j)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret printed: %s", out)
		}
	}
}

func TestSecretBothSourcesIsAnError(t *testing.T) {
	l := New(env(map[string]string{"PW": "a", "PW_FILE": "/nonexistent"}))
	l.Secret("PW", Optional)
	if l.Err() == nil {
		t.Fatal("want an error when both PW and PW_FILE are set")
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "10B": 10, "1KiB": 1024, "3 MiB": 3 << 20, "8GiB": 8 << 30, "2MB": 2e6} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1.5GiB", "GiB", "99999999999TiB"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) succeeded", in)
		}
	}
}

// TestRemoteURLRefusesPlainHTTPOutsideDevelopment: credentials and staff
// tokens travel to these URLs; http (a value or a default) needs the
// explicit development switch.
func TestRemoteURLRefusesPlainHTTPOutsideDevelopment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		vars    map[string]string
		def     string
		want    string
		refused bool
	}{
		{"https value", map[string]string{"X_URL": "https://idp.example"}, "", "https://idp.example", false},
		{"https default", nil, "https://report.cybertip.org/ispws", "https://report.cybertip.org/ispws", false},
		{"unset without default", nil, "", "", false},
		{"http value", map[string]string{"X_URL": "http://idp.example"}, "", "", true},
		{"HTTP value", map[string]string{"X_URL": "HTTP://idp.example"}, "", "", true},
		{"http default", nil, "http://127.0.0.1:8081", "", true},
		{"http with the switch", map[string]string{"X_URL": "http://127.0.0.1:9", DevAllowHTTP: "true"}, "", "http://127.0.0.1:9", false},
		{"http default with the switch", map[string]string{DevAllowHTTP: "true"}, "http://127.0.0.1:8081", "http://127.0.0.1:8081", false},
		{"http with the switch off", map[string]string{"X_URL": "http://127.0.0.1:9", DevAllowHTTP: "false"}, "", "", true},
		{"ftp", map[string]string{"X_URL": "ftp://x.example", DevAllowHTTP: "true"}, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New(env(tc.vars))
			got := l.RemoteURL("X_URL", tc.def)
			err := l.Err()
			if tc.refused {
				if err == nil || !strings.Contains(err.Error(), "X_URL:") {
					t.Errorf("RemoteURL = %q, %v; want it refused", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("RemoteURL = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestPrefixes(t *testing.T) {
	l := New(env(map[string]string{"P": "10.0.0.0/8, 192.0.2.1,2001:db8::/32, ::ffff:198.51.100.2", "BAD": "10.0.0.0/8, proxy.example"}))
	got := fmt.Sprint(l.Prefixes("P"))
	if want := "[10.0.0.0/8 192.0.2.1/32 2001:db8::/32 198.51.100.2/32]"; got != want {
		t.Errorf("Prefixes = %s, want %s", got, want)
	}
	if l.Prefixes("UNSET") != nil {
		t.Error("unset is not nil")
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	l.Prefixes("BAD")
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), `BAD: "proxy.example"`) {
		t.Errorf("a host name was taken: %v", err)
	}
}
