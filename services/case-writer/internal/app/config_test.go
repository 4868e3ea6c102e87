package app_test

import (
	"strings"
	"testing"

	"takedown/pkg/config"
	"takedown/services/case-writer/internal/app"
)

func TestConfigNamesEachProblem(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://x", "SALESFORCE_URL": "https://example.my.salesforce.com", "SALESFORCE_CLIENT_ID": "cid"}
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no credentials", nil, []string{"SALESFORCE_CLIENT_SECRET: required"}},
		{"both flows", map[string]string{"SALESFORCE_CLIENT_SECRET": "s", "SALESFORCE_JWT_KEY_FILE": "/k.pem", "SALESFORCE_USERNAME": "u"}, []string{"not both"}},
		{"JWT without user", map[string]string{"SALESFORCE_JWT_KEY_FILE": "/k.pem"}, []string{"SALESFORCE_USERNAME"}},
		{"missing URL and bad backoff", map[string]string{"SALESFORCE_URL": "", "SALESFORCE_CLIENT_SECRET": "s", "CASE_RETRY_BACKOFF": "1m", "CASE_RETRY_MAX_BACKOFF": "1s"},
			[]string{"SALESFORCE_URL: required", "CASE_RETRY_MAX_BACKOFF"}},
		// The client secret travels to this URL.
		{"plain http", map[string]string{"SALESFORCE_URL": "http://example.my.salesforce.com", "SALESFORCE_CLIENT_SECRET": "s"},
			[]string{"SALESFORCE_URL: it is plain http", "DEV_ALLOW_HTTP"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.env {
				env[k] = v
			}
			l := config.New(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			app.LoadConfig(l)
			err := l.Err()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), `"s"`) {
				t.Errorf("the secret appears in %q", err)
			}
		})
	}
	l := config.New(func(k string) (string, bool) {
		v, ok := map[string]string{"DATABASE_URL": "postgres://x", "SALESFORCE_URL": "https://example.my.salesforce.com", "SALESFORCE_CLIENT_ID": "cid", "SALESFORCE_CLIENT_SECRET": "s"}[k]
		return v, ok
	})
	if cfg := app.LoadConfig(l); l.Err() != nil || cfg.APIVersion != "v64.0" || cfg.Service.ListenAddr != ":8084" {
		t.Fatalf("defaults: %v %+v", l.Err(), cfg)
	}
}
