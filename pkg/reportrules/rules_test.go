package reportrules_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"takedown/pkg/reportrules"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://example.org/a?b=c#d", true},
		{"http://例え.jp/パス", true},
		{"https://example.org/%20x", true},
		{"https://example.org/a b", false},
		{"https://example.org/a\u00a0b", false},
		{"https://example.org/a\u2028b", false},
		{"https://example.org/a\tb", false},
		{"https://example.org/a\x00b", false},
		{"https://example.org/a\u200bb", false},
		{"https://example.org/\u202eb", false},
		{"ftp://example.org/a", false},
		{"/relative", false},
		{"https://", false},
		{"", false},
		{"https://example.org/" + strings.Repeat("a", reportrules.MaxURL), false},
	} {
		err := reportrules.URL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("URL(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
		if err != nil && !errors.Is(err, reportrules.ErrInvalid) {
			t.Errorf("URL(%q) = %v, not ErrInvalid", tc.url, err)
		}
	}
}

func TestURLsTotal(t *testing.T) {
	t.Parallel()
	u := "https://example.org/" + strings.Repeat("a", 1979) // 1999 characters
	if i, err := reportrules.URLs([]string{u, u, u, u}); err != nil {
		t.Fatalf("4 × 2000 = the total: %d %v", i, err)
	}
	if i, err := reportrules.URLs([]string{u, u, u, u, "https://x.org"}); err == nil || i != -1 {
		t.Fatalf("over the total: %d %v", i, err)
	}
	if i, err := reportrules.URLs([]string{u, "https://x.org/ a"}); err == nil || i != 1 {
		t.Fatalf("bad second URL: %d %v", i, err)
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s           string
		line, multi bool
	}{
		{"plain", true, true},
		{"Ünïcødé 中文 😀 \u05d0\u200f <&>", true, true},
		{"two\nlines\r\n\ttab", false, true},
		{"nul\x00", false, false},
		{"bell\a", false, false},
		{"del\x7f", false, false},
		{"c1\u0085", false, false},
		{"nonchar\uffff", false, false},
		{"bad utf-8 \xff", false, false},
	} {
		if err := reportrules.Text(tc.s, 10_000); (err == nil) != tc.line {
			t.Errorf("Text(%q) = %v, want ok %v", tc.s, err, tc.line)
		}
		if err := reportrules.MultilineText(tc.s, 10_000); (err == nil) != tc.multi {
			t.Errorf("MultilineText(%q) = %v, want ok %v", tc.s, err, tc.multi)
		}
	}
	if err := reportrules.Text(strings.Repeat("é", 10), 10); err != nil {
		t.Errorf("10 characters of 2 bytes each are 10 characters: %v", err)
	}
	if err := reportrules.Text(strings.Repeat("é", 11), 10); err == nil {
		t.Errorf("11 characters accepted with a limit of 10")
	}
}

