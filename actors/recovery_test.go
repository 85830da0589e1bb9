package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// Messages accepted while the carrier refuses binds survive a stop; the
// next engine on the same store resumes and delivers them, and the key
// actors it started for recovery retire once idle.
func TestRecoveryResumesAndRecoveredActorsRetire(t *testing.T) {
	sim, dir, key, id := pendingAfterStop(t)
	e, store := startOn(t, dir, sim, 50*time.Millisecond, key)
	defer stopEngine(e, store)
	eventually(t, "delivery after the restart", 20*time.Second, func() bool {
		m, err := store.Message(context.Background(), id)
		return err == nil && m.Status == switchboard.StatusDelivered
	})
	eventually(t, "the recovered key actor to retire", 10*time.Second, func() bool { return e.KeyActors() == 0 })
}

// A message of a key no longer configured stays stored, unsent, after a
// restart; canceling it ends it canceled, with no key actor to run it.
func TestCancelMessageOfRemovedKey(t *testing.T) {
	sim, dir, _, id := pendingAfterStop(t)
	e, store := startOn(t, dir, sim, 0) // the key is gone from the ring
	defer stopEngine(e, store)
	m, err := e.CancelMessage(context.Background(), id)
	if err != nil {
		t.Fatalf("cancel a message of a removed key: %v", err)
	}
	if m.Status != switchboard.StatusCanceled {
		t.Fatalf("status %s, want canceled", m.Status)
	}
	if n := e.KeyActors(); n != 0 {
		t.Fatalf("%d key actors run, want none for a removed key", n)
	}
	if got := sim.Stats().Submits; got != 0 {
		t.Fatalf("the simulator took %d submits, want none", got)
	}
}

// pendingAfterStop accepts one message of key while the simulator refuses
// binds, stops the engine, and lets the simulator bind again: the message
// (id) waits in the store in dir for the next engine.
func pendingAfterStop(t *testing.T) (sim *smsc.Server, dir string, key *switchboard.Key, id string) {
	t.Helper()
	sim, err := smsc.Listen(smsc.Config{Addr: "127.0.0.1:0", Log: zerolog.Nop(), Faults: smsc.Faults{RefuseBinds: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	dir = t.TempDir()
	key = &switchboard.Key{ID: "k", SecretHash: switchboard.HashSecret("s"), Rate: 1e6, Burst: 1e6, MaxQueued: 1e6}
	e, store := startOn(t, dir, sim, 0, key)
	res := e.Submit(context.Background(), key, []switchboard.SubmitRequest{{To: "+447700900001", From: "Acme", Body: "waiting"}})[0]
	stopEngine(e, store)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	sim.SetFaults(smsc.Faults{})
	return sim, dir, key, res.Message.ID
}

// startOn starts an engine with keys on the store in dir, sending to sim.
func startOn(t *testing.T, dir string, sim *smsc.Server, idle time.Duration, keys ...*switchboard.Key) (*actors.Engine, *pebble.Store) {
	t.Helper()
	store, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := actors.New(actors.Config{
		Store: store, Keys: switchboard.NewKeyRing(keys),
		Routes: []switchboard.Route{{Carriers: []string{"sim"}}},
		Carriers: []actors.CarrierConfig{{Name: "sim", Binds: 1, SMPP: smpp.Config{
			Addr: sim.Addr(), SystemID: "gw", ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
		}}},
		IdleTimeout: idle, Log: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e, store
}

// stopEngine stops e and closes its store.
func stopEngine(e *actors.Engine, s *pebble.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.Stop(ctx)
	s.Close()
}

// overcounted counts extra more pending messages than the store holds,
// as a Cassandra queue with entries a cut-short clean-up left does.
type overcounted struct {
	switchboard.Store
	extra int
}

func (s *overcounted) PendingCount(ctx context.Context, key string) (int, error) {
	n, err := s.Store.PendingCount(ctx, key)
	return n + s.extra, err
}

// A count of pending messages that includes entries no longer pending is
// corrected once the key's actor has read every pending message: before,
// the phantom entries stayed counted for the actor's life, a key at its
// max_queued refused every message (queue_full) though none waited, and
// the actor never retired.
func TestAnOvercountOfPendingMessagesIsCorrected(t *testing.T) {
	r := newRig(t, rigOptions{maxQueued: 5, wrapStore: func(s *pebble.Store) switchboard.Store {
		return &overcounted{Store: s, extra: 5}
	}})
	eventually(t, "a message accepted by a key the store overcounts", 10*time.Second, func() bool {
		return r.submit(r.keys[0], "+447700900001", "hi").Err == nil
	})
}
