package deploy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"takedown/pkg/localstack"
	"takedown/pkg/ncmec/ncmecsim"
	"takedown/pkg/testenv"
)

// rulesFile is the alert rules as loaded by Prometheus.
type rulesFile struct {
	Groups []struct {
		Name  string
		Rules []map[string]any
	}
}

func loadRules(t *testing.T) rulesFile {
	t.Helper()
	b, err := os.ReadFile("prometheus/rules/takedown.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf rulesFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	return rf
}

// queries returns every PromQL expression of the alert rules and of the
// dashboards, keyed by where it is.
func queries(t *testing.T) map[string]string {
	t.Helper()
	q := map[string]string{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			q["rule "+fmt.Sprint(r["alert"])] = fmt.Sprint(r["expr"])
		}
	}
	dashboards, _ := filepath.Glob("grafana/dashboards/*.json")
	if len(dashboards) == 0 {
		t.Fatal("no dashboards under grafana/dashboards")
	}
	for _, path := range dashboards {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var d any
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var walk func(where string, v any)
		walk = func(where string, v any) {
			switch v := v.(type) {
			case map[string]any:
				if title, ok := v["title"].(string); ok {
					where += "/" + title
				}
				for k, x := range v {
					if s, ok := x.(string); ok && (k == "expr" || (k == "query" && strings.Contains(s, "takedown_"))) {
						q[fmt.Sprintf("%s %s (%s)", filepath.Base(path), where, k)+" "+fmt.Sprint(len(q))] = s
					}
					walk(where, x)
				}
			case []any:
				for _, x := range v {
					walk(where, x)
				}
			}
		}
		walk("", d)
	}
	return q
}

var (
	nameRegexRE = regexp.MustCompile(`__name__=~"([^"]+)"`)
	nameRE      = regexp.MustCompile(`takedown_[a-zA-Z0-9_]+`)
)

// checkNames fails for every metric a query names that the services do not
// export: plain names, and name regexes that match no exported name.
func checkNames(t *testing.T, q map[string]string, exported map[string]bool) {
	t.Helper()
	var all []string
	for n := range exported {
		all = append(all, n)
	}
	slices.Sort(all)
	for where, expr := range q {
		for _, m := range nameRegexRE.FindAllStringSubmatch(expr, -1) {
			re := regexp.MustCompile("^(?:" + m[1] + ")$")
			if !slices.ContainsFunc(all, re.MatchString) {
				t.Errorf("%s: no exported metric matches %s", where, m[1])
			}
		}
		for _, name := range nameRE.FindAllString(nameRegexRE.ReplaceAllString(expr, ""), -1) {
			if !exported[name] {
				t.Errorf("%s: %s is not exported by any service", where, name)
			}
		}
	}
}

// TestAgainstLocalStack runs the five services against real servers and
// the simulators, files a report end to end, then
//   - checks that every metric the alert rules and the dashboard name is one
//     the services really export (after traffic, since labelled series
//     appear with their first observation);
//   - starts a real Prometheus (Debian package prometheus) that scrapes the
//     stack with the stuck-report rule, injects an NCMEC failure, and waits
//     for the alert to fire.
func TestAgainstLocalStack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	st := startStack(t)

	first := st.submit()
	testenv.Eventually(t, 60*time.Second, "first report finished at NCMEC and its case written", func() bool {
		status, cs := st.status(first)
		return status == "finished" && cs != ""
	})

	// Every upload fails with a 503 from now on: the reporter keeps
	// retrying within its window, and the next report stays unfinished.
	if err := st.ncmec.Inject(ncmecsim.Fault{Endpoint: "upload", Kind: "http", Status: 503, Times: -1}); err != nil {
		t.Fatal(err)
	}
	stuck := st.submit()

	t.Run("prometheus fires TakedownReportStuck", func(t *testing.T) {
		promBin, err := exec.LookPath("prometheus")
		if err != nil {
			t.Skip("prometheus not installed (Debian package prometheus; .ci/run installs it)")
		}
		prom := startPrometheus(t, promBin, st)
		var firing promAlert
		testenv.Eventually(t, 60*time.Second, "TakedownReportStuck firing", func() bool {
			for _, a := range prom.alerts(t) {
				if a.Labels["alertname"] == "TakedownReportStuck" && a.State == "firing" {
					firing = a
					return true
				}
			}
			return false
		})
		if status, _ := st.status(stuck); status == "finished" {
			t.Errorf("the stuck report finished")
		}
		if firing.Labels["severity"] != "critical" || firing.Annotations["runbook"] != "docs/runbooks/TakedownReportStuck.md" {
			t.Errorf("alert %+v", firing)
		}
	})

	t.Run("dashboard and rules name exported metrics", func(t *testing.T) {
		// The retries of the stuck report bring out the retry counter.
		var exported map[string]bool
		testenv.Eventually(t, 30*time.Second, "the reporter retried an upload", func() bool {
			exported = st.metricNames()
			return exported["takedown_ncmec_reporter_retries_total"]
		})
		checkNames(t, queries(t), exported)
	})
}

