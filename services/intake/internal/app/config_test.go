package app_test

import (
	"strings"
	"testing"

	"takedown/pkg/config"
	"takedown/services/intake/internal/app"
)

func load(env map[string]string) (app.Config, error) {
	base := map[string]string{"DATABASE_URL": "postgres://x", "S3_ENDPOINT": "s3:9000", "S3_ACCESS_KEY": "a", "S3_SECRET_KEY": "s",
		"MASTER_KEYS": "k1:x", "MASTER_KEY_ID": "k1", "TAKEDOWN_DEV_TOKEN": "t"}
	l := config.New(func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		v, ok := base[k]
		return v, ok
	})
	c := app.LoadConfig(l)
	return c, l.Err()
}

// TestRetractionURLMustBeHTTPS: the status page forwards the staff
// member's bearer token to the retraction service; over http anyone on
// the path could replay it. The http default is for the local stack only.
func TestRetractionURLMustBeHTTPS(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		refused bool
	}{
		{map[string]string{"RETRACTION_URL": "https://retraction.example"}, false},
		{map[string]string{"RETRACTION_URL": "http://retraction.example"}, true},
		{nil, true}, // the default, http://127.0.0.1:8081
		{map[string]string{config.DevAllowHTTP: "true"}, false},
		{map[string]string{"RETRACTION_URL": "http://127.0.0.1:9", config.DevAllowHTTP: "true"}, false},
	} {
		_, err := load(tc.env)
		if (err != nil) != tc.refused || tc.refused && !strings.Contains(err.Error(), "RETRACTION_URL:") {
			t.Errorf("%v: %v", tc.env, err)
		}
	}
}

// TestHTTPSPublicURLTurnsOnHSTS: staff reach intake over https only.
func TestHTTPSPublicURLTurnsOnHSTS(t *testing.T) {
	for url, want := range map[string]bool{"https://takedown.example": true, "http://127.0.0.1:8080": false} {
		c, err := load(map[string]string{"PUBLIC_URL": url, "RETRACTION_URL": "https://retraction.example"})
		if err != nil {
			t.Fatal(err)
		}
		if c.Service.HSTS != want || c.Session.Secure != want {
			t.Errorf("PUBLIC_URL %s: HSTS %v, secure cookie %v; want %v", url, c.Service.HSTS, c.Session.Secure, want)
		}
	}
}

// TestLegalApprovalIsRequiredByDefault: unless the operator says the team
// records legal's decision itself, a report waits for a second person.
func TestLegalApprovalIsRequiredByDefault(t *testing.T) {
	for _, tc := range []struct {
		value   string
		hold    bool
		refused bool
	}{
		{"", true, false},
		{"required", true, false},
		{"recorded", false, false},
		{"optional", false, true},
	} {
		env := map[string]string{"RETRACTION_URL": "https://retraction.example"}
		if tc.value != "" {
			env["LEGAL_APPROVAL"] = tc.value
		}
		c, err := load(env)
		if (err != nil) != tc.refused || (err == nil && c.HoldForLegal != tc.hold) {
			t.Errorf("LEGAL_APPROVAL=%q: hold %v, err %v; want hold %v, refused %v", tc.value, c.HoldForLegal, err, tc.hold, tc.refused)
		}
	}
}
