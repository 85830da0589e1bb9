package archive_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// pyarrowVersion is the pyarrow the read-back test installs.
const pyarrowVersion = "18.1.0"

// pyarrowPython returns a Python with pyarrow: a virtual environment in
// the user's cache directory (not the repository), created and given
// pyarrow from PyPI the first time. Without Python or PyPI the test
// skips, except under CI=true, where it fails.
func pyarrowPython(t *testing.T) string {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format+" (CI=true: the read-back must run)", args...)
		}
		t.Skipf(format, args...)
	}
	python3, err := exec.LookPath("python3")
	if err != nil {
		unavailable("python3 is not installed")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		unavailable("no user cache directory: %v", err)
	}
	venv := filepath.Join(cache, "switchboard", "pyarrow-"+pyarrowVersion)
	python := filepath.Join(venv, "bin", "python")
	if exec.Command(python, "-c", "import pyarrow").Run() == nil {
		return python
	}
	if out, err := exec.Command(python3, "-m", "venv", venv).CombinedOutput(); err != nil {
		unavailable("python3 -m venv %s: %v\n%s", venv, err, out)
	}
	t.Logf("installing pyarrow %s into %s", pyarrowVersion, venv)
	install := exec.Command(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "pyarrow=="+pyarrowVersion)
	if out, err := install.CombinedOutput(); err != nil {
		unavailable("pip install pyarrow==%s: %v\n%s", pyarrowVersion, err, out)
	}
	return python
}

// readParquet is the Python the test runs: each file named on the command
// line as JSON (schema as pyarrow types, key-value metadata, rows), times
// in ISO 8601.
const readParquet = `
import json, sys
import pyarrow.parquet as pq

out = {}
for path in sys.argv[1:]:
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    out[path] = {
        "schema": {f.name: str(f.type) for f in table.schema},
        "metadata": {k.decode(): v.decode() for k, v in meta.items()},
        "rows": table.to_pylist(),
    }
json.dump(out, sys.stdout, default=lambda o: o.isoformat())
`