func TestFileName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a.png", true},
		{"a..b.png", true},
		{"...", true},
		{"photo 2024 (1).JPG", true},
		{"中文.png", true},
		{strings.Repeat("中", 85), true},
		{strings.Repeat("中", 86), false},
		{"", false},
		{".", false},
		{"..", false},
		{"../etc/passwd", false},
		{`a\b.png`, false},
		{"a\x00.png", false},
		{"a\n.png", false},
		{"gpj.\u202eexe", false},
		{"a\u200b.png", false},
		{"a\u2066b\u2069.png", false},
		{"\ufeffa.png", false},
		{"a\u2028b.png", false},
		{"bad\xff.png", false},
	} {
		if err := reportrules.FileName(tc.name); (err == nil) != tc.ok {
			t.Errorf("FileName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestEmail(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"a@example.com":                   "a@example.com",
		`"x" <a@example.com>`:             "a@example.com",
		"Some One <some.one@example.org>": "some.one@example.org",
		"not an address":                  "",
		"a@example.com\x00":               "",
		"a@example.com, b@example.com":    "",
	} {
		got, err := reportrules.Email(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("Email(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// Every sample keeps to the rules, the longest one at every limit.
func TestSamplesKeepTheRules(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, s reportrules.Sample) {
		t.Helper()
		for _, c := range []struct {
			v   string
			max int
		}{{s.Platform, reportrules.MaxPlatform}, {s.Username, reportrules.MaxUsername}, {s.Approver, reportrules.MaxApprover}} {
			if err := reportrules.Text(c.v, c.max); err != nil {
				t.Fatalf("%q: %v", c.v, err)
			}
		}
		for _, c := range []struct {
			v   string
			max int
		}{{s.NotApprovedReason, reportrules.MaxNotApprovedReason}, {s.Notes, reportrules.MaxNotes}, {s.PrivateNote, reportrules.MaxPrivateNote}, {s.Escalate, reportrules.MaxEscalate}} {
			if err := reportrules.MultilineText(c.v, c.max); err != nil {
				t.Fatalf("%q: %v", c.v, err)
			}
		}
		if i, err := reportrules.URLs(s.URLs); err != nil {
			t.Fatalf("urls[%d]: %v", i, err)
		}
		if s.Email != "" {
			if _, err := reportrules.Email(s.Email); err != nil {
				t.Fatal(err)
			}
		}
		for _, a := range s.Actions {
			if err := reportrules.Text(a, reportrules.MaxAction); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range s.Files {
			if err := reportrules.FileName(f.Name); err != nil {
				t.Fatal(err)
			}
			if f.LocationURL != "" {
				if err := reportrules.URL(f.LocationURL); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(7, 7))
	for range 300 {
		check(t, reportrules.RandomSample(r))
	}
	l := reportrules.LongestSample()
	check(t, l)
	if reportrules.Len(l.Notes) != reportrules.MaxNotes || reportrules.Len(l.PrivateNote) != reportrules.MaxPrivateNote || reportrules.Len(l.Username) != reportrules.MaxUsername ||
		len(l.Actions) != reportrules.MaxActions || len(l.Files[0].Name) != reportrules.MaxFileName {
		t.Fatalf("the longest sample is not at the limits")
	}
	total := 0
	for _, u := range l.URLs {
		total += reportrules.Len(u) + 1
	}
	if total < reportrules.MaxURLsTotal-30 {
		t.Fatalf("the longest sample's URLs have %d characters in all, want about %d", total, reportrules.MaxURLsTotal)
	}
}

// URLs names the first bad URL, or -1 when the list as a whole breaks a
// limit; every refusal is ErrInvalid.
func TestURLs(t *testing.T) {
	t.Parallel()
	many := make([]string, reportrules.MaxURLs+1)
	for i := range many {
		many[i] = "https://x.org"
	}
	for _, tc := range []struct {
		name string
		urls []string
		idx  int
		ok   bool
	}{
		{"none", nil, 0, true},
		{"as many as allowed", many[:reportrules.MaxURLs], 0, true},
		{"one too many", many, -1, false},
		{"the first bad one is named", []string{"https://x.org", "ftp://x.org", "/y"}, 1, false},
		{"a bad URL is named before the count", append(append([]string{}, many...), "bad"), reportrules.MaxURLs + 1, false},
	} {
		i, err := reportrules.URLs(tc.urls)
		if (err == nil) != tc.ok || i != tc.idx {
			t.Errorf("%s: URLs = %d, %v; want %d, ok %v", tc.name, i, err, tc.idx, tc.ok)
		}
		if err != nil && !errors.Is(err, reportrules.ErrInvalid) {
			t.Errorf("%s: %v is not ErrInvalid", tc.name, err)
		}
	}
}

// An address is limited to MaxEmail characters once bare; what staff
// paste around it may be longer.
func TestEmailLength(t *testing.T) {
	t.Parallel()
	addr := func(n int) string { return strings.Repeat("a", n-len("@example.org")) + "@example.org" }
	for _, tc := range []struct {
		in, want string
	}{
		{addr(reportrules.MaxEmail), addr(reportrules.MaxEmail)},
		{addr(reportrules.MaxEmail + 1), ""},
		{`"` + strings.Repeat("n", 100) + `" <` + addr(100) + ">", addr(100)},
		{strings.Repeat("n", 2*reportrules.MaxEmail) + " <a@example.org>", ""},
	} {
		got, err := reportrules.Email(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("Email(%d characters) = %q, %v; want %q", len(tc.in), got, err, tc.want)
		}
		if err != nil && !errors.Is(err, reportrules.ErrInvalid) {
			t.Errorf("Email: %v is not ErrInvalid", err)
		}
	}
}

func TestPrivateNote(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, note string
		ok         bool
	}{
		{"empty", "", true},
		{"lines and tabs", "asked legal\r\n\tsee ticket 12", true},
		{"at the limit", strings.Repeat("é", reportrules.MaxPrivateNote), true},
		{"over the limit", strings.Repeat("é", reportrules.MaxPrivateNote+1), false},
		{"NUL", "a\x00b", false},
		{"control", "a\x1bb", false},
		{"noncharacter", "a\uffffb", false},
		{"bad UTF-8", "a\xffb", false},
	} {
		err := reportrules.PrivateNote(tc.note)
		if (err == nil) != tc.ok {
			t.Errorf("%s: PrivateNote = %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, reportrules.ErrInvalid) {
			t.Errorf("%s: %v is not ErrInvalid", tc.name, err)
		}
	}
}

func TestActions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		action   string
		internal bool
	}{
		{"content removed", false},
		{"preserved for law enforcement", false},
		{"e-mail sent to legal for deletion", true},
		{"CheckUser data included", true},
		{"  checkuser DATA included ", true},
		{"E-MAIL SENT TO LEGAL FOR DELETION", true},
		{"something else staff typed", false},
		{"", false},
	} {
		if got := reportrules.IsInternal(tc.action); got != tc.internal {
			t.Errorf("IsInternal(%q) = %v, want %v", tc.action, got, tc.internal)
		}
	}
	got := reportrules.ForNCMEC([]string{"content removed", "CheckUser data included", "account locked", "e-mail sent to legal for deletion"})
	if want := []string{"content removed", "account locked"}; !slices.Equal(got, want) {
		t.Errorf("ForNCMEC = %q, want %q", got, want)
	}
	internal := 0
	for _, a := range reportrules.Actions {
		// Every choice must be acceptable input itself.
		if err := reportrules.Text(a.Text, reportrules.MaxAction); err != nil {
			t.Errorf("choice %q: %v", a.Text, err)
		}
		if a.Internal {
			internal++
		}
	}
	if internal != 2 || len(reportrules.Actions) > reportrules.MaxActions {
		t.Errorf("%d choices, %d internal: want the old tool's 2 statements among at most %d", len(reportrules.Actions), internal, reportrules.MaxActions)
	}
}
