package reportrules

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Sample is a report's input as these rules see it, for the property tests
// of intake (which must accept every sample) and of the NCMEC builder and
// the case mapping (which must file and case every sample). The samples
// reach for the edges of what the rules allow: every field at its limit,
// multi-byte and right-to-left text, XML's special characters, line breaks
// where they are allowed.
type Sample struct {
	Platform          string
	URLs              []string
	Username          string
	Email             string // as staff typed it; Email gives what is kept
	LegalApproved     bool
	Approver          string
	NotApprovedReason string
	Actions           []string
	Notes             string
	PrivateNote       string
	Escalate          string
	Files             []SampleFile
}

// SampleFile is one file's metadata.
type SampleFile struct {
	Name        string
	LocationURL string
	Annotations []string
}

// Pools of characters the rules allow. text may hold anything printable,
// invisible format characters included (a right-to-left mark is honest in
// Arabic notes); names and URLs may not.
var (
	namePool = []string{"a", "Z", "0", " ", ".", "..", "-", "_", "'", "&", "<", ">", "]]>", "\"", "é", "ß", "中", "文",
		"😀", "\u05d0", "\u0627", "\u00a0", "e\u0301", "%", "#", "~"}
	textPool = append(append([]string{}, namePool...), "\u200f", "\u202e", "\u200b", "\ufeff", "\u2028")
	lines    = append(append([]string{}, textPool...), "\n", "\r\n", "\r", "\t")
	urlPool  = []string{"a", "Z", "0", "-", ".", "_", "~", "%20", "%00", "é", "中", "😀", "&", "=", "?", "#", "'", "(", ")", "!", "*", "+", ",", ";", ":", "@", "<", ">"}
)

// fill returns s grown from pool to exactly n characters (n ≥ Len(s)).
func fill(r *rand.Rand, s string, n int, pool []string) string {
	var b strings.Builder
	b.WriteString(s)
	have := Len(s)
	for have < n {
		p := pool[r.IntN(len(pool))]
		if have+Len(p) > n {
			p = "x"
		}
		b.WriteString(p)
		have += Len(p)
	}
	return b.String()
}

// upTo is a random length from 0 to max, at max a quarter of the time.
func upTo(r *rand.Rand, max int) int {
	if r.IntN(4) == 0 {
		return max
	}
	return r.IntN(max + 1)
}

func randomURL(r *rand.Rand, n int) string {
	s := "https://example.org/"
	if r.IntN(2) == 0 {
		s = "http://xn--bcher-kva.example:8080/"
	}
	if n < Len(s) {
		n = Len(s)
	}
	return fill(r, s, n, urlPool)
}

func randomName(r *rand.Rand, max int) string {
	for {
		var b strings.Builder
		n := 1 + r.IntN(max)
		for b.Len() < n {
			p := namePool[r.IntN(len(namePool))]
			if b.Len()+len(p) > n {
				p = "a"
			}
			b.WriteString(p)
		}
		if s := b.String(); FileName(s) == nil {
			return s
		}
	}
}

// RandomSample returns a sample drawn from r.
func RandomSample(r *rand.Rand) Sample {
	s := Sample{
		Platform:          fill(r, "", upTo(r, MaxPlatform), textPool),
		Username:          fill(r, "", upTo(r, MaxUsername), textPool),
		LegalApproved:     r.IntN(2) == 0,
		Approver:          fill(r, "", upTo(r, MaxApprover), textPool),
		NotApprovedReason: fill(r, "", upTo(r, MaxNotApprovedReason), lines),
		Notes:             fill(r, "", upTo(r, MaxNotes), lines),
		PrivateNote:       fill(r, "", upTo(r, MaxPrivateNote), lines),
		Escalate:          fill(r, "", upTo(r, MaxEscalate), lines),
	}
	if s.LegalApproved && strings.TrimSpace(s.Approver) == "" {
		s.Approver = "legal"
	}
	switch r.IntN(3) {
	case 0:
		s.Email = fill(r, "u", 1+r.IntN(40), []string{"a", "b", "+", "_", "-", "9"}) + "@example.com"
	case 1:
		s.Email = `"` + fill(r, "", r.IntN(30), []string{"a", "é", " ", "<", ">", "@", ","}) + `" <x@example.com>`
	}
	total := 0
	for range r.IntN(6) {
		u := randomURL(r, upTo(r, MaxURL))
		if total+Len(u)+1 > MaxURLsTotal {
			break
		}
		total += Len(u) + 1
		s.URLs = append(s.URLs, u)
	}
	for range upTo(r, MaxActions) {
		s.Actions = append(s.Actions, fill(r, "", 1+r.IntN(MaxAction), textPool))
	}
	for range 1 + r.IntN(3) {
		f := SampleFile{Name: randomName(r, MaxFileName)}
		if r.IntN(2) == 0 {
			f.LocationURL = randomURL(r, upTo(r, MaxURL))
		}
		for range r.IntN(4) {
			f.Annotations = append(f.Annotations, fill(r, "", 1+r.IntN(MaxAnnotation), textPool))
		}
		s.Files = append(s.Files, f)
	}
	return s
}

// LongestSample returns the sample with every field at its limit: the
// most any report intake accepts can ask of the services downstream.
func LongestSample() Sample {
	r := rand.New(rand.NewPCG(1, 2))
	s := Sample{
		Platform:          fill(r, "", MaxPlatform, textPool),
		Username:          fill(r, "", MaxUsername, textPool),
		Email:             strings.Repeat("a", 64) + "@" + strings.Repeat("b", MaxEmail-64-1-4) + ".com",
		Approver:          fill(r, "", MaxApprover, textPool),
		NotApprovedReason: fill(r, "", MaxNotApprovedReason, lines),
		Notes:             fill(r, "", MaxNotes, lines),
		PrivateNote:       fill(r, "", MaxPrivateNote, lines),
		Escalate:          fill(r, "", MaxEscalate, lines),
	}
	// URLs of MaxURL characters up to the total, then one filling it.
	left := MaxURLsTotal
	for left > 1 {
		n := min(MaxURL, left-1)
		if n < 30 {
			break
		}
		s.URLs = append(s.URLs, randomURL(r, n))
		left -= n + 1
	}
	for range MaxActions {
		s.Actions = append(s.Actions, fill(r, "", MaxAction, textPool))
	}
	f := SampleFile{Name: strings.Repeat("中", MaxFileName/3), LocationURL: randomURL(r, MaxURL)}
	for i := range MaxAnnotations {
		f.Annotations = append(f.Annotations, fill(r, fmt.Sprint(i), MaxAnnotation, textPool))
	}
	s.Files = []SampleFile{f, {Name: "a..b.png"}}
	return s
}
