package http

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard"
)

// benchEngine accepts everything at once with a fixed message, so the
// benchmarks measure the HTTP layer alone.
type benchEngine struct{ msg switchboard.Message }

func (e *benchEngine) Submit(_ context.Context, _ *switchboard.Key, reqs []switchboard.SubmitRequest) []switchboard.SubmitResult {
	out := make([]switchboard.SubmitResult, len(reqs))
	for i := range out {
		out[i].Message = &e.msg
	}
	return out
}

func (e *benchEngine) Message(context.Context, *switchboard.Key, string) (*switchboard.Message, error) {
	return &e.msg, nil
}

func (e *benchEngine) Ready() error { return nil }

func (e *benchEngine) ListMessages(context.Context, *switchboard.Key, switchboard.MessageQuery) ([]*switchboard.Message, string, error) {
	return []*switchboard.Message{&e.msg}, "", nil
}

func newBenchServer(b *testing.B) *Server {
	b.Helper()
	s, err := New(Config{
		Engine: &benchEngine{msg: switchboard.Message{
			ID: "msg_01JZZZZZZZZZZZZZZZ00000001", To: "+447700900123", From: "Acme", Encoding: "gsm7", Segments: 1,
			Status: switchboard.StatusAccepted, AcceptedAt: time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC),
		}},
		Keys: testKeys(),
		Log:  zerolog.New(io.Discard).Level(zerolog.InfoLevel),
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

const benchBody = `{"to":"+447700900123","from":"Acme","body":"Your code is 123456. It expires in 10 minutes.","reference":"order-42"}`

func benchRequest(path, body string, extra ...string) *fasthttp.Request {
	req := &fasthttp.Request{}
	req.Header.SetMethod("POST")
	req.SetRequestURI(path)
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Bearer "+testSecret)
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	req.SetBodyString(body)
	return req
}

// BenchmarkSubmit runs POST /v1/messages through the handler in process:
// auth, decode, validate, engine call, 202 body.
func BenchmarkSubmit(b *testing.B) {
	for _, c := range []struct {
		name  string
		extra []string
	}{{"plain", nil}, {"idempotent", []string{"Idempotency-Key", "order-42-attempt-1"}}} {
		b.Run(c.name, func(b *testing.B) {
			s := newBenchServer(b)
			var ctx fasthttp.RequestCtx
			ctx.Init(benchRequest(pathMessages, benchBody, c.extra...), nil, nil)
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				s.handler(&ctx)
				if ctx.Response.StatusCode() != 202 {
					b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}

// BenchmarkSubmitBatch submits 100 messages per request; ns/op is per
// batch.
func BenchmarkSubmitBatch(b *testing.B) {
	s := newBenchServer(b)
	body := `{"messages":[` + strings.TrimSuffix(strings.Repeat(benchBody+",", 100), ",") + `]}`
	var ctx fasthttp.RequestCtx
	ctx.Init(benchRequest(pathBatch, body), nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		s.handler(&ctx)
		if ctx.Response.StatusCode() != 202 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkDecodeSubmit is the decoder alone, on the usual flat shape
// (decodeFlat; encoding/json for anything else).
func BenchmarkDecodeSubmit(b *testing.B) {
	body := []byte(benchBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeSubmit(body, "", testRules); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSubmitLoopback is the whole server over loopback TCP with
// keep-alive connections, clients and server sharing the machine.
func BenchmarkSubmitLoopback(b *testing.B) {
	s := newBenchServer(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	defer func() {
		s.Shutdown(context.Background())
		<-done
	}()
	client := &fasthttp.Client{MaxConnsPerHost: 512}
	url := "http://" + ln.Addr().String() + pathMessages
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		req := benchRequest(url, benchBody)
		var resp fasthttp.Response
		for pb.Next() {
			if err := client.Do(req, &resp); err != nil {
				b.Error(err)
				return
			}
			if resp.StatusCode() != 202 {
				b.Errorf("%d %s", resp.StatusCode(), resp.Body())
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
