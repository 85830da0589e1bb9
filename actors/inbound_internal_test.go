package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// keptParts stores inbound messages but leaves their parts stored, as a
// Cassandra AcceptInbound cut short between its two writes does.
type keptParts struct{ switchboard.Store }

func (s keptParts) AcceptInbound(ctx context.Context, m *switchboard.Message, cb *switchboard.Callback, _ []switchboard.InboundPart) error {
	return s.Store.AcceptInbound(ctx, m, cb, nil)
}

// Parts left stored after their long message was stored are not made into
// a second message at the next start: the message's ID is the same, the
// store refuses it, and the parts are removed instead.
func TestPartsOfAStoredInboundMessageMakeNoSecond(t *testing.T) {
	ps, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	ctx := context.Background()
	first, stopFirst := inboundEngine(keptParts{ps})
	deliverLong(t, first, time.Now())
	stopFirst()
	if parts, _ := ps.InboundParts(ctx); len(parts) != 2 {
		t.Fatalf("%d parts left stored, want the 2 the cut-short write left", len(parts))
	}

	second, stopSecond := inboundEngine(ps)
	defer stopSecond()
	if err := second.inbound.start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := inboundOf(t, ps); len(got) != 1 {
		t.Fatalf("%d inbound messages after the restart, want the one", len(got))
	}
	if parts, _ := ps.InboundParts(ctx); len(parts) != 0 {
		t.Fatalf("%d parts still stored after the restart, want none", len(parts))
	}
}

// takenID refuses, with ECONFLICT, every AcceptInbound of the first
// message ID it is given, as a Cassandra store does for an ID whose index
// row a write cut short left without its message.
type takenID struct {
	switchboard.Store
	mu    sync.Mutex
	taken string
}

func (s *takenID) AcceptInbound(ctx context.Context, m *switchboard.Message, cb *switchboard.Callback, parts []switchboard.InboundPart) error {
	s.mu.Lock()
	if s.taken == "" {
		s.taken = m.ID
	}
	taken := s.taken == m.ID
	s.mu.Unlock()
	if taken {
		return switchboard.Errorf(switchboard.ECONFLICT, "message %s exists", m.ID)
	}
	return s.Store.AcceptInbound(ctx, m, cb, parts)
}

// A long message whose ID is taken by no message (an index row left
// behind) is stored under another: with the same ID it would be refused
// at every try, and never stored.
func TestALongMessageWhoseIDIsTakenByNoMessageIsStored(t *testing.T) {
	ps, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	e, stop := inboundEngine(&takenID{Store: ps})
	defer stop()
	deliverLong(t, e, time.Now())
	if got := inboundOf(t, ps); len(got) != 1 {
		t.Fatalf("%d inbound messages, want the one, stored under another ID", len(got))
	}
}

// inboundEngine is an engine with just what inbound messages need, on
// store, for key k owning +447700900001; stop ends it.
func inboundEngine(store switchboard.Store) (e *Engine, stop func()) {
	key := &switchboard.Key{ID: "k", SecretHash: switchboard.HashSecret("s"), Rate: 1, Burst: 1, MaxQueued: 1,
		Numbers: []string{"+447700900001"}}
	e = &Engine{cfg: Config{Keys: switchboard.NewKeyRing([]*switchboard.Key{key}), InboundTimeout: time.Minute, Now: time.Now},
		store: store, log: zerolog.Nop(), bg: newTasks(), ids: newEventIDs()}
	e.bgStop, e.bgEnd = context.WithCancel(context.Background())
	e.inbound = newInbound(e)
	return e, func() { e.inbound.stop(); e.bgEnd(); e.bg.wait() }
}

// deliverLong delivers both parts of a long message to e, the first
// received at, and waits until e has stored it (or tried to).
func deliverLong(t *testing.T, e *Engine, at time.Time) {
	t.Helper()
	for seq := uint8(1); seq <= 2; seq++ {
		acked := make(chan error, 1)
		e.inboundLocal(switchboard.InboundPart{Carrier: "sim", From: "+447700111222", To: "+447700900001",
			Payload: []byte{'a' + seq}, ReceivedAt: at.Add(time.Duration(seq) * time.Millisecond),
			Concat: &switchboard.Concat{Ref: 7, Total: 2, Seq: seq}}, func(err error) { acked <- err })
		if err := <-acked; err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.stats.inbound.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the long message was not stored")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inboundOf lists key k's messages of today in store.
func inboundOf(t *testing.T, store switchboard.Store) []*switchboard.Message {
	t.Helper()
	msgs, _, err := store.ListMessages(context.Background(), switchboard.MessageQuery{Key: "k", Day: time.Now().UTC().Format("2006-01-02"), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}
