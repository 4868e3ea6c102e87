package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"takedown/pkg/database"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// priorCTReports cites only reports NCMEC finished, in the same
// environment, about the same platform's account.
func TestPriorNCMECReportsCiteTheSameAccountInTheSameEnvironment(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := database.Open(ctx, testenv.Postgres(t), "intake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := database.Migrate(ctx, pool, "intake", store.Migrations); err != nil {
		t.Fatal(err)
	}
	s := store.New(pool)

	add := func(ncmecID int64, env, state string, d report.Details) {
		t.Helper()
		details, _ := json.Marshal(d)
		if _, err := pool.Exec(ctx, `INSERT INTO reports (id, submitted_at, submitted_by, incident_time, details,
				data_key_id, data_key, ncmec_report_id, ncmec_environment, ncmec_state)
			VALUES ($1, now(), 'staff', now(), $2, 'k', '\x00', $3, $4, $5)`,
			uuid.Must(uuid.NewV7()), details, ncmecID, env, state); err != nil {
			t.Fatal(err)
		}
	}
	who := func(platform, username, email string, test bool) report.Details {
		return report.Details{Platform: platform, Uploader: report.Uploader{Username: username, Email: email}, Test: test}
	}
	add(1, "production", "finished", who("wiki", "mallory", "", false))
	add(2, "production", "finished", who("wiki", "other", "Mallory@Example.com", false))
	add(3, "test", "finished", who("wiki", "mallory", "", true))                     // a test filing
	add(4, "production", "finished", who("forum", "mallory", "", false))             // another platform's mallory
	add(5, "production", "opened", who("wiki", "mallory", "", false))                // not finished
	add(6, "production", "retracted", who("wiki", "mallory", "", false))             // withdrawn
	add(7, "production", "finished", who("", "mallory", "", false))                  // no platform named
	add(8, "production", "finished", who("forum", "", "mallory@example.com", false)) // another platform's e-mail

	for _, tc := range []struct {
		name string
		d    report.Details
		want string
	}{
		{"production, by username or e-mail", who("wiki", "mallory", "mallory@example.com", false), "[1 2]"},
		{"test cites only test reports", who("wiki", "mallory", "", true), "[3]"},
		{"another platform's same username", who("forum", "mallory", "", false), "[4]"},
		{"another platform's same e-mail", who("forum", "", "MALLORY@example.com", false), "[8]"},
		{"no platform is a platform of its own", who("", "mallory", "", false), "[7]"},
		{"nobody", who("wiki", "", "", false), "[]"},
		{"a stranger", who("wiki", "trent", "trent@example.com", false), "[]"},
	} {
		got, err := s.PriorNCMECReports(ctx, tc.d)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("%s: cites %v, want %s", tc.name, got, tc.want)
		}
	}
}
