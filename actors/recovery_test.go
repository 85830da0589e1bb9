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
	sim, err := smsc.Listen(smsc.Config{Addr: "127.0.0.1:0", Log: zerolog.Nop(), Faults: smsc.Faults{RefuseBinds: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := t.TempDir()
	key := &switchboard.Key{ID: "k", SecretHash: switchboard.HashSecret("s"), Rate: 1e6, Burst: 1e6, MaxQueued: 1e6}
	run := func() (*actors.Engine, *pebble.Store) {
		store, err := pebble.Open(dir, pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e, err := actors.New(actors.Config{
			Store: store, Keys: switchboard.NewKeyRing([]*switchboard.Key{key}),
			Routes: []switchboard.Route{{Carriers: []string{"sim"}}},
			Carriers: []actors.CarrierConfig{{Name: "sim", Binds: 1, SMPP: smpp.Config{
				Addr: sim.Addr(), SystemID: "gw", ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
			}}},
			IdleTimeout: 50 * time.Millisecond, Log: zerolog.Nop(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return e, store
	}
	stop := func(e *actors.Engine, s *pebble.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Stop(ctx)
		s.Close()
	}

	e, store := run()
	res := e.Submit(context.Background(), key, []switchboard.SubmitRequest{{To: "+447700900001", From: "Acme", Body: "survive"}})[0]
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	stop(e, store)

	sim.SetFaults(smsc.Faults{})
	e, store = run()
	defer stop(e, store)
	eventually(t, "delivery after the restart", 20*time.Second, func() bool {
		m, err := store.Message(context.Background(), res.Message.ID)
		return err == nil && m.Status == switchboard.StatusDelivered
	})
	eventually(t, "the recovered key actor to retire", 10*time.Second, func() bool { return e.KeyActors() == 0 })
}
