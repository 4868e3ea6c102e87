package sfsim_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"takedown/pkg/salesforce"
	"takedown/pkg/salesforce/sfsim"
)

const (
	clientID     = "sim-client"
	clientSecret = "sim-secret"
	username     = "integration@takedown.example"
)

// These tests speak raw HTTP to pin the wire shapes of API.md §7, which the
// client tests only see through the client.

type answer struct {
	status int
	header http.Header
	raw    []byte
}

func (a answer) json(t *testing.T) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(a.raw, &v); err != nil {
		t.Fatalf("decode %s: %v", a.raw, err)
	}
	return v
}

func call(t *testing.T, method, u, tok, contentType string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, raw}
}

func tokenRequest(t *testing.T, sim *sfsim.Server, form url.Values) answer {
	t.Helper()
	return call(t, http.MethodPost, sim.URL()+"/services/oauth2/token", "", "application/x-www-form-urlencoded", []byte(form.Encode()))
}

func accessToken(t *testing.T, sim *sfsim.Server) string {
	t.Helper()
	a := tokenRequest(t, sim, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {clientSecret}})
	if a.status != http.StatusOK {
		t.Fatalf("token: %d %s", a.status, a.raw)
	}
	var ok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(a.raw, &ok); err != nil {
		t.Fatal(err)
	}
	return ok.AccessToken
}

func jsonCall(t *testing.T, sim *sfsim.Server, tok, method, path string, body any) answer {
	t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	return call(t, method, sim.URL()+"/services/data/v64.0"+path, tok, "application/json", b)
}

func errorCode(t *testing.T, a answer) string {
	t.Helper()
	var errs []struct {
		ErrorCode string `json:"errorCode"`
	}
	if err := json.Unmarshal(a.raw, &errs); err != nil || len(errs) == 0 {
		t.Fatalf("error body %s is not an error array", a.raw)
	}
	return errs[0].ErrorCode
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sim := sfsim.Start(t, sfsim.Config{ClientID: clientID, ClientSecret: clientSecret, JWTPublicKey: &key.PublicKey, JWTUsername: username})

	a := tokenRequest(t, sim, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {clientSecret}})
	var ok map[string]any
	if err := json.Unmarshal(a.raw, &ok); err != nil || a.status != http.StatusOK {
		t.Fatalf("token: %d %s", a.status, a.raw)
	}
	for _, k := range []string{"access_token", "signature", "scope", "instance_url", "id", "token_type", "issued_at"} {
		if _, present := ok[k]; !present {
			t.Errorf("token response lacks %s: %s", k, a.raw)
		}
	}
	if _, present := ok["expires_in"]; present {
		t.Error("token response has expires_in; Salesforce sends none")
	}
	if ok["instance_url"] != sim.URL() || ok["token_type"] != "Bearer" || !regexp.MustCompile(`^\d{13}$`).MatchString(fmt.Sprint(ok["issued_at"])) {
		t.Errorf("token response %s: want instance_url %s, Bearer, issued_at in ms", a.raw, sim.URL())
	}

	// Credentials in a Basic header work too.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, sim.URL()+"/services/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("basic auth: %v %v", resp, err)
	}
	resp.Body.Close()

	enc := base64.RawURLEncoding
	unsigned := func(alg string) string {
		h := enc.EncodeToString([]byte(`{"alg":"` + alg + `"}`))
		c := enc.EncodeToString(fmt.Appendf(nil, `{"iss":%q,"sub":%q,"aud":"https://login.salesforce.com","exp":%d}`, clientID, username, time.Now().Add(time.Minute).Unix()))
		return h + "." + c + "."
	}
	signed := func(claims map[string]any) string {
		s, err := salesforce.SignJWT(key, claims)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	claims := func(exp time.Duration) map[string]any {
		return map[string]any{"iss": clientID, "sub": username, "aud": "https://login.salesforce.com", "exp": time.Now().Add(exp).Unix()}
	}
	tests := []struct {
		name      string
		form      url.Values
		wantError string // "" = 200
	}{
		{"jwt valid", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {signed(claims(time.Minute))}}, ""},
		{"jwt alg none", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {unsigned("none")}}, "invalid_grant"},
		{"jwt alg HS256", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {unsigned("HS256") + "c2ln"}}, "invalid_grant"},
		{"jwt exp too far", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {signed(claims(10 * time.Minute))}}, "invalid_grant"},
		{"jwt expired", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {signed(claims(-time.Second))}}, "invalid_grant"},
		{"jwt garbage", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {"a.b"}}, "invalid_grant"},
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {"nope"}}, "invalid_client"},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}, "client_id": {"nope"}, "client_secret": {clientSecret}}, "invalid_client_id"},
		{"password grant", url.Values{"grant_type": {"password"}}, "unsupported_grant_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := tokenRequest(t, sim, tt.form)
			if tt.wantError == "" {
				if a.status != http.StatusOK {
					t.Fatalf("%d %s, want 200", a.status, a.raw)
				}
				return
			}
			var e struct{ Error, ErrorDescription string }
			if err := json.Unmarshal(a.raw, &e); err != nil || a.status != http.StatusBadRequest || e.Error != tt.wantError {
				t.Fatalf("%d %s, want 400 %s", a.status, a.raw, tt.wantError)
			}
		})
	}
}

