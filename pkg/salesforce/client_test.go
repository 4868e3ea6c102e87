package salesforce_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"takedown/pkg/salesforce"
	"takedown/pkg/salesforce/sfsim"
)

const (
	clientID     = "3MVG9-test-consumer-key"
	clientSecret = "s3cr3t-consumer-secret-never-logged"
	username     = "integration@takedown.example"
)

// testKeys are generated once per test binary: RSA generation is slow and
// the tests only need two distinct keys.
var testKeys = sync.OnceValues(func() ([2]*rsa.PrivateKey, error) {
	var k [2]*rsa.PrivateKey
	for i := range k {
		var err error
		if k[i], err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return k, err
		}
	}
	return k, nil
})

// keys returns the key the simulator trusts and another one.
func keys(t *testing.T) (trusted, other *rsa.PrivateKey) {
	t.Helper()
	k, err := testKeys()
	if err != nil {
		t.Fatalf("generate RSA keys: %v", err)
	}
	return k[0], k[1]
}

func startSim(t *testing.T, mutate ...func(*sfsim.Config)) *sfsim.Server {
	t.Helper()
	good, _ := keys(t)
	cfg := sfsim.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		JWTPublicKey: &good.PublicKey,
		JWTUsername:  username,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	return sfsim.Start(t, cfg)
}

// observations records Observe calls.
type observations struct {
	mu  sync.Mutex
	got []string // "endpoint result"
}

func (o *observations) observe(endpoint, result string, _ time.Duration) {
	o.mu.Lock()
	o.got = append(o.got, endpoint+" "+result)
	o.mu.Unlock()
}

func (o *observations) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.got)
}

func newClient(t *testing.T, sim *sfsim.Server, mutate ...func(*salesforce.Options)) *salesforce.Client {
	t.Helper()
	opts := salesforce.Options{
		LoginURL:    sim.URL(),
		Credentials: salesforce.ClientCredentials{ClientID: clientID, ClientSecret: clientSecret},
		// Fast backoff keeps retry tests quick; the schedule's shape is
		// the same as in production.
		BaseBackoff: time.Millisecond,
		MaxBackoff:  10 * time.Millisecond,
	}
	for _, m := range mutate {
		m(&opts)
	}
	c, err := salesforce.New(opts)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return c
}

func inject(t *testing.T, sim *sfsim.Server, f sfsim.Fault) {
	t.Helper()
	if _, err := sim.Inject(f); err != nil {
		t.Fatal(err)
	}
}

func caseFields(subject string) map[string]any {
	return map[string]any{"Subject": subject, "Status": "New", "Type": "Child Protection", "Origin": "Takedown Tool"}
}

func TestClientCredentials(t *testing.T) {
	t.Parallel()
	sim := startSim(t)
	ctx := t.Context()

	c := newClient(t, sim)
	if _, err := c.Upsert(ctx, "Case", sfsim.CaseReportID, "r-1", caseFields("one")); err != nil {
		t.Fatalf("upsert: %v", err)
	}
	if _, err := c.Upsert(ctx, "Case", sfsim.CaseReportID, "r-2", caseFields("two")); err != nil {
		t.Fatalf("upsert: %v", err)
	}
	if n := sim.TokenCount(); n != 1 {
		t.Errorf("tokens issued = %d, want 1 (cached)", n)
	}

	bad := newClient(t, sim, func(o *salesforce.Options) {
		o.Credentials = salesforce.ClientCredentials{ClientID: clientID, ClientSecret: "wrong-" + clientSecret}
	})
	_, err := bad.Upsert(ctx, "Case", sfsim.CaseReportID, "r-3", caseFields("three"))
	var ae *salesforce.AuthError
	if !errors.As(err, &ae) || ae.Code != "invalid_client" || ae.HTTPStatus != http.StatusBadRequest {
		t.Fatalf("wrong secret: err = %v, want *AuthError invalid_client 400", err)
	}
	if salesforce.IsRetryable(err) {
		t.Error("a refused credential must not be retryable")
	}
	if strings.Contains(err.Error(), clientSecret) {
		t.Errorf("error %q contains the secret", err)
	}
	creds := fmt.Sprint(salesforce.ClientCredentials{ClientID: clientID, ClientSecret: clientSecret})
	if strings.Contains(creds, clientSecret) {
		t.Errorf("formatted credentials %q contain the secret", creds)
	}
}

