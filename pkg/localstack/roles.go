package localstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// AuditLogger is the service that works as a second role of its own (its
// AUDIT_DB_ROLE, without UPDATE or DELETE on the log) besides its login.
const AuditLogger = "audit-logger"

// ServiceLogin is what one service connects to PostgreSQL as.
type ServiceLogin struct {
	Role string
	URL  string // the service's DATABASE_URL
	// AuditRole is the audit logger's AUDIT_DB_ROLE; empty for the others.
	AuditRole string
}

// Env is the login as the service's environment variables.
func (l ServiceLogin) Env() []string {
	env := []string{"DATABASE_URL=" + l.URL}
	if l.AuditRole != "" {
		env = append(env, "AUDIT_DB_ROLE="+l.AuditRole)
	}
	return env
}

// ServiceLogins gives each service a PostgreSQL login of its own in the
// database of adminURL, as production does (docs/deployment.md): a role
// named <database>_<service> that may connect and create its schema, so it
// owns that schema and nothing else; it is no superuser and reads no other
// service's schema. A statement a service runs without the privilege fails
// here as it would in production. The audit logger's AUDIT_DB_ROLE is made
// too, and granted to its login, as an administrator would. Roles that
// exist are kept and given a new password. adminURL's user must be able to
// create roles.
func ServiceLogins(ctx context.Context, adminURL string, services ...string) (map[string]ServiceLogin, error) {
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return nil, fmt.Errorf("service logins: %w", err)
	}
	db := cfg.Database
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("service logins: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	// Roles belong to the whole cluster, so their names carry the
	// database's: tests on databases of their own never share one. Two
	// starts on one database would race on the same roles: the lock (one
	// per database) lets one finish first.
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock(hashtext('takedown.localstack.roles'))`); err != nil {
		return nil, fmt.Errorf("service logins: %w", err)
	}
	defer c.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext('takedown.localstack.roles'))`) //nolint:errcheck // the lock dies with the session

	u, err := url.Parse(adminURL)
	if err != nil {
		return nil, fmt.Errorf("service logins: %w", err)
	}
	out := map[string]ServiceLogin{}
	for _, s := range services {
		role := ServiceRole(db, s)
		password := randomHex(16)
		if err := ensureRole(ctx, c, role, "LOGIN PASSWORD "+quoteLiteral(password)); err != nil {
			return nil, err
		}
		if _, err := c.Exec(ctx, `GRANT CONNECT, CREATE ON DATABASE `+pgx.Identifier{db}.Sanitize()+` TO `+pgx.Identifier{role}.Sanitize()); err != nil {
			return nil, fmt.Errorf("service logins: grant %s: %w", role, err)
		}
		su := *u
		su.User = url.UserPassword(role, password)
		login := ServiceLogin{Role: role, URL: su.String()}
		if s == AuditLogger {
			writer := ServiceRole(db, "audit-writer")
			if err := ensureRole(ctx, c, writer, "NOLOGIN"); err != nil {
				return nil, err
			}
			if _, err := c.Exec(ctx, `GRANT `+pgx.Identifier{writer}.Sanitize()+` TO `+pgx.Identifier{role}.Sanitize()); err != nil {
				return nil, fmt.Errorf("service logins: grant %s: %w", writer, err)
			}
			login.AuditRole = writer
		}
		out[s] = login
	}
	return out, nil
}

// ServiceRole is the name of a service's role in database db:
// takedown_ncmec_reporter for ncmec-reporter in the database takedown.
func ServiceRole(db, service string) string {
	return strings.ToLower(db + "_" + strings.ReplaceAll(service, "-", "_"))
}

// DropServiceLogins removes what ServiceLogins made in the database of
// adminURL: the roles' objects there, then the roles. For tests, whose
// databases go when they end while roles would stay in the cluster.
func DropServiceLogins(ctx context.Context, adminURL string, logins map[string]ServiceLogin) error {
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return err
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var roles []string
	for _, l := range logins {
		roles = append(roles, pgx.Identifier{l.Role}.Sanitize())
		if l.AuditRole != "" {
			roles = append(roles, pgx.Identifier{l.AuditRole}.Sanitize())
		}
	}
	if len(roles) == 0 {
		return nil
	}
	list := strings.Join(roles, ", ")
	if _, err := c.Exec(ctx, `DROP OWNED BY `+list+` CASCADE`); err != nil {
		return fmt.Errorf("drop objects of %s: %w", list, err)
	}
	if _, err := c.Exec(ctx, `DROP ROLE IF EXISTS `+list); err != nil {
		return fmt.Errorf("drop roles %s: %w", list, err)
	}
	return nil
}

// ensureRole creates role with attrs, or alters it to them when it exists.
func ensureRole(ctx context.Context, c *pgx.Conn, role, attrs string) error {
	var exists bool
	if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		return fmt.Errorf("role %s: %w", role, err)
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	if _, err := c.Exec(ctx, verb+` ROLE `+pgx.Identifier{role}.Sanitize()+` `+attrs); err != nil {
		return fmt.Errorf("%s role %s: %w", strings.ToLower(verb), role, err)
	}
	return nil
}

// quoteLiteral quotes s as an SQL string literal (ALTER ROLE takes no
// parameters). The passwords here are hex, but quote anyway.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