func TestRESTWireShapes(t *testing.T) {
	t.Parallel()
	sim := sfsim.Start(t, sfsim.Config{ClientID: clientID, ClientSecret: clientSecret})
	tok := accessToken(t, sim)

	// The versions list needs no session and carries no limit header.
	a := call(t, http.MethodGet, sim.URL()+"/services/data/", "", "", nil)
	if a.status != http.StatusOK || !bytes.Contains(a.raw, []byte(`"url":"/services/data/v64.0"`)) || a.header.Get("Sforce-Limit-Info") != "" {
		t.Errorf("versions: %d %s (limit header %q)", a.status, a.raw, a.header.Get("Sforce-Limit-Info"))
	}
	if a := call(t, http.MethodGet, sim.URL()+"/services/data/v30.0/sobjects", tok, "", nil); a.status != http.StatusGone {
		t.Errorf("retired version: %d, want 410", a.status)
	}
	if a := call(t, http.MethodGet, sim.URL()+"/services/data/v99.0/sobjects", tok, "", nil); a.status != http.StatusNotFound {
		t.Errorf("unknown version: %d, want 404", a.status)
	}

	a = jsonCall(t, sim, "", http.MethodGet, "/sobjects/Case/describe", nil)
	if a.status != http.StatusUnauthorized || string(a.raw) != `[{"errorCode":"INVALID_SESSION_ID","message":"Session expired or invalid"}]` {
		t.Errorf("no session: %d %s", a.status, a.raw)
	}

	a = jsonCall(t, sim, tok, http.MethodPatch, "/sobjects/Case/Takedown_Report_Id__c/r-1", map[string]any{"Subject": "s"})
	if a.status != http.StatusCreated || a.header.Get("Location") == "" {
		t.Fatalf("upsert create: %d %s", a.status, a.raw)
	}
	if !regexp.MustCompile(`^api-usage=\d+/15000$`).MatchString(a.header.Get("Sforce-Limit-Info")) {
		t.Errorf("Sforce-Limit-Info = %q", a.header.Get("Sforce-Limit-Info"))
	}
	created := a.json(t).(map[string]any)
	if created["created"] != true || created["success"] != true {
		t.Errorf("upsert create body %s", a.raw)
	}
	id := created["id"].(string)

	a = jsonCall(t, sim, tok, http.MethodPatch, "/sobjects/Case/Takedown_Report_Id__c/R-1", map[string]any{"Subject": "t"})
	if a.status != http.StatusOK || !bytes.Contains(a.raw, []byte(`"created":false`)) || !bytes.Contains(a.raw, []byte(id)) {
		t.Errorf("upsert update (external ids match case-insensitively): %d %s", a.status, a.raw)
	}

	a = jsonCall(t, sim, tok, http.MethodGet, "/sobjects/Case/"+id[:15], nil)
	if a.status != http.StatusOK || !bytes.HasPrefix(a.raw, []byte(`{"attributes":{"type":"Case","url":"/services/data/v64.0/sobjects/Case/`+id+`"},"Id":"`+id+`"`)) {
		t.Errorf("get by 15-character id: %d %s", a.status, a.raw)
	}
	a = jsonCall(t, sim, tok, http.MethodGet, "/sobjects/Case/"+id+"?fields=Subject,Status", nil)
	if want := `{"attributes":{"type":"Case","url":"/services/data/v64.0/sobjects/Case/` + id + `"},"Subject":"t","Status":"New"}`; string(a.raw) != want {
		t.Errorf("get with fields = %s, want %s", a.raw, want)
	}

	a = jsonCall(t, sim, tok, http.MethodPatch, "/sobjects/Case/"+id, map[string]any{"Priority": "High"})
	if a.status != http.StatusNoContent || len(a.raw) != 0 {
		t.Errorf("update by id: %d %s, want 204 and no body", a.status, a.raw)
	}

	checks := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"not an id", http.MethodGet, "/sobjects/Case/23foo", nil, 404, "NOT_FOUND"},
		{"unknown object", http.MethodGet, "/sobjects/Nope__c/describe", nil, 404, "NOT_FOUND"},
		{"not an external id", http.MethodPatch, "/sobjects/Case/Subject/x", map[string]any{}, 404, "NOT_FOUND"},
		{"Id in body", http.MethodPost, "/sobjects/Case", map[string]any{"Id": id}, 400, "INVALID_FIELD"},
		{"external id in body", http.MethodPatch, "/sobjects/Case/Takedown_Report_Id__c/r-2", map[string]any{"Takedown_Report_Id__c": "r-2"}, 400, "INVALID_FIELD"},
		{"duplicate unique value", http.MethodPost, "/sobjects/Case", map[string]any{"Takedown_Report_Id__c": "r-1"}, 400, "DUPLICATE_VALUE"},
		{"bad reference", http.MethodPost, "/sobjects/Evidence_File__c", map[string]any{"Case__c": "001000000000001", "Takedown_File_Id__c": "f"}, 400, "MALFORMED_ID"},
		{"bad datetime", http.MethodPatch, "/sobjects/Case/Takedown_Report_Id__c/r-3", map[string]any{"Incident_Time__c": "yesterday"}, 400, "JSON_PARSER_ERROR"},
		{"bad soql", http.MethodGet, "/query?q=" + url.QueryEscape("SELECT FROM"), nil, 400, "MALFORMED_QUERY"},
	}
	for _, c := range checks {
		a := jsonCall(t, sim, tok, c.method, c.path, c.body)
		if a.status != c.status || errorCode(t, a) != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, a.status, a.raw, c.status, c.code)
		}
	}

	a = jsonCall(t, sim, tok, http.MethodGet, "/sobjects/Case/describe", nil)
	var d salesforce.ObjectDescribe
	if err := json.Unmarshal(a.raw, &d); err != nil {
		t.Fatal(err)
	}
	f, ok := d.Field("Takedown_Report_Id__c")
	if d.KeyPrefix != "500" || !ok || !f.ExternalID || !f.Unique || f.Length != 36 || f.Nillable {
		t.Errorf("describe: prefix %s, report id field %+v", d.KeyPrefix, f)
	}
	st, _ := d.Field("Status")
	if !st.RestrictedPicklist || len(st.PicklistValues) != 4 || !st.DefaultedOnCreate {
		t.Errorf("describe Status: %+v", st)
	}

	a = jsonCall(t, sim, tok, http.MethodGet, "/query?q="+url.QueryEscape("SELECT Id, Subject FROM Case WHERE Takedown_Report_Id__c = 'r-1' AND Priority = 'High' LIMIT 5"), nil)
	if a.status != http.StatusOK || !bytes.Contains(a.raw, []byte(`"totalSize":1`)) || !bytes.Contains(a.raw, []byte(`"done":true`)) {
		t.Errorf("query: %d %s", a.status, a.raw)
	}
}

