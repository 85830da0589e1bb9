package actors

import (
	"strings"
	"sync"
	"time"
)

// goneMarks remembers the callback URLs that answered 410 Gone, each for
// a while (WebhookConfig.GoneFor), so events for them are given up
// without a request. Marks all last as long, so they run out in the order
// they were made: a queue in that order lets each mark cost O(1), and
// bounds them at maxGone (the oldest is forgotten first: a URL given per
// message could otherwise pile up marks without end). It has a lock of
// its own: it is asked about every event dispatched.
type goneMarks struct {
	mu    sync.Mutex
	until map[string]time.Time
	order []goneMark // oldest first; may hold marks replaced since
	head  int
}

type goneMark struct {
	url   string
	until time.Time
}

// maxGone bounds the URLs marked gone at once.
const maxGone = 1024

// is reports whether url is marked gone at now.
func (g *goneMarks) is(url string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.until[url]
	return ok && now.Before(until)
}

// mark marks url gone from now until now+d.
func (g *goneMarks) mark(url string, now time.Time, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.until == nil {
		g.until = make(map[string]time.Time)
	}
	g.forget(func(m goneMark) bool { return !now.Before(m.until) })
	// Bounded in URLs, and in marks queued (a URL answering 410 to
	// several posts in flight is marked again by each).
	g.forget(func(goneMark) bool { return len(g.until) >= maxGone || len(g.order)-g.head >= 2*maxGone })
	url = strings.Clone(url) // not the stored event the URL was cut from
	m := goneMark{url: url, until: now.Add(d)}
	g.until[url] = m.until
	g.order = append(g.order, m)
}

// forget drops marks from the oldest on while drop says so.
func (g *goneMarks) forget(drop func(goneMark) bool) {
	for g.head < len(g.order) && drop(g.order[g.head]) {
		m := g.order[g.head]
		if g.until[m.url].Equal(m.until) {
			delete(g.until, m.url)
		}
		g.order[g.head] = goneMark{}
		g.head++
	}
	if g.head > len(g.order)/2 { // let the front of the array go
		g.order = append(g.order[:0:0], g.order[g.head:]...)
		g.head = 0
	}
}
