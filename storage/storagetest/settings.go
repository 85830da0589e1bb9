package storagetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

// InitSetting stores a value once: later calls get the stored value back,
// whatever they offer. Names are independent.
func testInitSetting(t *testing.T, f *fixture) {
	init := func(name, value, want string) {
		t.Helper()
		got, err := f.s.InitSetting(f.ctx, name, value)
		if err != nil || got != want {
			t.Fatalf("InitSetting(%q, %q) = %q, %v; want %q", name, value, got, err, want)
		}
	}
	init("webhook-secret", "first", "first")
	init("webhook-secret", "second", "first")
	init("other", "", "")
	init("other", "not empty", "")
	init("webhook-secret-2", "x\x00y", "x\x00y")
	init("webhook-secret", "third", "first")
}

// Goroutines racing to initialise one setting all get the same value, one
// of those offered.
func testInitSettingRace(t *testing.T, f *fixture) {
	const n = 64
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = f.s.InitSetting(f.ctx, "secret", fmt.Sprintf("value-%d", i))
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("InitSetting: %v", errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("racing InitSetting returned %q and %q", got[0], got[i])
		}
	}
	if !slices.Contains(offered(n), got[0]) {
		t.Fatalf("InitSetting returned %q, which nobody offered", got[0])
	}
	if again, err := f.s.InitSetting(f.ctx, "secret", "late"); err != nil || again != got[0] {
		t.Fatalf("InitSetting after the race = %q, %v; want %q", again, err, got[0])
	}
}

func offered(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("value-%d", i)
	}
	return out
}

// PutSetting replaces, DeleteSetting removes, and ListSettings lists by
// prefix in name order; InitSetting sees what they did.
func testPutListDeleteSettings(t *testing.T, f *fixture) {
	put := func(name, value string) {
		t.Helper()
		if err := f.s.PutSetting(f.ctx, name, value); err != nil {
			t.Fatalf("PutSetting(%q): %v", name, err)
		}
	}
	list := func(prefix string, want ...string) {
		t.Helper()
		got, err := f.s.ListSettings(f.ctx, prefix)
		if err != nil {
			t.Fatalf("ListSettings(%q): %v", prefix, err)
		}
		var flat []string
		for _, s := range got {
			flat = append(flat, s.Name+"="+s.Value)
		}
		if !slices.Equal(flat, want) {
			t.Fatalf("ListSettings(%q) = %q, want %q", prefix, flat, want)
		}
	}
	list("")
	put("admin/key/b", "2")
	put("admin/key/a", "1")
	put("admin/keys", "not under admin/key/")
	put("admin/carrier/x", "")
	put("admin/key/a", "one")
	list("admin/key/", "admin/key/a=one", "admin/key/b=2")
	list("admin/", "admin/carrier/x=", "admin/key/a=one", "admin/key/b=2", "admin/keys=not under admin/key/")
	list("zzz")
	if v, err := f.s.InitSetting(f.ctx, "admin/key/a", "init"); err != nil || v != "one" {
		t.Fatalf("InitSetting after PutSetting = %q, %v; want one", v, err)
	}
	if err := f.s.DeleteSetting(f.ctx, "admin/key/a"); err != nil {
		t.Fatalf("DeleteSetting: %v", err)
	}
	if err := f.s.DeleteSetting(f.ctx, "admin/key/never"); err != nil {
		t.Fatalf("DeleteSetting of a name with no value: %v", err)
	}
	list("admin/key/", "admin/key/b=2")
	if v, err := f.s.InitSetting(f.ctx, "admin/key/a", "again"); err != nil || v != "again" {
		t.Fatalf("InitSetting after DeleteSetting = %q, %v; want again", v, err)
	}
	put("text", "x\x00ÿ y")
	list("text", "text=x\x00ÿ y")
}

// Writes to one setting from many goroutines leave one of the values
// written, and a delete racing with puts leaves either nothing or a value
// someone put; InitSetting racing with DeleteSetting never returns a value
// nobody stored.
func testSettingsConcurrent(t *testing.T, f *fixture) {
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Go(func() { errs <- f.s.PutSetting(f.ctx, "race", fmt.Sprintf("value-%d", i)) })
		wg.Go(func() { errs <- f.s.DeleteSetting(f.ctx, "race") })
		wg.Go(func() {
			v, err := f.s.InitSetting(f.ctx, "race", "init")
			if err == nil && v != "init" && !slices.Contains(offered(n), v) {
				err = fmt.Errorf("InitSetting returned %q, which nobody stored", v)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.s.ListSettings(f.ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > 1 || len(got) == 1 && got[0].Value != "init" && !slices.Contains(offered(n), got[0].Value) {
		t.Fatalf("after the race: %q", got)
	}
}
