package actors_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/actors/gossip"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/storage/memory"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// BenchmarkFleetSubmit measures what a request costs when it reaches a
// node that does not own its key and is forwarded to the owner, against
// one that reaches the owner: two engines in one process, clustered over
// 127.0.0.1 (gossip membership, protoactor's remote), sharing one store
// and one set of leases. It reports the median and 99th percentile of one
// submit's latency, one request at a time.
//
// A benchmark only, never run by go test -race ./... (protoactor's
// cluster code is not race-clean):
//
//	go test ./actors -run '^$' -bench FleetSubmit -benchtime 5000x
func BenchmarkFleetSubmit(b *testing.B) {
	store, err := pebble.Open(b.TempDir(), pebble.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	sim, err := smsc.Listen(smsc.Config{Addr: "127.0.0.1:0", Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sim.Close() })
	var keys []*switchboard.Key
	for i := range 16 {
		keys = append(keys, &switchboard.Key{ID: fmt.Sprintf("k%d", i), SecretHash: switchboard.HashSecret(fmt.Sprint(i)),
			Rate: 1e9, Burst: 1e9, MaxQueued: 1e9})
	}
	leases := memory.NewLeases()
	newNode := func(seeds []string) (*actors.Engine, *gossip.Provider) {
		m := gossip.New(gossip.Config{Cluster: "bench", Bind: "127.0.0.1:0", Seeds: seeds, Log: zerolog.Nop()})
		e, err := actors.New(actors.Config{
			Store: store, Keys: switchboard.NewKeyRing(keys), Log: zerolog.Nop(),
			Routes:   []switchboard.Route{{Carriers: []string{"sim"}}},
			Carriers: []actors.CarrierConfig{{Name: "sim", Binds: 2, SMPP: smpp.Config{Addr: sim.Addr(), SystemID: "gw", Password: "pw", Window: 64}}},
			Fleet:    &actors.FleetConfig{Name: "bench", Remote: "127.0.0.1:0", Membership: m, Leases: leases},
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			e.Stop(ctx)
		})
		return e, m
	}
	a, am := newNode(nil)
	other, _ := newNode([]string{am.Addr()})
	_ = other
	// Wait until a owns some keys and not others: both are members.
	var local, remote *switchboard.Key
	deadline := time.Now().Add(30 * time.Second)
	for local == nil || remote == nil {
		if time.Now().After(deadline) {
			b.Fatal("the two nodes did not form a cluster")
		}
		local, remote = nil, nil
		for _, k := range keys {
			owner, far := a.KeyOwner(k.ID)
			switch {
			case owner != "" && !far && local == nil:
				local = k
			case far && remote == nil:
				remote = k
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, tc := range []struct {
		name string
		key  *switchboard.Key
	}{{"owner", local}, {"forwarded", remote}} {
		b.Run(tc.name, func(b *testing.B) {
			req := []switchboard.SubmitRequest{{To: "+447700900123", From: "Bench", Body: "hop"}}
			for range 200 { // warm up: the key's actor starts and takes its lease
				if res := a.Submit(context.Background(), tc.key, req); res[0].Err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				res := a.Submit(context.Background(), tc.key, req)
				took = append(took, time.Since(t0))
				if res[0].Err != nil {
					b.Fatal(res[0].Err)
				}
			}
			b.StopTimer()
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
		})
	}
}
