package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/switchboard-sms/switchboard/bench/harness"
)

// TestDriverMeasuresPassthrough runs the load driver against the built
// passthrough as it runs against the gateway binary: every accepted
// message must reach the sink once, and the summary must carry the
// process's CPU per delivered message (the figure the passthrough exists
// for).
func TestDriverMeasuresPassthrough(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "passthrough")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var out, errOut bytes.Buffer
	code := harness.Main([]string{"--gateway-bin", bin, "--scenario", "../scenarios/steady.yaml",
		"--rate", "500", "--warmup", "500ms", "--duration", "2s", "--drain", "20s", "--no-duplicates"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("bench exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{`lost\s+0\s+duplicates 0`, `\(0 duplicates\)`} {
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	m := regexp.MustCompile(`cpu per msg\s+([0-9.]+) µs`).FindSubmatch(out.Bytes())
	if m == nil {
		t.Fatalf("no cpu per msg line:\n%s", out.String())
	}
	if us, err := strconv.ParseFloat(string(m[1]), 64); err != nil || us <= 0 {
		t.Errorf("cpu per msg = %q, want a positive figure", m[1])
	}
}