type promAlert struct {
	Labels      map[string]string
	Annotations map[string]string
	State       string
}

type prometheus struct{ url string }

// startPrometheus runs the Prometheus server on a free port with a
// temporary store, scraping the stack every second with the real
// TakedownReportStuck rule, shortened: its threshold from 30 minutes to 2
// seconds and its for from 2 minutes to 2 seconds. The real file is not
// touched.
func startPrometheus(t *testing.T, bin string, st *stack) *prometheus {
	t.Helper()
	dir := t.TempDir()
	var stuck map[string]any
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r["alert"] == "TakedownReportStuck" {
				stuck = r
			}
		}
	}
	expr, _ := stuck["expr"].(string)
	if !strings.HasSuffix(strings.TrimSpace(expr), "> 1800") {
		t.Fatalf("TakedownReportStuck expr %q no longer ends in \"> 1800\": update this test", expr)
	}
	stuck["expr"] = strings.TrimSuffix(strings.TrimSpace(expr), "1800") + "2"
	stuck["for"] = "2s"
	writeYAML(t, filepath.Join(dir, "rules.yml"), map[string]any{"groups": []any{map[string]any{"name": "test", "interval": "1s", "rules": []any{stuck}}}})

	var targets []any
	for _, s := range services {
		targets = append(targets, map[string]any{"targets": []string{st.addr[s]}, "labels": map[string]string{"service": s}})
	}
	writeYAML(t, filepath.Join(dir, "prometheus.yml"), map[string]any{
		"global":         map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"},
		"rule_files":     []string{filepath.Join(dir, "rules.yml")},
		"scrape_configs": []any{map[string]any{"job_name": "takedown", "static_configs": targets}},
	})
	port, err := localstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	})
	p := &prometheus{url: "http://" + addr}
	testenv.Eventually(t, 30*time.Second, "prometheus ready", func() bool {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

func (p *prometheus) alerts(t *testing.T) []promAlert {
	resp, err := http.Get(p.url + "/api/v1/alerts")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out struct{ Data struct{ Alerts []promAlert } }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Logf("alerts: %v", err)
	}
	return out.Data.Alerts
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The alert rules pass their promtool unit tests.
func TestPromtoolRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; .ci/run installs it)")
	}
	for _, args := range [][]string{
		{"check", "config", "prometheus/prometheus.yml"},
		{"check", "rules", "prometheus/rules/takedown.yml"},
		{"test", "rules", "prometheus/tests/takedown_test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Every alert has a runbook, and the rule names it.
func TestEveryAlertHasARunbook(t *testing.T) {
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			name := fmt.Sprint(r["alert"])
			want := "docs/runbooks/" + name + ".md"
			ann, _ := r["annotations"].(map[string]any)
			if ann["runbook"] != want {
				t.Errorf("%s: runbook annotation %v, want %s", name, ann["runbook"], want)
			}
			if _, err := os.Stat(filepath.Join("..", want)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}
