package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/parquet-go/parquet-go"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/archive"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// archiveSetup writes a configuration whose store holds three messages of
// key "test" accepted on day and a key the admin API made, and returns its
// path and the message IDs, newest first.
func archiveSetup(t *testing.T, day time.Time) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	store, err := pebble.Open(data, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		at := day.Add(time.Duration(i) * time.Hour)
		m := &switchboard.Message{ID: "msg_" + ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String(),
			Key: "test", To: "+447700900123", From: "Acme", Body: fmt.Sprint("archived ", i), Encoding: "gsm7",
			Segments: 1, Status: switchboard.StatusAccepted, AcceptedAt: at, UpdatedAt: at,
			Events: []switchboard.Event{{Status: switchboard.StatusAccepted, At: at}}}
		if err := store.Accept(context.Background(), []switchboard.NewMessage{{Message: m}}); err != nil {
			t.Fatal(err)
		}
		ids = append([]string{m.ID}, ids...)
	}
	// A key the admin API made: stored, not in the file.
	if err := store.PutSetting(context.Background(), settingKey+"made-by-api", "key: {id: made-by-api}\n"); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cluster.yaml")
	yaml := fmt.Sprintf("node: {data_dir: %q}\n", data) + keyYAML(10, 10, 10) + "  - {id: quiet, secret: quiet-secret-0123456789, rate: 1, burst: 1}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, ids
}

func runArchiveCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	sig := stopSignals{stop: t.Context(), hurry: t.Context(), close: func() {}}
	code := run(sig, append([]string{"archive"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestArchiveCommand(t *testing.T) {
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	date := day.Format(time.DateOnly)
	config, ids := archiveSetup(t, day)
	out := t.TempDir()
	code, stdout, stderr := runArchiveCmd(t, "--config", config, "--date", date, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	file := filepath.Join(out, date, "test.parquet")
	for _, want := range []string{"test: 3 messages → " + file, "quiet: no messages on " + date, "made-by-api: no messages on " + date} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout %q does not say %q", stdout, want)
		}
	}
	rows, err := parquet.ReadFile[archive.Row](file)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(ids) {
		t.Fatalf("%d rows, want %d", len(rows), len(ids))
	}
	for i, r := range rows {
		if r.ID != ids[i] || r.Key != "test" || r.Status != "accepted" || r.Direction != "outbound" {
			t.Errorf("row %d: %+v, want message %s", i, r, ids[i])
		}
	}

	// A day with nothing writes nothing; a key named on the command line
	// is archived even if the configuration no longer has it.
	code, stdout, stderr = runArchiveCmd(t, "--config", config, "--date", day.Add(-24*time.Hour).Format(time.DateOnly), "--out", out, "--keys", "gone")
	if code != 0 || !strings.Contains(stdout, "gone: no messages") || strings.Contains(stderr, "warning") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// A day past storage.ttl (720h here) may be gone in part: the
	// command says so.
	code, _, stderr = runArchiveCmd(t, "--config", config, "--date", day.Add(-31*24*time.Hour).Format(time.DateOnly), "--out", out)
	if code != 0 || !strings.Contains(stderr, "is older than storage.ttl (720h0m0s)") {
		t.Fatalf("a day past the TTL: exit %d, stderr %q; want a warning", code, stderr)
	}

	// A --keys value names a file: one that is not a key id is refused,
	// and nothing is written outside --out.
	code, _, stderr = runArchiveCmd(t, "--config", config, "--date", date, "--out", out, "--keys", "../escaped")
	if code != 2 || !strings.Contains(stderr, `"../escaped" is not a key id`) {
		t.Fatalf("--keys ../escaped: exit %d, stderr %q; want 2", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "escaped.parquet")); !os.IsNotExist(err) {
		t.Fatalf("a file was written outside the day's directory: %v", err)
	}
}

// The embedded store can be opened by one process at a time: with
// another process on it (as a running node would be), the archive says to
// stop the node. The other process is this test binary, running
// TestArchiveStoreHolder.
func TestArchiveCommandStoreInUse(t *testing.T) {
	day := time.Now().UTC().Truncate(24 * time.Hour)
	config, _ := archiveSetup(t, day)
	cfg, err := loadConfig(config, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(os.Args[0], "-test.run=^TestArchiveStoreHolder$")
	holder.Env = append(os.Environ(), heldStoreEnv+"="+cfg.Node.DataDir)
	stdin, _ := holder.StdinPipe()
	stdout, _ := holder.StdoutPipe()
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Wait()
	defer stdin.Close() // the holder closes the store and exits
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "open\n" {
		t.Fatalf("holder said %q, want open", line)
	}
	code, _, stderr := runArchiveCmd(t, "--config", config, "--date", day.Format(time.DateOnly), "--out", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "is in use: stop the node first") {
		t.Fatalf("exit %d, stderr %q; want 1 and to be told to stop the node", code, stderr)
	}
}

const heldStoreEnv = "SWITCHBOARD_TEST_HELD_STORE"

// TestArchiveStoreHolder holds a store open until its stdin closes (the
// other process of TestArchiveCommandStoreInUse).
func TestArchiveStoreHolder(t *testing.T) {
	dir := os.Getenv(heldStoreEnv)
	if dir == "" {
		t.Skip("the child process of TestArchiveCommandStoreInUse")
	}
	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Println("open")
	io.Copy(io.Discard, os.Stdin)
}

func TestArchiveCommandUsage(t *testing.T) {
	config, _ := archiveSetup(t, time.Now().UTC())
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--config", config, "--date", "2026-12-01"}, 2, "--out is required"},
		{[]string{"--config", config, "--date", "1 Dec", "--out", "x"}, 2, `--date "1 Dec" is not YYYY-MM-DD`},
		{[]string{"--config", config, "--out", "x"}, 2, `--date "" is not YYYY-MM-DD`},
		{[]string{"--config", config, "--date", "2026-12-01", "--out", "x", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--config", config, "--date", "2026-12-01", "--out", "x", "--set", "node.data_dir=" + filepath.Join(t.TempDir(), "none")}, 1, "node.data_dir"},
		{[]string{"--config", config, "--date", "2026-12-01", "--out", "x", "--set", "storage.backend=scylla", "--set", "storage.hosts=127.0.0.1:1"}, 2, "archive reads the embedded store"},
	} {
		code, _, stderr := runArchiveCmd(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("archive %v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}
