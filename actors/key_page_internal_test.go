package actors

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
)

// failingPendingStore is a fake standing in for a store that cannot be
// read (a failed disk): every Pending fails, and the calls are counted.
type failingPendingStore struct {
	switchboard.Store // not called
	reads             atomic.Int32
}

func (s *failingPendingStore) Pending(context.Context, string, string, string, int) ([]*switchboard.Message, error) {
	s.reads.Add(1)
	return nil, errors.New("store unavailable")
}

// A key whose page read failed reads again after retryPaging, not on the
// next event: every admission or submit result calls page, and a store
// that cannot be read must not be read (and logged) once per event.
func TestAFailedPageReadIsRetriedAfterAPause(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	store := &failingPendingStore{}
	sys := actor.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	e := &Engine{cfg: Config{Now: func() time.Time { return now }, KeyWindow: 8}, log: zerolog.Nop(),
		system: sys, store: store, held: newBudget(64, func(*actor.PID, *budget) {}), bg: newTasks(), bgStop: context.Background()}
	reads := make(chan *pageRead, 4)
	self := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if r, ok := c.Message().(*pageRead); ok {
			reads <- r
		}
	}))
	k := &keyActor{e: e, key: &switchboard.Key{ID: "k"}, paged: true}
	ctx := selfOnly{self: self}

	k.page(ctx, now)
	k.pageRead(ctx, <-reads)
	failed := now
	for _, at := range []time.Duration{0, time.Millisecond, retryPaging - time.Millisecond} {
		now = failed.Add(at)
		k.page(ctx, now) // as dispatch does after every event
		if k.paging {
			t.Fatalf("a page read started %v after a failed one, want none within %v", at, retryPaging)
		}
	}
	if want := failed.Add(retryPaging); !k.wakeAt.Equal(want) {
		t.Fatalf("wakes at %v, want %v", k.wakeAt, want)
	}
	now = failed.Add(retryPaging)
	k.page(ctx, now)
	if !k.paging {
		t.Fatalf("no page read retryPaging after the failure")
	}
	<-reads
	if n := store.reads.Load(); n != 2 {
		t.Fatalf("%d page reads in all, want 2", n)
	}
}
