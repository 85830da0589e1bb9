package harness

import (
	"strings"
	"testing"
)

// --expect-delivered fails a run that loses nothing but delivers nothing
// either (every request refused), one with a request not answered or a
// message not delivered, and one whose final callbacks do not match the
// messages sent; a clean run passes.
func TestExpectDelivered(t *testing.T) {
	clean := summary{Offered: 100, Accepted: 100, Finals: map[string]int64{"delivered": 100}}
	if why := undelivered(clean); why != "" {
		t.Fatalf("a clean run: %q", why)
	}
	for name, tc := range map[string]struct {
		s    summary
		want string
	}{
		"refused":   {summary{Offered: 100, Rejected: 100, Status: map[string]int64{"401": 100}}, "nothing was accepted"},
		"transport": {summary{Offered: 100, Accepted: 99, Transport: 1, Finals: map[string]int64{"delivered": 99}}, "1 failed in transport"},
		"failed":    {summary{Offered: 100, Accepted: 100, Finals: map[string]int64{"delivered": 98, "failed": 2}}, "2 messages ended failed"},
		"twice":     {summary{Offered: 100, Accepted: 100, Unmatched: 3, Finals: map[string]int64{"delivered": 100}}, "3 final callbacks matched no message"},
	} {
		if why := undelivered(tc.s); !strings.Contains(why, tc.want) {
			t.Errorf("%s: %q, want it to say %q", name, why, tc.want)
		}
	}
}
