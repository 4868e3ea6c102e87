package auditlog

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"takedown/pkg/events"
	pb "takedown/pkg/proto/takedown/v1"
)

func event(t *testing.T, payload any) *pb.Envelope {
	t.Helper()
	var env *pb.Envelope
	var err error
	switch p := payload.(type) {
	case *pb.ReportSubmitted:
		env, err = events.New(events.NewID(), events.Staff("alice", "Alice"), p)
	case *pb.StaffAction:
		env, err = events.New("", events.Staff("bob", "Bob"), p)
	default:
		env, err = events.New(events.NewID(), events.Service("ncmec-reporter"), &pb.NcmecOpened{NcmecReportId: 42})
	}
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// chain builds n entries the way Append does, without a database.
func chain(t *testing.T, n int) []Entry {
	t.Helper()
	var out []Entry
	seq, prev := int64(0), GenesisHash
	for i := range n {
		e, err := NewEntry(seq, prev, event(t, nil), uint64(i+10), time.Now(), "")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
		seq, prev = e.Seq, e.Hash
	}
	return out
}

func walk(entries []Entry, headSeq int64, headHash []byte) Result {
	w := NewWalker(headSeq, headHash)
	for _, e := range entries {
		w.Add(e)
	}
	return w.Finish()
}

func TestWalkerCatchesTampering(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, c []Entry) []Entry
		bad     int64 // seq of the first bad entry; 0: the chain verifies
		reason  string
		entries int64
	}{
		{"untouched", func(t *testing.T, c []Entry) []Entry { return c }, 0, "", 5},
		{"content changed", func(t *testing.T, c []Entry) []Entry {
			c[2].Content = bytes.Replace(c[2].Content, []byte(`"ncmec.opened"`), []byte(`"ncmec.closed"`), 1)
			return c
		}, 3, "hash does not match", 5},
		{"column changed", func(t *testing.T, c []Entry) []Entry {
			c[1].Actor.Name = "someone else"
			return c
		}, 2, "actor differs from the hashed content", 5},
		{"column and hash recomputed", func(t *testing.T, c []Entry) []Entry {
			c[1].Type = "case.upserted"
			c[1].Hash = Hash(c[1].PrevHash, c[1].Content)
			return c
		}, 2, "type differs", 5},
		{"deleted", func(t *testing.T, c []Entry) []Entry { return append(c[:2:2], c[3:]...) }, 4, "entry 3 is missing", 4},
		{"first deleted", func(t *testing.T, c []Entry) []Entry { return c[1:] }, 2, "entries 1 to 1 are missing", 4},
		{"last deleted", func(t *testing.T, c []Entry) []Entry { return c[:4] }, 5, "chain head is at 5", 4},
		{"reordered", func(t *testing.T, c []Entry) []Entry {
			c[1], c[2] = c[2], c[1]
			c[1].Seq, c[2].Seq = 2, 3
			return c
		}, 2, "prev_hash is not the hash of entry 1", 5},
		{"appended past the head", func(t *testing.T, c []Entry) []Entry {
			e, err := NewEntry(5, c[4].Hash, event(t, nil), 99, time.Now(), "")
			if err != nil {
				t.Fatal(err)
			}
			return append(c, e)
		}, 6, "past the chain head", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := chain(t, 5)
			headSeq, headHash := c[4].Seq, c[4].Hash
			c = tc.tamper(t, c)
			res := walk(c, headSeq, headHash)
			if res.Entries != tc.entries {
				t.Errorf("entries = %d, want %d", res.Entries, tc.entries)
			}
			if tc.bad == 0 {
				if !res.OK || res.FirstBad != nil {
					t.Fatalf("want ok, got %+v", res.FirstBad)
				}
				return
			}
			if res.OK || res.FirstBad == nil {
				t.Fatal("tampering not caught")
			}
			if res.FirstBad.Seq != tc.bad || !strings.Contains(res.FirstBad.Reason, tc.reason) {
				t.Errorf("first bad = %+v, want seq %d with %q", res.FirstBad, tc.bad, tc.reason)
			}
		})
	}
}

func TestEmptyChainVerifies(t *testing.T) {
	if res := walk(nil, 0, GenesisHash); !res.OK || res.Entries != 0 {
		t.Fatalf("%+v", res)
	}
}

func TestContentIsDeterministicAndRedactsTheDataKey(t *testing.T) {
	secret := []byte("wrapped-data-key-ciphertext")
	env := event(t, &pb.ReportSubmitted{
		Report:  &pb.Report{Id: "r", Platform: "Example"},
		Files:   []*pb.File{{Id: "f", Sha256: "ab"}},
		DataKey: &pb.WrappedKey{MasterKeyId: "k1", Ciphertext: secret},
	})
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	a, err := NewEntry(0, GenesisHash, env, 1, at, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewEntry(0, GenesisHash, env, 1, at, "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Content, b.Content) || !bytes.Equal(a.Hash, b.Hash) {
		t.Fatal("the same entry encoded twice differs")
	}
	if bytes.Contains(a.Content, secret) || strings.Contains(string(a.Content), "d3JhcHBlZC1kYXRhLWtleS1jaXBoZXJ0ZXh0") {
		t.Fatal("the wrapped data key is in the log")
	}
	if len(env.GetReportSubmitted().DataKey.Ciphertext) == 0 {
		t.Fatal("redaction changed the caller's event")
	}
	got, err := a.Event()
	if err != nil {
		t.Fatal(err)
	}
	if got.GetReportSubmitted().GetDataKey().GetMasterKeyId() != "k1" || got.GetReportSubmitted().GetFiles()[0].GetSha256() != "ab" {
		t.Fatalf("the recorded event lost its fields: %v", got)
	}
	if !strings.Contains(string(a.Content), `"redacted":["report_submitted.data_key.ciphertext"]`) ||
		!strings.Contains(string(a.Content), `"recorded_at":"2026-01-02T03:04:05.123456Z"`) {
		t.Fatalf("content: %s", a.Content)
	}
	if res := walk([]Entry{a}, 1, a.Hash); !res.OK {
		t.Fatalf("%+v", res.FirstBad)
	}
}