func TestJWTBearer(t *testing.T) {
	t.Parallel()
	good, other := keys(t)
	sim := startSim(t)

	tests := []struct {
		name     string
		creds    salesforce.JWTBearer
		now      func() time.Time
		wantCode string // "" = success
	}{
		{name: "valid", creds: salesforce.JWTBearer{ClientID: clientID, Username: username, Audience: "https://login.salesforce.com", PrivateKey: good}},
		{name: "sandbox audience", creds: salesforce.JWTBearer{ClientID: clientID, Username: username, Audience: "https://test.salesforce.com", PrivateKey: good}},
		{name: "wrong key", creds: salesforce.JWTBearer{ClientID: clientID, Username: username, Audience: "https://login.salesforce.com", PrivateKey: other}, wantCode: "invalid_grant"},
		{name: "wrong issuer", creds: salesforce.JWTBearer{ClientID: "someone-else", Username: username, Audience: "https://login.salesforce.com", PrivateKey: good}, wantCode: "invalid_client_id"},
		{name: "wrong audience", creds: salesforce.JWTBearer{ClientID: clientID, Username: username, Audience: "https://evil.example", PrivateKey: good}, wantCode: "invalid_grant"},
		{name: "unapproved user", creds: salesforce.JWTBearer{ClientID: clientID, Username: "intruder@example", Audience: "https://login.salesforce.com", PrivateKey: good}, wantCode: "invalid_grant"},
		{name: "expired assertion", creds: salesforce.JWTBearer{ClientID: clientID, Username: username, Audience: "https://login.salesforce.com", PrivateKey: good},
			now: func() time.Time { return time.Now().Add(-time.Hour) }, wantCode: "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, sim, func(o *salesforce.Options) {
				o.Credentials = tt.creds
				if tt.now != nil {
					o.Now = tt.now
				}
			})
			_, err := c.Describe(t.Context(), "Case")
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("describe: %v", err)
				}
				return
			}
			var ae *salesforce.AuthError
			if !errors.As(err, &ae) || ae.Code != tt.wantCode {
				t.Fatalf("err = %v, want *AuthError %s", err, tt.wantCode)
			}
			if !salesforce.IsAuth(err) || salesforce.IsRetryable(err) {
				t.Errorf("IsAuth = %v, IsRetryable = %v; want true, false", salesforce.IsAuth(err), salesforce.IsRetryable(err))
			}
		})
	}
}

