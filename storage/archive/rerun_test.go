package archive_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/archive"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// A store's retention deletes a day in steps: a file written before it
// began is the only whole copy, so running the archive again keeps it
// when the store has fewer messages now, writes the other keys, and says
// so; a file the store has as many or more messages for is replaced.
func TestRerunKeepsALongerFile(t *testing.T) {
	ctx := t.Context()
	d := day()
	open := func(msgs ...*sb.Message) *pebble.Store {
		t.Helper()
		s, err := pebble.Open(t.TempDir(), pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		for _, m := range msgs {
			if err := s.Accept(ctx, []sb.NewMessage{{Message: m}}); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	k1 := messages(d)
	k2 := *k1[0]
	k2.Key, k2.ID = "k2", newID(d.Add(time.Hour))
	whole := open(append(k1, &k2)...)
	later := *k1[1]
	later.Key, later.ID = "k2", newID(d.Add(2*time.Hour))
	shorter := open(append(k1[:2], &k2, &later)...) // k1 lost messages, k2 gained one
	k3 := *k1[0]
	k3.Key, k3.ID = "k3", newID(d.Add(3*time.Hour))
	if err := whole.Accept(ctx, []sb.NewMessage{{Message: &k3}}); err != nil { // k3 is gone from shorter altogether
		t.Fatal(err)
	}

	dir := t.TempDir()
	o := archive.Options{Day: d.Format("2006-01-02"), Keys: []string{"k1", "k2", "k3"}, Dir: dir}
	if _, err := archive.Write(ctx, whole, o); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, o.Day, "k1.parquet")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	files, err := archive.Write(ctx, shorter, o)
	if err == nil || !strings.Contains(err.Error(), "k1") || !strings.Contains(err.Error(), "k3") || !strings.Contains(err.Error(), "kept") {
		t.Fatalf("Write over longer files: %v, want an error naming k1's and k3's kept files", err)
	}
	if len(files) != 3 || !files[0].Kept || files[0].Messages != len(k1) || files[0].Path != path ||
		files[1].Kept || files[1].Messages != 2 || !files[2].Kept || files[2].Messages != 1 {
		t.Fatalf("files %+v: want k1 kept with %d messages, k2 written with 2, k3 kept with 1", files, len(k1))
	}
	after, err := os.ReadFile(path)
	if err != nil || string(after) != string(before) {
		t.Fatalf("k1's file changed (%v)", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, o.Day, ".*")); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}

	// Removing the file lets the store's messages be written.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	o.Keys = o.Keys[:2]
	files, err = archive.Write(ctx, shorter, o)
	if err != nil || len(files) != 2 || files[0].Kept || files[0].Messages != 2 {
		t.Fatalf("Write after removing the file: %+v, %v", files, errors.Unwrap(err))
	}
}
