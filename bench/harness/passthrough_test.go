package harness

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestDriverMeasuresPassthrough runs the driver against the built
// bench/passthrough as it runs against the gateway binary: every accepted
// message must reach the sink once, and the summary must carry the
// process's CPU per delivered message (the figure the passthrough exists
// for).
func TestDriverMeasuresPassthrough(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "passthrough")
	if out, err := exec.Command("go", "build", "-o", bin, "../passthrough").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	code, out := runBench(t, []string{"--gateway-bin", bin, "--scenario", "../scenarios/steady.yaml",
		"--rate", "500", "--warmup", "500ms", "--duration", "2s", "--drain", "20s", "--no-duplicates", "--expect-delivered"})
	if code != 0 {
		t.Fatalf("bench exit %d\n%s", code, out)
	}
	for _, want := range []string{`lost\s+0\s+duplicates 0`, `\(0 duplicates\)`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`cpu per msg\s+([0-9.]+) µs`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no cpu per msg line:\n%s", out)
	}
	if us, err := strconv.ParseFloat(m[1], 64); err != nil || us <= 0 {
		t.Errorf("cpu per msg = %q, want a positive figure", m[1])
	}
}