// TestTokenSingleFlight: many callers start with no token while the token
// endpoint is slow; exactly one token request is made and all wait for it.
// Then the session expires mid-run and exactly one re-authentication happens.
func TestTokenSingleFlight(t *testing.T) {
	t.Parallel()
	sim := startSim(t)
	c := newClient(t, sim)
	ctx := t.Context()
	inject(t, sim, sfsim.Fault{Endpoint: "token", Kind: sfsim.KindSlow, DelayMS: 300})

	const n = 20
	run := func(f func(i int) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { errs[i] = f(i) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	run(func(i int) error {
		_, err := c.Upsert(ctx, "Case", sfsim.CaseReportID, fmt.Sprintf("r-%d", i), caseFields("first"))
		return err
	})
	if got := sim.TokenCount(); got != 1 {
		t.Fatalf("tokens issued for %d concurrent first calls = %d, want 1", n, got)
	}

	// The session expires under concurrent load: every request that
	// carried the old token gets 401; exactly one of them re-authenticates
	// and all replay.
	inject(t, sim, sfsim.Fault{Endpoint: "upsert", Kind: sfsim.KindExpireToken})
	run(func(i int) error {
		_, err := c.Upsert(ctx, "Case", sfsim.CaseReportID, fmt.Sprintf("r-%d", i), caseFields("second"))
		return err
	})
	if got := sim.TokenCount(); got != 2 {
		t.Fatalf("tokens issued after one expiry = %d, want 2", got)
	}
	for _, r := range sim.Records("Case") {
		if r["Subject"] != "second" {
			t.Errorf("case %v: Subject = %v, want second", r[sfsim.CaseReportID], r["Subject"])
		}
	}
}

// TestReauthenticatesOnce: a session that is still refused after one fresh
// token fails with INVALID_SESSION_ID instead of looping.
func TestReauthenticatesOnce(t *testing.T) {
	t.Parallel()
	sim := startSim(t)
	c := newClient(t, sim)
	ctx := t.Context()
	if _, err := c.Describe(ctx, "Case"); err != nil {
		t.Fatal(err)
	}

	inject(t, sim, sfsim.Fault{Endpoint: "describe", Kind: sfsim.KindExpireToken})
	if _, err := c.Describe(ctx, "Case"); err != nil {
		t.Fatalf("describe after expiry: %v", err)
	}
	if got := sim.TokenCount(); got != 2 {
		t.Fatalf("tokens = %d, want 2", got)
	}

	inject(t, sim, sfsim.Fault{Endpoint: "describe", Kind: sfsim.KindExpireToken, Times: 2})
	_, err := c.Describe(ctx, "Case")
	if !salesforce.IsInvalidSession(err) {
		t.Fatalf("err = %v, want INVALID_SESSION_ID after the one replay", err)
	}
	if got := sim.TokenCount(); got != 3 {
		t.Fatalf("tokens = %d, want 3 (one re-authentication for the failed call)", got)
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fault  sfsim.Fault
		result string // Observe result of each failed attempt
	}{
		{"rate limit", sfsim.Fault{Endpoint: "upsert", Kind: sfsim.KindRateLimit, Times: 3}, "REQUEST_LIMIT_EXCEEDED"},
		{"row lock", sfsim.Fault{Endpoint: "upsert", Kind: sfsim.KindLock, Times: 3}, "UNABLE_TO_LOCK_ROW"},
		{"503 burst", sfsim.Fault{Endpoint: "upsert", Kind: sfsim.KindHTTP, Status: 503, Times: 3}, "SERVER_UNAVAILABLE"},
		{"token 503 burst", sfsim.Fault{Endpoint: "token", Kind: sfsim.KindHTTP, Status: 503, Times: 3}, "server_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t)
			var obs observations
			c := newClient(t, sim, func(o *salesforce.Options) { o.Observe = obs.observe })
			inject(t, sim, tt.fault)

			res, err := c.Upsert(t.Context(), "Case", sfsim.CaseReportID, "r-1", caseFields("retried"))
			if err != nil {
				t.Fatalf("upsert: %v", err)
			}
			if !res.Created || len(sim.Records("Case")) != 1 {
				t.Fatalf("result %+v, %d records; want one created", res, len(sim.Records("Case")))
			}
			failures := 0
			for _, o := range obs.list() {
				if strings.HasSuffix(o, " "+tt.result) {
					failures++
				}
			}
			if failures != 3 {
				t.Errorf("observed %v; want 3 failed attempts with %s", obs.list(), tt.result)
			}
		})
	}
}

func TestRetriesAreBounded(t *testing.T) {
	t.Parallel()
	sim := startSim(t)
	var obs observations
	c := newClient(t, sim, func(o *salesforce.Options) { o.Observe = obs.observe; o.MaxAttempts = 3 })
	inject(t, sim, sfsim.Fault{Endpoint: "upsert", Kind: sfsim.KindRateLimit, Times: -1})

	_, err := c.Upsert(t.Context(), "Case", sfsim.CaseReportID, "r-1", caseFields("never"))
	if !salesforce.IsRateLimited(err) || !salesforce.IsRetryable(err) {
		t.Fatalf("err = %v, want a retryable REQUEST_LIMIT_EXCEEDED", err)
	}
	upserts := 0
	for _, o := range obs.list() {
		if strings.HasPrefix(o, "upsert ") {
			upserts++
		}
	}
	if upserts != 3 {
		t.Errorf("upsert attempts = %d, want MaxAttempts = 3", upserts)
	}

	// Backoff waits honour the context.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Upsert(ctx, "Case", sfsim.CaseReportID, "r-1", caseFields("never")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
}

func TestSlowAnswerHonoursContext(t *testing.T) {
	t.Parallel()
	sim := startSim(t)
	c := newClient(t, sim)
	if _, err := c.Describe(t.Context(), "Case"); err != nil {
		t.Fatal(err)
	}
	inject(t, sim, sfsim.Fault{Endpoint: "describe", Kind: sfsim.KindSlow, DelayMS: 60_000})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Describe(ctx, "Case"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestUpsertOutcomes(t *testing.T) {
	t.Parallel()
	// A schema with a non-unique external id field, the only way an upsert
	// can meet several records (300).
	schema := sfsim.DefaultSchema()
	schema[0].Fields = append(schema[0].Fields, sfsim.Field{Name: "Legacy_Key__c", Type: "string", Length: 40, ExternalID: true})
	sim := startSim(t, func(c *sfsim.Config) { c.Objects = schema })
	c := newClient(t, sim)
	ctx := t.Context()

	created, err := c.Upsert(ctx, "Case", sfsim.CaseReportID, "0190a4b2-0000-7000-8000-000000000001", caseFields("first"))
	if err != nil || !created.Created || !strings.HasPrefix(created.ID, "500") || len(created.ID) != 18 {
		t.Fatalf("first upsert = %+v, %v; want created with an 18-character 500… id", created, err)
	}
	updated, err := c.Upsert(ctx, "Case", sfsim.CaseReportID, "0190a4b2-0000-7000-8000-000000000001", map[string]any{"Subject": "second"})
	if err != nil || updated.Created || updated.ID != created.ID {
		t.Fatalf("second upsert = %+v, %v; want updated %s", updated, err, created.ID)
	}
	rec, err := c.GetByExternalID(ctx, "Case", sfsim.CaseReportID, "0190a4b2-0000-7000-8000-000000000001")
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID() != created.ID || rec["Subject"] != "second" || rec["Status"] != "New" {
		t.Errorf("read back %v; want Subject second, Status New, id %s", rec, created.ID)
	}

	for i := range 2 {
		if _, err := sim.Create("Case", map[string]any{sfsim.CaseReportID: fmt.Sprintf("dup-%d", i), "Legacy_Key__c": "L-1"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.Upsert(ctx, "Case", "Legacy_Key__c", "L-1", map[string]any{"Subject": "ambiguous"})
	var mm *salesforce.MultipleMatchesError
	if !errors.As(err, &mm) || len(mm.URLs) != 2 {
		t.Fatalf("upsert on a duplicated key: err = %v, want *MultipleMatchesError with 2 URLs", err)
	}

	_, err = c.Upsert(ctx, "Case", "Subject", "x", map[string]any{"Status": "New"})
	if !salesforce.IsNotFound(err) {
		t.Fatalf("upsert by a field that is not an external id: err = %v, want NOT_FOUND", err)
	}
	if _, err := c.Get(ctx, "Case", "500000000000000AAA"); !salesforce.IsNotFound(err) {
		t.Fatalf("get missing id: err = %v, want NOT_FOUND", err)
	}
}

func TestValidationErrorsAreTyped(t *testing.T) {
	t.Parallel()
	sim := startSim(t)
	c := newClient(t, sim)
	ctx := t.Context()
	parent, err := c.Upsert(ctx, "Case", sfsim.CaseReportID, "r-1", caseFields("parent"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name              string
		object, key       string
		fields            map[string]any
		wantCode, wantFld string
	}{
		{"required field missing", sfsim.FileObject, "f-1", map[string]any{"File_Name__c": "a.jpg"}, salesforce.CodeRequiredFieldMissing, sfsim.FileCase},
		{"string too long", "Case", "r-2", map[string]any{"Subject": strings.Repeat("x", 256)}, salesforce.CodeStringTooLong, "Subject"},
		{"restricted picklist", "Case", "r-3", map[string]any{"Status": "Bogus"}, salesforce.CodeRestrictedPicklist, "Status"},
		{"hash too long", sfsim.FileObject, "f-2", map[string]any{sfsim.FileCase: parent.ID, "MD5__c": strings.Repeat("a", 33)}, salesforce.CodeStringTooLong, "MD5__c"},
		{"read-only field", "Case", "r-4", map[string]any{"CaseNumber": "1"}, salesforce.CodeInvalidFieldForInsert, "CaseNumber"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ext := sfsim.CaseReportID
			if tt.object == sfsim.FileObject {
				ext = sfsim.FileID
			}
			_, err := c.Upsert(t.Context(), tt.object, ext, tt.key, tt.fields)
			var se *salesforce.Error
			if !errors.As(err, &se) || se.Code != tt.wantCode || se.HTTPStatus != http.StatusBadRequest {
				t.Fatalf("err = %v, want *salesforce.Error %s (400)", err, tt.wantCode)
			}
			if !slices.Contains(salesforce.FieldsOf(err), tt.wantFld) {
				t.Errorf("fields = %v, want %s named", salesforce.FieldsOf(err), tt.wantFld)
			}
			if !salesforce.IsValidation(err) || salesforce.IsRetryable(err) {
				t.Errorf("IsValidation = %v, IsRetryable = %v; want true, false", salesforce.IsValidation(err), salesforce.IsRetryable(err))
			}
		})
	}
	_, err = c.Upsert(ctx, "Case", sfsim.CaseReportID, "r-5", map[string]any{"No_Such__c": 1})
	if !salesforce.HasCode(err, salesforce.CodeInvalidField) || !strings.Contains(err.Error(), "No_Such__c") {
		t.Errorf("unknown field: err = %v, want INVALID_FIELD naming No_Such__c", err)
	}
}

// caseWithFiles is the case-writer's write: the Case by report id, then one
// child per file by file id, pointing at the Case through a reference.
func caseWithFiles(c *salesforce.Client, reportID, subject string, files map[string]map[string]any) salesforce.CompositeRequest {
	req := salesforce.CompositeRequest{AllOrNone: true, Subrequests: []salesforce.Subrequest{
		c.UpsertSubrequest("refCase", "Case", sfsim.CaseReportID, reportID, caseFields(subject)),
	}}
	i := 0
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	}) {
		f := files[id]
		f[sfsim.FileCase] = salesforce.Ref("refCase", "id")
		req.Subrequests = append(req.Subrequests, c.UpsertSubrequest(fmt.Sprintf("refFile%d", i), sfsim.FileObject, sfsim.FileID, id, f))
		i++
	}
	return req
}

func TestCompositeAllOrNone(t *testing.T) {
	t.Parallel()
	sim := startSim(t)
	c := newClient(t, sim)
	ctx := t.Context()

	// An existing case whose update must be rolled back too.
	if _, err := c.Upsert(ctx, "Case", sfsim.CaseReportID, "r-1", caseFields("before")); err != nil {
		t.Fatal(err)
	}

	bad := caseWithFiles(c, "r-1", "after", map[string]map[string]any{
		"f-1": {"File_Name__c": "ok.jpg", "MD5__c": strings.Repeat("a", 32)},
		"f-2": {"File_Name__c": "bad.jpg", "SHA256__c": strings.Repeat("b", 65)},
	})
	resp, err := c.Composite(ctx, bad)
	var ce *salesforce.CompositeError
	if !errors.As(err, &ce) || ce.ReferenceID != "refFile1" {
		t.Fatalf("err = %v, want *CompositeError for refFile1", err)
	}
	if !salesforce.HasCode(err, salesforce.CodeStringTooLong) || !slices.Contains(salesforce.FieldsOf(err), "SHA256__c") {
		t.Errorf("err = %v, want STRING_TOO_LONG on SHA256__c", err)
	}
	for _, ref := range []string{"refCase", "refFile0"} {
		r, _ := resp.Result(ref)
		if !salesforce.HasCode(r.Err(), salesforce.CodeProcessingHalted) || r.HTTPStatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d %v, want 400 PROCESSING_HALTED", ref, r.HTTPStatusCode, r.Err())
		}
	}
	cases := sim.Records("Case")
	if len(cases) != 1 || cases[0]["Subject"] != "before" || len(sim.Records(sfsim.FileObject)) != 0 {
		t.Fatalf("after rollback: cases %v, files %v; want the case unchanged and no files", cases, sim.Records(sfsim.FileObject))
	}

	good := caseWithFiles(c, "r-1", "after", map[string]map[string]any{
		"f-1": {"File_Name__c": "ok.jpg", "MD5__c": strings.Repeat("a", 32)},
		"f-2": {"File_Name__c": "fine.jpg", "SHA256__c": strings.Repeat("b", 64)},
	})
	resp, err = c.Composite(ctx, good)
	if err != nil {
		t.Fatalf("composite: %v", err)
	}
	caseRes, _ := resp.Result("refCase")
	cr, err := caseRes.UpsertResult()
	if err != nil || cr.Created {
		t.Fatalf("case result %+v, %v; want updated", cr, err)
	}
	// Read the children back the ordinary way, through SOQL.
	files, err := c.Query(ctx, fmt.Sprintf("SELECT Id, %s, File_Name__c FROM %s WHERE %s = '%s'", sfsim.FileID, sfsim.FileObject, sfsim.FileCase, cr.ID))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.String("File_Name__c"))
	}
	if !slices.Equal(names, []string{"ok.jpg", "fine.jpg"}) {
		t.Errorf("files of case %s = %v, want ok.jpg, fine.jpg", cr.ID, names)
	}
}

func TestCompositeRetriesLockAndOutage(t *testing.T) {
	t.Parallel()
	sim := startSim(t)
	c := newClient(t, sim)
	ctx := t.Context()
	inject(t, sim, sfsim.Fault{Endpoint: "composite", Kind: sfsim.KindLock, Times: 2})
	inject(t, sim, sfsim.Fault{Endpoint: "composite", Kind: sfsim.KindHTTP, Status: 503, After: 2, Times: 2})

	req := caseWithFiles(c, "r-1", "locked", map[string]map[string]any{"f-1": {"File_Name__c": "a.jpg"}})
	if _, err := c.Composite(ctx, req); err != nil {
		t.Fatalf("composite: %v", err)
	}
	if len(sim.Records("Case")) != 1 || len(sim.Records(sfsim.FileObject)) != 1 {
		t.Fatalf("records: %d cases, %d files; want 1 and 1", len(sim.Records("Case")), len(sim.Records(sfsim.FileObject)))
	}
	for _, f := range sim.Faults() {
		if f.Fired != f.Times {
			t.Errorf("fault %+v did not fire %d times", f, f.Times)
		}
	}
}

// TestLostResponseIsIdempotent: Salesforce commits, then the answer is lost.
// Because every write is an upsert by external id, sending it again finds
// the record instead of creating a second one.
func TestLostResponseIsIdempotent(t *testing.T) {
	t.Parallel()

	t.Run("caller retries", func(t *testing.T) {
		t.Parallel()
		sim := startSim(t)
		c := newClient(t, sim, func(o *salesforce.Options) { o.MaxAttempts = 1 })
		ctx := t.Context()
		if _, err := c.Describe(ctx, "Case"); err != nil {
			t.Fatal(err)
		}
		inject(t, sim, sfsim.Fault{Endpoint: "upsert", Kind: sfsim.KindLostResponse})

		_, err := c.Upsert(ctx, "Case", sfsim.CaseReportID, "r-1", caseFields("lost"))
		if err == nil || !salesforce.IsRetryable(err) {
			t.Fatalf("upsert with a lost answer: err = %v; want a retryable transport error", err)
		}
		if n := len(sim.Records("Case")); n != 1 {
			t.Fatalf("after the lost answer: %d cases, want 1 (committed)", n)
		}
		res, err := c.Upsert(ctx, "Case", sfsim.CaseReportID, "r-1", caseFields("lost"))
		if err != nil || res.Created {
			t.Fatalf("retry = %+v, %v; want the existing case updated", res, err)
		}
		if n := len(sim.Records("Case")); n != 1 {
			t.Fatalf("after the retry: %d cases, want still 1", n)
		}
	})

	t.Run("client retries upsert", func(t *testing.T) {
		t.Parallel()
		sim := startSim(t)
		c := newClient(t, sim)
		inject(t, sim, sfsim.Fault{Endpoint: "upsert", Kind: sfsim.KindLostResponse})
		res, err := c.Upsert(t.Context(), "Case", sfsim.CaseReportID, "r-1", caseFields("lost"))
		if err != nil || res.Created {
			t.Fatalf("upsert = %+v, %v; want success that found the committed case", res, err)
		}
		if n := len(sim.Records("Case")); n != 1 {
			t.Fatalf("%d cases, want 1", n)
		}
	})

	t.Run("client retries composite", func(t *testing.T) {
		t.Parallel()
		sim := startSim(t)
		c := newClient(t, sim)
		inject(t, sim, sfsim.Fault{Endpoint: "composite", Kind: sfsim.KindLostResponse})
		inject(t, sim, sfsim.Fault{Endpoint: "composite", Kind: sfsim.KindDrop, After: 1})
		req := caseWithFiles(c, "r-1", "lost", map[string]map[string]any{"f-1": {"File_Name__c": "a.jpg"}, "f-2": {"File_Name__c": "b.jpg"}})
		resp, err := c.Composite(t.Context(), req)
		if err != nil {
			t.Fatalf("composite: %v", err)
		}
		for _, r := range resp.Results {
			if r.HTTPStatusCode != http.StatusOK {
				t.Errorf("%s: %d, want 200 (updated by the retry)", r.ReferenceID, r.HTTPStatusCode)
			}
		}
		if nc, nf := len(sim.Records("Case")), len(sim.Records(sfsim.FileObject)); nc != 1 || nf != 2 {
			t.Fatalf("%d cases, %d files; want 1 and 2", nc, nf)
		}
	})
}

func TestCheckSchema(t *testing.T) {
	t.Parallel()
	sim := startSim(t)
	c := newClient(t, sim)
	ctx := t.Context()

	ok := []salesforce.ObjectSchema{
		{Object: "Case", ExternalIDField: sfsim.CaseReportID, Fields: []string{"Subject", "Status", "NCMEC_Report_Id__c"}},
		{Object: sfsim.FileObject, ExternalIDField: sfsim.FileID, Fields: []string{sfsim.FileCase, "SHA256__c", "MD5__c"}},
	}
	if err := c.CheckSchema(ctx, ok...); err != nil {
		t.Fatalf("check default schema: %v", err)
	}
	if err := c.CheckVersion(ctx); err != nil {
		t.Fatalf("check version: %v", err)
	}

	err := c.CheckSchema(ctx,
		salesforce.ObjectSchema{Object: "Case", ExternalIDField: "Subject", Fields: []string{"Subject", "Report_Hash__c", "CaseNumber"}},
		salesforce.ObjectSchema{Object: "Reported_File__c", Fields: []string{"Hash__c"}},
	)
	var se *salesforce.SchemaError
	if !errors.As(err, &se) || !slices.Equal(se.Missing, []string{"Report_Hash__c"}) {
		t.Fatalf("err = %v, want a SchemaError naming Report_Hash__c", err)
	}
	for _, want := range []string{"Report_Hash__c", "Subject is not flagged External ID", "CaseNumber is not writable", "Reported_File__c", "Hash__c"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLimitInfo(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *sfsim.Config) { c.APILimit = 3 })
	var mu sync.Mutex
	var seen [][2]int
	c := newClient(t, sim, func(o *salesforce.Options) {
		o.OnLimitInfo = func(used, max int) {
			mu.Lock()
			seen = append(seen, [2]int{used, max})
			mu.Unlock()
		}
		o.MaxAttempts = 1
	})
	ctx := t.Context()
	for range 3 {
		if _, err := c.Describe(ctx, "Case"); err != nil {
			t.Fatal(err)
		}
	}
	// The daily allocation is spent: Salesforce refuses with 403.
	if _, err := c.Describe(ctx, "Case"); !salesforce.IsRateLimited(err) {
		t.Fatalf("err = %v, want REQUEST_LIMIT_EXCEEDED past the limit", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := [][2]int{{1, 3}, {2, 3}, {3, 3}, {4, 3}}
	if !slices.Equal(seen, want) {
		t.Errorf("limit info = %v, want %v", seen, want)
	}
}
