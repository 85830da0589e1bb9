package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// No container engine runs here, so the deploy files (deploy/, but
// deploy/local, the test servers' scripts) are checked for what
// can be checked: every YAML and JSON file parses; every metric a
// dashboard, an alert or the autoscaler names is one the node exposes;
// every SWITCHBOARD_* variable names a setting; the shipped configuration
// validates; the alerts operations.md promises exist.
func TestDeployFiles(t *testing.T) {
	root := "../../deploy"
	var files []string
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && d.Name() == "local":
			return filepath.SkipDir // the test servers' scripts, not a deployment
		case !d.IsDir():
			files = append(files, path)
		}
		return nil
	})
	if len(files) < 10 {
		t.Fatalf("deploy/ has %d files", len(files))
	}

	// The metrics a running node exposes, after a message went through.
	sim := testSim(t, smsc.Config{})
	g, _ := startTestGateway(t, adminYAML(sim.Addr()))
	waitStatus(t, g, send(t, g, "+447700900123", "metrics").body["id"].(string), "delivered")
	// The message reads as delivered once its receipt's record commits;
	// the receipt is counted just after, on the recorder's goroutine.
	exposed := map[string]bool{}
	waitFor(5*time.Second, func() bool {
		families, err := g.ops.registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			exposed[f.GetName()] = true
		}
		return exposed["switchboard_receipts_total"]
	})
	metricRE := regexp.MustCompile(`\b((?:switchboard|go|process)_[a-z_]+)`)
	envRE := regexp.MustCompile(`\bSWITCHBOARD_[A-Z0-9_]+`)
	seen := map[string]bool{}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, path)
		switch filepath.Ext(path) {
		case ".yaml", ".yml":
			dec := yaml.NewDecoder(bytes.NewReader(b))
			for {
				var doc any
				if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Errorf("%s: %v", name, err)
					break
				}
			}
		case ".json":
			var doc any
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		for _, m := range metricRE.FindAllString(string(b), -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if s, ok := strings.CutSuffix(m, suffix); ok && exposed[s] {
					base = s
				}
			}
			seen[base] = true
			if !exposed[base] {
				t.Errorf("%s names metric %s, which the node does not expose", name, m)
			}
		}
		for _, v := range envRE.FindAllString(string(b), -1) {
			if _, ok := envPath(configType, strings.TrimPrefix(v, envPrefix)); !ok && v != envConfigFile {
				t.Errorf("%s sets %s, which names no setting", name, v)
			}
		}
	}
	for _, m := range []string{"switchboard_queue_lag_messages", "switchboard_binds", "switchboard_carrier_submit_duration_seconds",
		"switchboard_webhook_deliveries_total", "switchboard_http_request_duration_seconds"} {
		if !seen[m] {
			t.Errorf("no deploy file uses %s", m)
		}
	}

	// The configuration the image ships validates.
	if _, err := LoadConfig(filepath.Join(root, "kubernetes", "cluster.yaml"), nil); err != nil {
		t.Errorf("deploy/kubernetes/cluster.yaml: %v", err)
	}

	// The alerts docs/operations.md describes.
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr, For string
			}
		}
	}
	b, _ := os.ReadFile(filepath.Join(root, "prometheus", "alerts.yaml"))
	if err := yaml.Unmarshal(b, &rules); err != nil || len(rules.Groups) == 0 {
		t.Fatalf("alerts.yaml: %v", err)
	}
	alerts := map[string]string{}
	for _, r := range rules.Groups[0].Rules {
		if r.Alert == "" || r.Expr == "" {
			t.Errorf("a rule without a name or an expression: %+v", r)
		}
		alerts[r.Alert] = r.For + " " + r.Expr
	}
	for name, want := range map[string][]string{
		"SwitchboardQueueLagGrowing":    {"5m", "deriv(", "switchboard_queue_lag_messages"},
		"SwitchboardCarrierNoBoundBind": {`state="bound"`, "== 0"},
		"SwitchboardCarrierSlow":        {"histogram_quantile(0.99", "switchboard_carrier_submit_duration_seconds_bucket"},
		"SwitchboardWebhookSuccessLow":  {"< 0.99", `result="delivered"`},
		"SwitchboardAPISlow":            {`route="/v1/messages"`, `method="POST"`},
	} {
		for _, w := range want {
			if !strings.Contains(alerts[name], w) {
				t.Errorf("alert %s lacks %q: %q", name, w, alerts[name])
			}
		}
	}
	docs, _ := os.ReadFile("../../docs/operations.md")
	for name := range alerts {
		if !strings.Contains(string(docs), name) {
			t.Errorf("docs/operations.md does not mention alert %s", name)
		}
	}

	// The autoscaler scales the nodes on queue lag.
	var hpa struct {
		Spec struct {
			ScaleTargetRef struct{ Kind, Name string } `yaml:"scaleTargetRef"`
			Metrics        []struct {
				Pods struct {
					Metric struct{ Name string }
				}
			}
		}
	}
	// The autoscaler owns the StatefulSet's count: a count in the
	// manifest would be reapplied by every kubectl apply.
	var sts struct {
		Kind string
		Spec map[string]any
	}
	b, _ = os.ReadFile(filepath.Join(root, "kubernetes", "statefulset.yaml"))
	if err := yaml.Unmarshal(b, &sts); err != nil || sts.Kind != "StatefulSet" {
		t.Errorf("statefulset.yaml: %v", err)
	} else if _, ok := sts.Spec["replicas"]; ok {
		t.Error("statefulset.yaml sets spec.replicas, which the HorizontalPodAutoscaler owns")
	}
	b, _ = os.ReadFile(filepath.Join(root, "kubernetes", "hpa.yaml"))
	if err := yaml.Unmarshal(b, &hpa); err != nil || hpa.Spec.ScaleTargetRef.Kind != "StatefulSet" ||
		len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Pods.Metric.Name != "switchboard_queue_lag_messages" {
		t.Errorf("hpa.yaml: %+v %v", hpa, err)
	}

	// The image: static, non-root, from the repository's own paths.
	b, _ = os.ReadFile(filepath.Join(root, "Dockerfile"))
	df := string(b)
	for _, want := range []string{"CGO_ENABLED=0", "USER 65532", "distroless/static", "./cmd/switchboard"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// A variable the image set would override a mounted file's setting
	// (the environment wins), so an admin listener the file keeps on
	// 127.0.0.1 would listen on every address.
	if strings.Contains(df, "ENV SWITCHBOARD_") {
		t.Error("the Dockerfile sets a SWITCHBOARD_* variable, which overrides the configuration file users mount")
	}
	for _, m := range regexp.MustCompile(`COPY (deploy/\S+)`).FindAllStringSubmatch(df, -1) {
		if _, err := os.Stat("../../" + m[1]); err != nil {
			t.Errorf("Dockerfile copies %s: %v", m[1], err)
		}
	}
	// The kustomization lists files that exist.
	var k struct {
		Resources          []string
		ConfigMapGenerator []struct{ Files []string } `yaml:"configMapGenerator"`
	}
	b, _ = os.ReadFile(filepath.Join(root, "kubernetes", "kustomization.yaml"))
	yaml.Unmarshal(b, &k)
	for _, r := range append(slices.Clone(k.Resources), k.ConfigMapGenerator[0].Files...) {
		if _, err := os.Stat(filepath.Join(root, "kubernetes", r)); err != nil {
			t.Errorf("kustomization.yaml: %v", err)
		}
	}
}