func TestCompositeWithoutAllOrNone(t *testing.T) {
	t.Parallel()
	sim := sfsim.Start(t, sfsim.Config{ClientID: clientID, ClientSecret: clientSecret})
	tok := accessToken(t, sim)
	req := map[string]any{"allOrNone": false, "compositeRequest": []map[string]any{
		{"method": "PATCH", "url": "/services/data/v64.0/sobjects/Case/Takedown_Report_Id__c/r-1", "referenceId": "refCase", "body": map[string]any{"Status": "Bogus"}},
		{"method": "PATCH", "url": "/services/data/v64.0/sobjects/Evidence_File__c/Takedown_File_Id__c/f-1", "referenceId": "refFile", "body": map[string]any{"Case__c": "@{refCase.id}"}},
		{"method": "PATCH", "url": "/services/data/v64.0/sobjects/Case/Takedown_Report_Id__c/r-2", "referenceId": "refOther", "body": map[string]any{"Subject": "independent"}},
		{"method": "GET", "url": "/services/data/v64.0/sobjects/Case/@{refOther.id}?fields=Subject", "referenceId": "refRead"},
	}}
	a := jsonCall(t, sim, tok, http.MethodPost, "/composite", req)
	if a.status != http.StatusOK {
		t.Fatalf("composite: %d %s", a.status, a.raw)
	}
	var resp struct {
		CompositeResponse []struct {
			Body           json.RawMessage
			HTTPStatusCode int
			ReferenceID    string
		}
	}
	if err := json.Unmarshal(a.raw, &resp); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status int
		has    string
	}{
		{400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"},
		{400, "PROCESSING_HALTED"}, // depends on the failed one
		{201, `"created":true`},    // independent: committed
		{200, `"Subject":"independent"`},
	}
	for i, w := range want {
		r := resp.CompositeResponse[i]
		if r.HTTPStatusCode != w.status || !bytes.Contains(r.Body, []byte(w.has)) {
			t.Errorf("%s: %d %s, want %d with %s", r.ReferenceID, r.HTTPStatusCode, r.Body, w.status, w.has)
		}
	}
	if n := len(sim.Records("Case")); n != 1 {
		t.Errorf("%d cases, want 1 (the independent one)", n)
	}

	tooMany := map[string]any{"allOrNone": true, "compositeRequest": make([]map[string]any, 26)}
	for i := range 26 {
		tooMany["compositeRequest"].([]map[string]any)[i] = map[string]any{"method": "GET", "url": "/services/data/v64.0/limits", "referenceId": fmt.Sprintf("r%d", i)}
	}
	if a := jsonCall(t, sim, tok, http.MethodPost, "/composite", tooMany); a.status != http.StatusBadRequest {
		t.Errorf("26 subrequests: %d %s, want 400", a.status, a.raw)
	}
	if n := sim.APIUsage(); n != 2 {
		t.Errorf("API usage = %d, want 2: a composite counts as one call", n)
	}
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	off := sfsim.Start(t, sfsim.Config{ClientID: clientID, ClientSecret: clientSecret})
	if a := call(t, http.MethodGet, off.URL()+"/_sim/state", "", "", nil); a.status != http.StatusNotFound {
		t.Errorf("admin off: GET /_sim/state = %d, want 404", a.status)
	}

	sim := sfsim.Start(t, sfsim.Config{ClientID: clientID, ClientSecret: clientSecret, Admin: true})
	a := call(t, http.MethodPost, sim.URL()+"/_sim/faults", "", "application/json", []byte(`{"endpoint":"upsert","kind":"http","times":1}`))
	if a.status != http.StatusCreated || !bytes.Contains(a.raw, []byte(`"status":503`)) {
		t.Fatalf("inject: %d %s", a.status, a.raw)
	}
	a = call(t, http.MethodPost, sim.URL()+"/_sim/faults", "", "application/json", []byte(`{"endpoint":"upsert","kind":"explode"}`))
	if a.status != http.StatusBadRequest || !bytes.Contains(a.raw, []byte(`"code":"invalid_fault"`)) {
		t.Errorf("bad fault: %d %s", a.status, a.raw)
	}

	tok := accessToken(t, sim)
	if a := jsonCall(t, sim, tok, http.MethodPatch, "/sobjects/Case/Takedown_Report_Id__c/r-1", map[string]any{}); a.status != http.StatusServiceUnavailable || errorCode(t, a) != "SERVER_UNAVAILABLE" {
		t.Errorf("faulted upsert: %d %s", a.status, a.raw)
	}
	if a := jsonCall(t, sim, tok, http.MethodPatch, "/sobjects/Case/Takedown_Report_Id__c/r-1", map[string]any{}); a.status != http.StatusCreated {
		t.Errorf("upsert after the fault: %d %s", a.status, a.raw)
	}

	a = call(t, http.MethodGet, sim.URL()+"/_sim/faults", "", "", nil)
	if !bytes.Contains(a.raw, []byte(`"fired":1`)) {
		t.Errorf("faults: %s", a.raw)
	}
	var st sfsim.State
	a = call(t, http.MethodGet, sim.URL()+"/_sim/state", "", "", nil)
	if err := json.Unmarshal(a.raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.TokenCount != 1 || len(st.Records["Case"]) != 1 || st.Records["Case"][0]["Takedown_Report_Id__c"] != "r-1" {
		t.Errorf("state: %s", a.raw)
	}
	if a := call(t, http.MethodDelete, sim.URL()+"/_sim/faults", "", "", nil); a.status != http.StatusNoContent || len(sim.Faults()) != 0 {
		t.Errorf("clear faults: %d, %d left", a.status, len(sim.Faults()))
	}
}

func TestDropAndLostResponse(t *testing.T) {
	t.Parallel()
	sim := sfsim.Start(t, sfsim.Config{ClientID: clientID, ClientSecret: clientSecret})
	tok := accessToken(t, sim)
	send := func(key string) error {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPatch, sim.URL()+"/services/data/v64.0/sobjects/Case/Takedown_Report_Id__c/"+key, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if _, err := sim.Inject(sfsim.Fault{Endpoint: "upsert", Kind: sfsim.KindDrop}); err != nil {
		t.Fatal(err)
	}
	if err := send("dropped"); err == nil || len(sim.Records("Case")) != 0 {
		t.Fatalf("drop: err %v, %d cases; want an error and nothing written", err, len(sim.Records("Case")))
	}
	if _, err := sim.Inject(sfsim.Fault{Endpoint: "upsert", Kind: sfsim.KindLostResponse}); err != nil {
		t.Fatal(err)
	}
	if err := send("lost"); err == nil || len(sim.Records("Case")) != 1 {
		t.Fatalf("lost_response: err %v, %d cases; want an error and the case written", err, len(sim.Records("Case")))
	}
}

func TestWrites(t *testing.T) {
	t.Parallel()
	sim := sfsim.Start(t, sfsim.Config{ClientID: clientID, ClientSecret: clientSecret})
	tok := accessToken(t, sim)
	upsert := func(subject, status string) {
		t.Helper()
		req := map[string]any{"allOrNone": true, "compositeRequest": []map[string]any{
			{"method": "PATCH", "url": "/services/data/v64.0/sobjects/Case/Takedown_Report_Id__c/r-1", "referenceId": "refCase", "body": map[string]any{"Subject": subject}},
			{"method": "PATCH", "url": "/services/data/v64.0/sobjects/Case/Takedown_Report_Id__c/r-2", "referenceId": "refOther", "body": map[string]any{"Status": status}},
		}}
		if a := jsonCall(t, sim, tok, http.MethodPost, "/composite", req); a.status != http.StatusOK {
			t.Fatalf("composite: %d %s", a.status, a.raw)
		}
	}
	upsert("first", "New")
	upsert("first", "New") // the same values again: still a write
	upsert("rolled back", "Bogus")
	cases := sim.Records("Case")
	if len(cases) != 2 {
		t.Fatalf("%d cases, want 2", len(cases))
	}
	for _, c := range cases {
		id := c["Id"].(string)
		if n := sim.Writes(id); n != 2 {
			t.Errorf("case %s (%v): %d writes, want 2 (the rolled-back one does not count)", id, c["Takedown_Report_Id__c"], n)
		}
		if n := sim.Writes(id[:15]); n != 2 {
			t.Errorf("case %s by its 15-character id: %d writes, want 2", id, n)
		}
	}
	if n := sim.Writes("500000000000000AAA"); n != 0 {
		t.Errorf("unknown id: %d writes", n)
	}
}

// The simulator finds records by external id through an index; these are
// the writes that must keep it true: a changed external id, a delete and a
// rolled-back composite.
func TestExternalIDLookupFollowsWrites(t *testing.T) {
	t.Parallel()
	sim := sfsim.Start(t, sfsim.Config{ClientID: clientID, ClientSecret: clientSecret})
	tok := accessToken(t, sim)
	upsert := func(ext string) answer {
		return jsonCall(t, sim, tok, http.MethodPatch, "/sobjects/Case/Takedown_Report_Id__c/"+ext, map[string]any{"Subject": "s"})
	}
	get := func(ext string) int {
		return jsonCall(t, sim, tok, http.MethodGet, "/sobjects/Case/Takedown_Report_Id__c/"+ext, nil).status
	}
	a := upsert("r-1")
	if a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.raw)
	}
	id := a.json(t).(map[string]any)["id"].(string)

	if a := jsonCall(t, sim, tok, http.MethodPatch, "/sobjects/Case/"+id, map[string]any{"Takedown_Report_Id__c": "r-2"}); a.status != http.StatusNoContent {
		t.Fatalf("change the external id: %d %s", a.status, a.raw)
	}
	if got := get("r-1"); got != http.StatusNotFound {
		t.Errorf("old external id after the change: %d, want 404", got)
	}
	if a := upsert("R-2"); a.status != http.StatusOK || !bytes.Contains(a.raw, []byte(id)) {
		t.Errorf("upsert by the new external id: %d %s, want the record updated", a.status, a.raw)
	}
	if a := upsert("r-3"); a.status != http.StatusCreated {
		t.Fatalf("second record: %d %s", a.status, a.raw)
	}
	if a := jsonCall(t, sim, tok, http.MethodPatch, "/sobjects/Case/"+id, map[string]any{"Takedown_Report_Id__c": "R-3"}); errorCode(t, a) != "DUPLICATE_VALUE" {
		t.Errorf("taking another record's external id: %d %s, want DUPLICATE_VALUE", a.status, a.raw)
	}

	if a := jsonCall(t, sim, tok, http.MethodDelete, "/sobjects/Case/Takedown_Report_Id__c/r-2", nil); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.raw)
	}
	if got := get("r-2"); got != http.StatusNotFound {
		t.Errorf("deleted record by external id: %d, want 404", got)
	}

	req := map[string]any{"allOrNone": true, "compositeRequest": []map[string]any{
		{"method": "PATCH", "url": "/services/data/v64.0/sobjects/Case/Takedown_Report_Id__c/r-9", "referenceId": "ok", "body": map[string]any{"Subject": "rolled back"}},
		{"method": "PATCH", "url": "/services/data/v64.0/sobjects/Case/Takedown_Report_Id__c/r-10", "referenceId": "bad", "body": map[string]any{"Status": "Bogus"}},
	}}
	if a := jsonCall(t, sim, tok, http.MethodPost, "/composite", req); a.status != http.StatusOK {
		t.Fatalf("composite: %d %s", a.status, a.raw)
	}
	if got := get("r-9"); got != http.StatusNotFound {
		t.Errorf("a create rolled back by allOrNone: %d, want 404", got)
	}
	if got := get("r-3"); got != http.StatusOK {
		t.Errorf("a record untouched by the rollback: %d, want 200", got)
	}
}
