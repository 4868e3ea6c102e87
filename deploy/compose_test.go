package deploy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// composeEnv is the .env deploy/secrets.sh writes, with placeholder values.
var composeEnv = []string{
	"MASTER_KEY_ID=k1",
	"NATS_PASSWORD_INTAKE=x", "NATS_PASSWORD_NCMEC_REPORTER=x", "NATS_PASSWORD_CASE_WRITER=x",
	"NATS_PASSWORD_AUDIT_LOGGER=x", "NATS_PASSWORD_RETRACTION=x",
	"NCMEC_URL=http://ncmecsim:8090/ispws", "NCMEC_USERNAME=isp",
	"NCMEC_REPORTER_FIRST_NAME=A", "NCMEC_REPORTER_LAST_NAME=B", "NCMEC_REPORTER_EMAIL=a@example.com",
	"SALESFORCE_URL=http://sfsim:8091", "SALESFORCE_CLIENT_ID=cw",
	"RETRACTION_URL=http://retraction:8081", "DEV_ALLOW_HTTP=true",
}

func loadCompose(t *testing.T, env []string, profiles ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"../docker-compose.yml"},
		cli.WithWorkingDirectory(".."), cli.WithEnv(env), cli.WithProfiles(profiles),
		cli.WithResolvedPaths(true), cli.WithInterpolation(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// versioned is a tag that names a release (a digit in it, not "latest"),
// or a digest.
var versioned = regexp.MustCompile(`^[^:@]+(:[^:@]*[0-9][^:@]*)?(@sha256:[0-9a-f]{64})?$`)

// docker-compose.yml resolves with every service (simulators included), each
// with a health check, every image pinned to a version, every built image
// from deploy/Dockerfile, and the settings the design requires.
func TestComposeResolves(t *testing.T) {
	p := loadCompose(t, composeEnv, "sim")
	want := []string{"nats", "postgres", "minio", "minio-init", "intake", "ncmec-reporter", "case-writer",
		"audit-logger", "retraction", "prometheus", "alertmanager", "grafana", "ncmecsim", "sfsim"}
	got := p.ServiceNames()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}
	for name, s := range p.Services {
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s: no health check", name)
		}
		tag := strings.TrimPrefix(s.Image, "docker.io/")
		if s.Image == "" || strings.HasSuffix(tag, ":latest") || !strings.Contains(tag, ":") && !strings.Contains(tag, "@") || !versioned.MatchString(tag) {
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		}
		if s.Build != nil {
			if s.Build.Dockerfile != "deploy/Dockerfile" || s.Build.Args["SERVICE"] == nil || *s.Build.Args["SERVICE"] != name {
				t.Errorf("%s: build %+v, want deploy/Dockerfile with SERVICE=%s", name, s.Build, name)
			}
			if s.User == "root" || !s.ReadOnly {
				t.Errorf("%s: user %q, read-only %v", name, s.User, s.ReadOnly)
			}
		}
	}
	for _, sim := range []string{"ncmecsim", "sfsim"} {
		if !slices.Equal(p.Services[sim].Profiles, []string{"sim"}) {
			t.Errorf("%s: profiles %v, want [sim]", sim, p.Services[sim].Profiles)
		}
	}
	// Without the profile the simulators are not part of the stack.
	if _, ok := loadCompose(t, composeEnv).Services["ncmecsim"]; ok {
		t.Error("ncmecsim runs without --profile sim")
	}
	// Plain http only where .env says so (deploy/secrets.sh -sim).
	noSwitch := slices.DeleteFunc(slices.Clone(composeEnv), func(e string) bool { return strings.HasPrefix(e, "DEV_ALLOW_HTTP=") })
	for name, sp := range map[string]*types.Project{"sim": p, "no switch": loadCompose(t, noSwitch)} {
		want := map[string]string{"sim": "true", "no switch": "false"}[name]
		for _, s := range services {
			if v := sp.Services[s].Environment["DEV_ALLOW_HTTP"]; v == nil || *v != want {
				t.Errorf("%s, %s: DEV_ALLOW_HTTP %v, want %s", name, s, v, want)
			}
		}
	}
	// Each service signs in to NATS as itself, and has a memory limit
	// with GOMEMLIMIT under it (issue 17).
	for _, s := range services {
		if u := p.Services[s].Environment["NATS_USER"]; u == nil || *u != s {
			t.Errorf("%s: NATS_USER %v", s, u)
		}
		limit := int64(p.Services[s].MemLimit)
		soft, err := goMemLimit(p.Services[s].Environment["GOMEMLIMIT"])
		if err != nil || limit <= 0 || soft >= limit*7/8 {
			t.Errorf("%s: GOMEMLIMIT %d bytes (%v), mem_limit %d: want both, GOMEMLIMIT at most 7/8 of mem_limit", s, soft, err, limit)
		}
	}
}

// A missing setting stops compose with its message rather than starting a
// service without it.
func TestComposeRequiresItsSettings(t *testing.T) {
	env := slices.DeleteFunc(slices.Clone(composeEnv), func(e string) bool { return strings.HasPrefix(e, "NCMEC_URL=") })
	opts, err := cli.NewProjectOptions([]string{"../docker-compose.yml"}, cli.WithWorkingDirectory(".."), cli.WithEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opts.LoadProject(context.Background()); err == nil || !strings.Contains(err.Error(), "NCMEC_URL") {
		t.Errorf("load without NCMEC_URL: %v", err)
	}
}

// The Dockerfile builds in one stage and runs in scratch as a non-root user,
// from pinned base images.
func TestDockerfile(t *testing.T) {
	f, err := os.Open(filepath.Join("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var froms []string
	user := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			froms = append(froms, fields[1])
		case "USER":
			user = fields[1]
		}
	}
	if len(froms) < 2 || froms[len(froms)-1] != "scratch" {
		t.Errorf("stages %v: want a build stage and a scratch final stage", froms)
	}
	for _, img := range froms[:len(froms)-1] {
		if !versioned.MatchString(img) || !strings.ContainsAny(img, ":@") {
			t.Errorf("base image %s is not pinned", img)
		}
	}
	if user == "" || strings.HasPrefix(user, "0") || user == "root" {
		t.Errorf("final USER %q: want a non-root user", user)
	}
}

// goMemLimit parses GOMEMLIMIT as the Go runtime does, for the units used
// here (MiB, GiB).
func goMemLimit(v *string) (int64, error) {
	if v == nil {
		return 0, errors.New("unset")
	}
	for unit, mul := range map[string]int64{"MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(*v, unit); ok {
			i, err := strconv.ParseInt(n, 10, 64)
			return i * mul, err
		}
	}
	return 0, fmt.Errorf("%q: want a number of MiB or GiB", *v)
}
