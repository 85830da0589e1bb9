package callback

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// fastReceiver is a fasthttp server on 127.0.0.1:0 that answers 200 with
// a short body, stopped at the end of the test.
func fastReceiver(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(`{"ok":true}`) }}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(ln) })
	tb.Cleanup(func() {
		srv.Shutdown()
		wg.Wait()
	})
	return "http://" + ln.Addr().String() + "/hooks/sms?key=k_123"
}

func benchPost(b *testing.B, parallel bool) {
	url := fastReceiver(b)
	c := New(Options{AllowPrivate: true})
	defer c.Close()
	body := []byte(`{"event_id":"evt_01J01ZQ4X6K8YB3V0M4N2T7R9S","attempt":1,"type":"message.status","message_id":"msg_01J01ZPZC8VXK3F8QH2E4M5N6P","status":"delivered","to":"+15551234567","from":"Acme","carrier":"sandbox","carrier_message_id":"4f2a9c01","segments":1,"occurred_at":"2024-06-10T14:30:31.123Z"}`)
	headers := [][2]string{{SignatureHeader, Sign("whsec_example", time.Now(), body)}}
	post := func() {
		if res := c.Post(context.Background(), url, body, headers); res.Outcome != Delivered {
			b.Fatalf("%+v", res)
		}
	}
	post() // open the connection
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		for b.Loop() {
			post()
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			post()
		}
	})
}

// BenchmarkPost is one Post at a time on a kept-alive connection to a
// local fasthttp receiver: the client's cost and a loopback round trip.
func BenchmarkPost(b *testing.B) { benchPost(b, false) }

// BenchmarkPostParallel is GOMAXPROCS goroutines posting to one endpoint.
func BenchmarkPostParallel(b *testing.B) { benchPost(b, true) }

// BenchmarkSign is the signature of a 300-byte event.
func BenchmarkSign(b *testing.B) {
	body := make([]byte, 300)
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		Sign("whsec_example", at, body)
	}
}
