package ncmec

import (
	"fmt"
	"time"

	"takedown/pkg/config"
)

// Environment is one CyberTipline environment with its credentials: reports
// marked test go to the test environment with its own.
type Environment struct {
	Name     string // "production" or "test"
	URL      string
	Username string
	Password config.Secret
}

// Configured reports whether the environment has credentials.
func (e Environment) Configured() bool { return e.Username != "" && e.Password != "" }

// Environments are the two environments a service files or retracts in.
type Environments struct {
	Production, Test Environment
	CallTimeout      time.Duration
	IdleConns        int // see Options.IdleConns
}

// LoadEnvironments reads NCMEC_URL, NCMEC_USERNAME, NCMEC_PASSWORD (required)
// and NCMEC_TEST_URL, NCMEC_TEST_USERNAME, NCMEC_TEST_PASSWORD (both or
// neither), and NCMEC_CALL_TIMEOUT.
func LoadEnvironments(l *config.Loader) Environments {
	e := Environments{
		Production: Environment{
			Name:     "production",
			URL:      l.RemoteURL("NCMEC_URL", ProductionURL),
			Username: l.MustString("NCMEC_USERNAME"),
			Password: l.Secret("NCMEC_PASSWORD", config.Required),
		},
		Test: Environment{
			Name:     "test",
			URL:      l.RemoteURL("NCMEC_TEST_URL", TestURL),
			Username: l.String("NCMEC_TEST_USERNAME", ""),
			Password: l.Secret("NCMEC_TEST_PASSWORD", config.Optional),
		},
		CallTimeout: l.Duration("NCMEC_CALL_TIMEOUT", time.Minute),
	}
	if (e.Test.Username == "") != (e.Test.Password == "") {
		l.Fail("NCMEC_TEST_USERNAME", "set both NCMEC_TEST_USERNAME and NCMEC_TEST_PASSWORD, or neither")
	}
	return e
}

// Clients makes a client per configured environment, keyed by name.
func (e Environments) Clients(observe func(endpoint, result string, d time.Duration)) (map[string]*Client, error) {
	out := map[string]*Client{}
	for _, env := range []Environment{e.Production, e.Test} {
		if !env.Configured() {
			continue
		}
		c, err := New(Options{BaseURL: env.URL, Username: env.Username, Password: env.Password.Reveal(),
			CallTimeout: e.CallTimeout, IdleConns: e.IdleConns, Observe: observe})
		if err != nil {
			return nil, fmt.Errorf("NCMEC %s environment: %w", env.Name, err)
		}
		out[env.Name] = c
	}
	return out, nil
}
