package smpp_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// BenchmarkRoundTrip measures whole round trips against the simulator in
// this process over loopback: submit_sm → submit_sm_resp → deliver_sm
// receipt → deliver_sm_resp. msgs/s counts messages whose receipt arrived.
func BenchmarkRoundTrip(b *testing.B) {
	for _, binds := range []int{1, 4} {
		b.Run(map[int]string{1: "binds=1", 4: "binds=4"}[binds], func(b *testing.B) {
			benchRoundTrip(b, binds, 64)
		})
	}
}

func benchRoundTrip(b *testing.B, binds, window int) {
	sim, err := smsc.Listen(smsc.Config{Addr: "127.0.0.1:0", Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	var got atomic.Int64
	onReceipt := func(_ switchboard.Receipt, ack func(error)) { got.Add(1); ack(nil) }

	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	clients := make([]*smpp.Client, binds)
	for i := range clients {
		c, err := smpp.NewClient(smpp.Config{
			Name: "bench", Addr: sim.Addr(), SystemID: "bench", Window: window,
			OnReceipt: onReceipt, Log: zerolog.Nop(),
		})
		if err != nil {
			b.Fatal(err)
		}
		clients[i] = c
		running.Add(1)
		go func() { defer running.Done(); c.Run(ctx) }()
	}
	defer func() { cancel(); running.Wait() }()
	for _, c := range clients {
		for !c.Bound() {
			time.Sleep(time.Millisecond)
		}
	}

	var failed atomic.Int64
	done := func(_ smpp.Result, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	m := &smpp.Message{From: "Bench", To: "+447700900123", Text: "The quick brown fox jumps over the lazy dog"}
	b.ReportAllocs()
	b.ResetTimer()
	began := time.Now()
	var senders sync.WaitGroup
	for i, c := range clients {
		n := b.N / binds
		if i == 0 {
			n += b.N % binds
		}
		senders.Add(1)
		go func() {
			defer senders.Done()
			for j := 0; j < n; j++ {
				c.SubmitAsync(ctx, m, done)
			}
		}()
	}
	senders.Wait()
	for got.Load()+failed.Load() < int64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(began)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d submits failed", failed.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}
