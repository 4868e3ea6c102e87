package localstack_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"takedown/pkg/localstack"
)

const shipped = "../../deploy/nats/nats.conf"

// The shipped file loads with the services' passwords, keeps its users and
// gains the local admin in their account: what a service creates there,
// the admin sees. The passwords leave the environment again.
func TestNATSOptionsLoadsTheShippedUsers(t *testing.T) {
	services := []string{"intake", "ncmec-reporter", "case-writer", "audit-logger", "retraction"}
	pw := map[string]string{}
	for _, s := range services {
		pw[s] = "pw-" + s
	}
	opts, err := localstack.NATSOptions(shipped, localstack.NATSLocal{Port: -1, StoreDir: t.TempDir(), AdminPassword: "admin-pw", Passwords: pw})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range services {
		if _, set := os.LookupEnv(localstack.NATSPasswordVar(s)); set {
			t.Errorf("%s left in the environment", localstack.NATSPasswordVar(s))
		}
	}
	if len(opts.Users) != len(services)+1 {
		t.Fatalf("%d users, want the %d of the file and the admin", len(opts.Users), len(services))
	}
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	defer s.Shutdown()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	intake, err := nats.Connect(s.ClientURL(), nats.UserInfo("intake", pw["intake"]))
	if err != nil {
		t.Fatal(err)
	}
	defer intake.Close()
	js, _ := jetstream.New(intake)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TAKEDOWN", Subjects: []string{"takedown.>"}}); err != nil {
		t.Fatalf("intake creates the stream: %v", err)
	}
	admin, err := nats.Connect(s.ClientURL(), nats.UserInfo(localstack.NATSAdmin, "admin-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ajs, _ := jetstream.New(admin)
	st, err := ajs.Stream(ctx, "TAKEDOWN")
	if err != nil {
		t.Fatalf("the admin does not see the services' stream: %v", err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Errorf("the admin may not purge: %v", err)
	}
	if _, err := nats.Connect(s.ClientURL(), nats.UserInfo("intake", "wrong")); err == nil {
		t.Error("a wrong password was accepted")
	}
}

// A file that already has a user of the admin's name is refused rather
// than given a second one.
func TestNATSOptionsRefusesAnAdminInTheFile(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(`accounts { A { jetstream: enabled, users: [ {user: `+localstack.NATSAdmin+`, password: x} ] } }`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := localstack.NATSOptions(conf, localstack.NATSLocal{Port: -1, StoreDir: t.TempDir(), AdminPassword: "y"}); err == nil {
		t.Error("loaded a file defining the admin user")
	}
}
