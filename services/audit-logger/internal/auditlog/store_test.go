package auditlog

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func openLog(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := testenv.Schema(t, "audit", Migrations)
	return pool
}

// Writers appending at once still make one gap-free chain, and an event
// appended twice is one entry.
func TestConcurrentAppendsMakeOneChain(t *testing.T) {
	t.Parallel()
	pool := openLog(t)
	ctx := t.Context()
	const writers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				env := event(t, nil)
				for range 2 { // the same event twice
					err := database.InTx(ctx, pool, func(tx pgx.Tx) error {
						_, err := Append(ctx, tx, []Record{{Event: env, StreamSeq: uint64(w*100 + i)}}, time.Now())
						return err
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	res, err := Verify(ctx, pool, 7) // batches that do not divide the chain
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Entries != writers*each {
		t.Fatalf("verify = %+v (first bad %+v), want ok with %d entries", res, res.FirstBad, writers*each)
	}
	seq, _, err := Head(ctx, pool)
	if err != nil || seq != writers*each {
		t.Fatalf("head = %d, %v", seq, err)
	}
	page, err := List(ctx, pool, "", 10, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 5 || page[0].Seq != 11 || page[4].Seq != 15 {
		t.Fatalf("page after 10: %d entries from %d", len(page), page[0].Seq)
	}
}

func TestVerifySeesOneSnapshot(t *testing.T) {
	t.Parallel()
	pool := openLog(t)
	ctx := t.Context()
	appendN := func(n int) {
		for range n {
			if err := database.InTx(ctx, pool, func(tx pgx.Tx) error {
				_, err := Append(ctx, tx, []Record{{Event: event(t, nil), StreamSeq: 1}}, time.Now())
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(3)
	// Appends while a walk is under way are not seen by it, and do not make
	// it report entries past the head it read.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			res, err := Verify(context.Background(), pool, 1)
			if err != nil || !res.OK {
				t.Errorf("verify during appends: %+v, %v", res, err)
				return
			}
		}
	}()
	appendN(20)
	<-done
}

// Granting runs at every start: a second time changes nothing and fails
// nothing, and the login user may then act as the role.
func TestGrantWriterIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := testenv.Schema(t, "audit", outbox.Migrations, stream.Migrations, Migrations)
	for range 2 {
		if err := GrantWriter(ctx, pool, "audit", DefaultWriterRole); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := CanAssume(ctx, pool, DefaultWriterRole); err != nil || !ok {
		t.Fatalf("may not act as the writer role: %v %v", ok, err)
	}
	if err := GrantWriter(ctx, pool, "audit", `x"; DROP TABLE entries; --`); err == nil {
		t.Fatal("a role name that needs quoting was accepted")
	}
}

// An entry names staff by name and e-mail; the e-mail is in the column and
// the hashed content alike, so the chain verifies, and an actor without one
// keeps the content as format 1 wrote it.
func TestEntryKeepsTheStaffEmail(t *testing.T) {
	t.Parallel()
	pool := openLog(t)
	ctx := t.Context()
	withEmail := events.Staff("sub-1", "Ada Staff")
	withEmail.Email = "ada@example.org"
	for i, actor := range []*pb.Actor{withEmail, events.Staff("sub-2", "Bo")} {
		env, err := events.New("", actor, &pb.StaffAction{Action: "sign_in"})
		if err != nil {
			t.Fatal(err)
		}
		if err := database.InTx(ctx, pool, func(tx pgx.Tx) error {
			_, err := Append(ctx, tx, []Record{{Event: env, StreamSeq: uint64(i + 1)}}, time.Now())
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := List(ctx, pool, "", 0, 10)
	if err != nil || len(page) != 2 {
		t.Fatalf("list: %d entries, %v", len(page), err)
	}
	if a := page[0].Actor; a.Name != "Ada Staff" || a.Email != "ada@example.org" {
		t.Errorf("first entry's actor %+v", a)
	}
	if !bytes.Contains(page[0].Content, []byte(`"email":"ada@example.org"`)) || bytes.Contains(page[1].Content, []byte(`"email"`)) {
		t.Errorf("contents: %s / %s", page[0].Content, page[1].Content)
	}
	if res, err := Verify(ctx, pool, 10); err != nil || !res.OK {
		t.Fatalf("verify = %+v, %v", res, err)
	}
}

// A batch is appended in order, as one unbroken run of the chain; an event
// logged already, in an earlier batch, is left out and the rest still link.
func TestBatchAppendLeavesOutLoggedEvents(t *testing.T) {
	t.Parallel()
	pool := openLog(t)
	ctx := t.Context()
	a, b, c := event(t, nil), event(t, nil), event(t, nil)
	appendAll := func(envs ...*pb.Envelope) []Entry {
		t.Helper()
		recs := make([]Record, len(envs))
		for i, env := range envs {
			recs[i] = Record{Event: env, StreamSeq: uint64(i + 1)}
		}
		var added []Entry
		if err := database.InTx(ctx, pool, func(tx pgx.Tx) (err error) {
			added, err = Append(ctx, tx, recs, time.Now())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return added
	}
	if got := appendAll(a); len(got) != 1 || got[0].Seq != 1 {
		t.Fatalf("first batch added %+v", got)
	}
	got := appendAll(b, a, c) // a is logged already
	if len(got) != 2 || got[0].EventID != b.EventId || got[1].EventID != c.EventId || got[0].Seq != 2 || got[1].Seq != 3 {
		t.Fatalf("second batch added %d entries, want b and c as 2 and 3: %+v", len(got), got)
	}
	if !bytes.Equal(got[1].PrevHash, got[0].Hash) {
		t.Error("c does not link to b")
	}
	if got := appendAll(c, b); len(got) != 0 {
		t.Fatalf("a batch of logged events added %d entries", len(got))
	}
	res, err := Verify(ctx, pool, 2)
	if err != nil || !res.OK || res.Entries != 3 {
		t.Fatalf("verify = %+v, %v; want ok with 3 entries", res, err)
	}
	if seq, _, err := Head(ctx, pool); err != nil || seq != 3 {
		t.Fatalf("head = %d, %v; want 3", seq, err)
	}
}
