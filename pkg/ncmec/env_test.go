package ncmec

import (
	"strings"
	"testing"

	"takedown/pkg/config"
)

// TestLoadEnvironmentsRefusesPlainHTTP: the NCMEC password travels to both
// URLs with every call.
func TestLoadEnvironmentsRefusesPlainHTTP(t *testing.T) {
	base := map[string]string{"NCMEC_USERNAME": "isp", "NCMEC_PASSWORD": "pw"}
	for _, tc := range []struct {
		env  map[string]string
		want string // the variable refused, or "" for none
	}{
		{nil, ""},
		{map[string]string{"NCMEC_URL": "http://report.example/ispws"}, "NCMEC_URL:"},
		{map[string]string{"NCMEC_TEST_URL": "http://exttest.example/ispws"}, "NCMEC_TEST_URL:"},
		{map[string]string{"NCMEC_URL": "http://127.0.0.1:8090/ispws", "NCMEC_TEST_URL": "http://127.0.0.1:8090/ispws", config.DevAllowHTTP: "true"}, ""},
	} {
		l := config.New(func(k string) (string, bool) {
			if v, ok := tc.env[k]; ok {
				return v, true
			}
			v, ok := base[k]
			return v, ok
		})
		LoadEnvironments(l)
		err := l.Err()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want %q", tc.env, err, tc.want)
		}
	}
}
