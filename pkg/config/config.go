// Package config reads a service's configuration from the environment.
//
// A Loader collects one clear error per missing or malformed variable instead
// of stopping at the first, so an operator fixes a bad deployment in one go:
//
//	l := config.New(os.LookupEnv)
//	cfg := Config{
//		Addr:    l.String("LISTEN_ADDR", ":8080"),
//		MaxSize: l.Bytes("MAX_FILE_SIZE", 8<<30),
//		Token:   l.Secret("TAKEDOWN_DEV_TOKEN", config.Optional),
//	}
//	if err := l.Err(); err != nil { ... }
//
// Secrets are read from NAME or from the file named by NAME_FILE, and are
// typed Secret so that printing a Config never shows them.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// LookupFunc finds an environment variable; os.LookupEnv in production, a map in tests.
type LookupFunc func(string) (string, bool)

// Requirement says whether a variable without a default must be set.
type Requirement bool

const (
	Required Requirement = true
	Optional Requirement = false
)

// Loader reads typed values and remembers every problem it met.
type Loader struct {
	lookup LookupFunc
	errs   []error
	// allowHTTP caches DEV_ALLOW_HTTP once read (nil: not read yet).
	allowHTTP *bool
}

// New returns a Loader over lookup.
func New(lookup LookupFunc) *Loader { return &Loader{lookup: lookup} }

// FromEnv returns a Loader over the process environment.
func FromEnv() *Loader { return New(os.LookupEnv) }

// Err joins every problem found so far, one line each, or returns nil.
func (l *Loader) Err() error {
	if len(l.errs) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %w", errors.Join(l.errs...))
}

// Fail records a problem found by the caller's own validation (e.g. two
// values that contradict each other), so it is reported with the rest.
func (l *Loader) Fail(name, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

func (l *Loader) raw(name string) (string, bool) {
	v, ok := l.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// String returns the variable or def when unset.
func (l *Loader) String(name, def string) string {
	if v, ok := l.raw(name); ok {
		return v
	}
	return def
}

// MustString returns the variable and records an error when it is unset.
func (l *Loader) MustString(name string) string {
	v, ok := l.raw(name)
	if !ok {
		l.Fail(name, "required but not set")
	}
	return v
}

// OneOf returns the variable, which must be one of allowed, or def when unset.
func (l *Loader) OneOf(name, def string, allowed ...string) string {
	v := l.String(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	l.Fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return def
}

// Int returns the variable as an integer in [min, max], or def when unset.
func (l *Loader) Int(name string, def, min, max int) int {
	v, ok := l.raw(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		l.Fail(name, "%q is not a whole number", v)
		return def
	}
	if n < min || n > max {
		l.Fail(name, "%d is outside %d..%d", n, min, max)
		return def
	}
	return n
}

// Bool returns the variable as a boolean (true/false/1/0), or def when unset.
func (l *Loader) Bool(name string, def bool) bool {
	v, ok := l.raw(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		l.Fail(name, "%q is not true or false", v)
		return def
	}
	return b
}

// Duration returns the variable as a Go duration ("30s", "1h"), which must be
// positive, or def when unset.
func (l *Loader) Duration(name string, def time.Duration) time.Duration {
	v, ok := l.raw(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		l.Fail(name, "%q is not a positive duration such as 30s or 5m", v)
		return def
	}
	return d
}

// Bytes returns a positive size such as "512MiB", "8GiB", "100MB" or a plain
// number of bytes, or def when unset.
func (l *Loader) Bytes(name string, def int64) int64 {
	v, ok := l.raw(name)
	if !ok {
		return def
	}
	n, err := ParseBytes(v)
	if err != nil {
		l.Fail(name, "%v", err)
		return def
	}
	return n
}

// URL returns the variable as an absolute URL with one of the given schemes,
// or def when unset (def is not checked).
func (l *Loader) URL(name, def string, schemes ...string) string {
	v, ok := l.raw(name)
	if !ok {
		return def
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		l.Fail(name, "not an absolute URL")
		return def
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return v
		}
	}
	l.Fail(name, "scheme %q is not one of %s", u.Scheme, strings.Join(schemes, ", "))
	return def
}

// Prefixes returns the variable as a comma-separated list of IP addresses
// and CIDR ranges ("10.0.0.0/8, 192.0.2.1"), or nil when unset.
func (l *Loader) Prefixes(name string) []netip.Prefix {
	v, ok := l.raw(name)
	if !ok {
		return nil
	}
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(f); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		} else {
			l.Fail(name, "%q is not an IP address or CIDR range", f)
		}
	}
	return out
}

// DevAllowHTTP is the development switch that lets RemoteURL take plain
// http URLs: the local stack and the tests, whose simulators and identity
// provider listen on loopback without TLS. Never in production.
const DevAllowHTTP = "DEV_ALLOW_HTTP"

// RemoteURL returns the variable, or def when unset, as the URL of a remote
// service that passwords, client secrets or staff's bearer tokens are sent
// to (an identity provider, NCMEC, Salesforce, the retraction service). It
// must be https: over http anyone on the path could read and replay them.
// http is taken only when DEV_ALLOW_HTTP is true; a default of http is
// refused like a value, so a service never falls back to it quietly.
func (l *Loader) RemoteURL(name, def string) string {
	v := l.URL(name, def, "https", "http")
	if v == "" || !strings.HasPrefix(strings.ToLower(v), "http://") || l.devAllowHTTP() {
		return v
	}
	what := "it"
	if _, set := l.raw(name); !set {
		what = "the default " + v
	}
	l.Fail(name, "%s is plain http; credentials and tokens sent there must travel over https (%s=true allows http for the local stack and tests only)", what, DevAllowHTTP)
	return v
}

func (l *Loader) devAllowHTTP() bool {
	if l.allowHTTP == nil {
		b := l.Bool(DevAllowHTTP, false)
		l.allowHTTP = &b
	}
	return *l.allowHTTP
}

// Secret reads NAME, or the contents of the file named by NAME_FILE. Setting
// both is an error, since one would silently win.
func (l *Loader) Secret(name string, req Requirement) Secret {
	v, inline := l.raw(name)
	path, fromFile := l.raw(name + "_FILE")
	switch {
	case inline && fromFile:
		l.Fail(name, "set either %s or %s_FILE, not both", name, name)
	case fromFile:
		b, err := os.ReadFile(path)
		if err != nil {
			l.Fail(name+"_FILE", "cannot read the secret file: %v", err)
			return ""
		}
		v = strings.TrimSpace(string(b))
		if v == "" {
			l.Fail(name+"_FILE", "the secret file %s is empty", path)
		}
	case !inline && req == Required:
		l.Fail(name, "required but not set (or set %s_FILE to a file holding it)", name)
	}
	return Secret(v)
}

// Secret is a string that never prints.
type Secret string

// Reveal returns the secret's value, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// String keeps secrets out of logs and error messages.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps secrets out of %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalText keeps secrets out of JSON and slog.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseBytes parses a positive size with an optional unit (KiB, MiB, GiB, TiB,
// KB, MB, GB, TB, B).
func ParseBytes(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive size such as 512MiB or 8GiB", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}
