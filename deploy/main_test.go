// Package deploy_test checks the deployment files against the real system:
// the NATS permissions against an embedded server running deploy/nats's
// configuration, the alert rules with promtool, the dashboard and rules
// against the metrics the services really export, and docker-compose.yml
// with the compose-spec loader.
package deploy_test

import (
	"testing"

	"takedown/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
