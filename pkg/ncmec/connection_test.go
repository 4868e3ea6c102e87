package ncmec_test

import (
	"strings"
	"testing"

	"takedown/pkg/ncmec"
	"takedown/pkg/ncmec/ncmecsim"
)

// CheckConnection tells refused credentials from an environment that does
// not answer, and never puts the password in its detail.
func TestCheckConnection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		password string // "" for the right one
		fault    *ncmecsim.Fault
		state    string
		detail   string
	}{
		{name: "ok", state: ncmec.ConnectionOK, detail: "Remote User : " + ncmecsim.TestUsername},
		{name: "wrong password", password: "wrong-password-42", state: ncmec.ConnectionRefused, detail: "http 401"},
		{name: "code 2000", fault: &ncmecsim.Fault{Endpoint: "status", Kind: "code", Code: 2000}, state: ncmec.ConnectionRefused, detail: "code 2000"},
		{name: "code 3000", fault: &ncmecsim.Fault{Endpoint: "status", Kind: "code", Code: 3000}, state: ncmec.ConnectionRefused, detail: "code 3000"},
		{name: "http 503", fault: &ncmecsim.Fault{Endpoint: "status", Kind: "http", Status: 503}, state: ncmec.ConnectionUnreachable, detail: "http 503"},
		{name: "dropped", fault: &ncmecsim.Fault{Endpoint: "status", Kind: "drop"}, state: ncmec.ConnectionUnreachable, detail: "ncmec status"},
		{name: "server error code", fault: &ncmecsim.Fault{Endpoint: "status", Kind: "code", Code: 1000}, state: ncmec.ConnectionUnreachable, detail: "code 1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, c := startSim(t, ncmecsim.Options{}, func(o *ncmec.Options) {
				if tc.password != "" {
					o.Password = tc.password
				}
			})
			if tc.fault != nil {
				if err := sim.Inject(*tc.fault); err != nil {
					t.Fatal(err)
				}
			}
			state, detail := c.CheckConnection(ctx(t))
			if state != tc.state || !strings.Contains(detail, tc.detail) {
				t.Errorf("CheckConnection = %q, %q; want %q with %q", state, detail, tc.state, tc.detail)
			}
			for _, secret := range []string{ncmecsim.TestPassword, "wrong-password-42"} {
				if strings.Contains(detail, secret) {
					t.Errorf("detail %q holds the password", detail)
				}
			}
		})
	}
}
