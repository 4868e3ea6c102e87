package auditlog

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/database"
)

// DefaultWriterRole is the database role the service works as.
const DefaultWriterRole = "takedown_audit_writer"

// ValidRole matches the role names accepted in configuration: plain
// identifiers, so that a name never needs quoting to be read right.
var ValidRole = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// GrantWriter makes role the one the service runs as: it creates it (NOLOGIN)
// when missing and grants it exactly what the service needs in schema:
// reading and appending to the log, moving the chain head, the outbox and
// the inbox. Never UPDATE, DELETE or TRUNCATE on the log. pool connects as
// the schema's owner, which has just applied the migrations.
//
// It runs at every start, so a role that was changed by hand is set right
// again. Roles are cluster-wide while grants are per database: creating the
// role tolerates another database's service creating it at the same moment.
func GrantWriter(ctx context.Context, pool *pgxpool.Pool, schema, role string) error {
	if !ValidRole.MatchString(role) {
		return fmt.Errorf("audit role %q: not a plain lower-case identifier", role)
	}
	r := pgx.Identifier{role}.Sanitize()
	s := pgx.Identifier{schema}.Sanitize()
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		return fmt.Errorf("audit role %s: %w", role, err)
	}
	if !exists {
		// Only when missing, so that a login user without CREATEROLE works
		// with a role an administrator made. A concurrent CREATE ROLE fails
		// with duplicate_object or, racing on the catalog, unique_violation.
		if _, err := pool.Exec(ctx, `DO $$ BEGIN
			CREATE ROLE `+r+` NOLOGIN;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
		END $$`); err != nil {
			return fmt.Errorf("audit role %s: create: %w", role, err)
		}
	}
	return database.InTx(ctx, pool, func(tx pgx.Tx) error {
		// Concurrent GRANTs on one object can fail ("tuple concurrently
		// updated"); replicas starting together take turns.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('takedown.audit.grants.' || $1))`, schema); err != nil {
			return fmt.Errorf("audit role %s: %w", role, err)
		}
		for _, stmt := range []string{
			`GRANT USAGE ON SCHEMA ` + s + ` TO ` + r,
			`REVOKE ALL ON ` + s + `.entries, ` + s + `.chain_head FROM ` + r,
			`GRANT SELECT, INSERT ON ` + s + `.entries TO ` + r,
			`GRANT SELECT, UPDATE ON ` + s + `.chain_head TO ` + r,
			`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + s + `.outbox TO ` + r,
			`GRANT SELECT, INSERT ON ` + s + `.inbox TO ` + r,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("audit role %s: %s: %w", role, stmt, err)
			}
		}
		return nil
	})
}

// CanAssume reports whether the current login user may SET ROLE to role,
// so that a missing grant is reported clearly at start, not as a failed
// connection later.
func CanAssume(ctx context.Context, pool *pgxpool.Pool, role string) (bool, error) {
	var ok bool
	err := pool.QueryRow(ctx, `SELECT pg_has_role(current_user, $1, 'MEMBER')`, role).Scan(&ok)
	return ok, err
}
