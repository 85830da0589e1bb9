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
