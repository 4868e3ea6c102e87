package localstack_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"takedown/pkg/database"
	"takedown/pkg/localstack"
	"takedown/pkg/testenv"
)

// Each service's login migrates and uses its own schema, is no superuser,
// and is refused another service's schema: a missing GRANT fails locally as
// in production. The audit logger's login may work as its writer role.
func TestServiceLoginsOwnTheirSchemaOnly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	admin := testenv.Postgres(t)
	logins := testenv.ServiceLogins(t, admin, "intake", "ncmec-reporter", localstack.AuditLogger)

	urlOf := func(service string) string { return logins[service].URL }
	intake, err := database.Open(ctx, urlOf("intake"), "intake")
	if err != nil {
		t.Fatal(err)
	}
	defer intake.Close()
	if err := database.Migrate(ctx, intake, "intake"); err != nil {
		t.Fatalf("migrate as the service's login: %v", err)
	}
	if _, err := intake.Exec(ctx, `CREATE TABLE reports (id text); INSERT INTO reports VALUES ('r1')`); err != nil {
		t.Fatal(err)
	}

	reporter, err := pgx.Connect(ctx, urlOf("ncmec-reporter"))
	if err != nil {
		t.Fatal(err)
	}
	defer reporter.Close(context.Background())
	var user string
	var super bool
	if err := reporter.QueryRow(ctx, `SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&user, &super); err != nil {
		t.Fatal(err)
	}
	if user != logins["ncmec-reporter"].Role || super {
		t.Errorf("connected as %s (superuser %v), want %s, no superuser", user, super, logins["ncmec-reporter"].Role)
	}
	var n int
	err = reporter.QueryRow(ctx, `SELECT count(*) FROM intake.reports`).Scan(&n)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("ncmec-reporter read intake's schema: %v (rows %d), want insufficient_privilege", err, n)
	}

	audit, err := pgx.Connect(ctx, urlOf(localstack.AuditLogger))
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close(context.Background())
	writer := logins[localstack.AuditLogger].AuditRole
	if _, err := audit.Exec(ctx, `SET ROLE `+pgx.Identifier{writer}.Sanitize()); err != nil {
		t.Errorf("audit-logger may not work as %s: %v", writer, err)
	}
}
