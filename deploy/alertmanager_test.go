package deploy_test

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The compose stack's Alertmanager configuration is valid (amtool, when
// installed: Debian's prometheus-alertmanager), routes every alert to a
// receiver that exists, names only alerts the rules define, and Prometheus
// sends its alerts to it.
func TestAlertmanagerConfig(t *testing.T) {
	const path = "alertmanager/alertmanager.yml"
	if amtool, err := exec.LookPath("amtool"); err == nil {
		if out, err := exec.Command(amtool, "check-config", path).CombinedOutput(); err != nil {
			t.Errorf("amtool check-config: %v\n%s", err, out)
		}
	} else {
		t.Log("amtool not installed (Debian package prometheus-alertmanager): structure checked only")
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type route struct {
		Receiver string
		Matchers []string
		Routes   []route `yaml:"routes"`
	}
	var cfg struct {
		Route     route
		Receivers []struct {
			Name           string
			WebhookConfigs []struct{ URL string } `yaml:"webhook_configs"`
		}
		InhibitRules []struct {
			SourceMatchers []string `yaml:"source_matchers"`
			TargetMatchers []string `yaml:"target_matchers"`
		} `yaml:"inhibit_rules"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	var receivers []string
	for _, r := range cfg.Receivers {
		receivers = append(receivers, r.Name)
		if len(r.WebhookConfigs) == 0 {
			t.Errorf("receiver %s has no example webhook", r.Name)
		}
	}
	var walk func(r route)
	walk = func(r route) {
		if r.Receiver != "" && !slices.Contains(receivers, r.Receiver) {
			t.Errorf("route sends to receiver %q, which is not defined", r.Receiver)
		}
		for _, sub := range r.Routes {
			walk(sub)
		}
	}
	if cfg.Route.Receiver == "" {
		t.Error("the root route has no receiver: alerts would go nowhere")
	}
	walk(cfg.Route)

	var alerts []string
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if a, ok := r["alert"].(string); ok {
				alerts = append(alerts, a)
			}
		}
	}
	named := regexp.MustCompile(`^alertname="([^"]+)"$`)
	if len(cfg.InhibitRules) == 0 {
		t.Error("no inhibit rule: TakedownReportStuck pages twice for reports needing attention")
	}
	for _, ir := range cfg.InhibitRules {
		for _, m := range append(ir.SourceMatchers, ir.TargetMatchers...) {
			if sm := named.FindStringSubmatch(m); sm != nil && !slices.Contains(alerts, sm[1]) {
				t.Errorf("inhibit rule names alert %s, which the rules do not define", sm[1])
			}
		}
	}

	var prom struct {
		Alerting struct {
			Alertmanagers []struct {
				StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
			}
		}
	}
	b, err = os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, am := range prom.Alerting.Alertmanagers {
		for _, sc := range am.StaticConfigs {
			targets = append(targets, sc.Targets...)
		}
	}
	if !slices.Contains(targets, "alertmanager:9093") {
		t.Errorf("Prometheus sends alerts to %v, not to the stack's alertmanager:9093", targets)
	}
	p := loadCompose(t, composeEnv)
	am, err := p.GetService("alertmanager")
	if err != nil {
		t.Fatal(err)
	}
	if am.HealthCheck == nil || len(am.Volumes) == 0 {
		t.Error("compose's alertmanager has no health check or no configuration mounted")
	}
}
