package storagetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	sb "github.com/switchboard-sms/switchboard"
)

// Concurrent single-message Accepts from 50 goroutines are all stored (run
// with -race).
func testConcurrentAccept(t *testing.T, f *fixture) {
	const goroutines, each = 50, 20
	msgs := make([][]*sb.Message, goroutines)
	for g := range msgs {
		for range each {
			msgs[g] = append(msgs[g], f.message(fmt.Sprintf("k%d", g%5), now()))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for _, m := range msgs[g] {
				if err := f.s.Accept(f.ctx, []sb.NewMessage{{Message: m}}); err != nil {
					errs <- fmt.Errorf("Accept %s: %w", m.ID, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for k := range 5 {
		total += len(f.pending(t, fmt.Sprintf("k%d", k), "", goroutines*each))
	}
	if total != goroutines*each {
		t.Fatalf("%d messages pending, want %d", total, goroutines*each)
	}
	for _, ms := range msgs {
		for _, m := range ms {
			wantEqual(t, f.get(t, m.ID), m)
		}
	}
}

// submittedParts accepts a message of n parts and records their
// submission, carrier IDs p0, p1, ….
func (f *fixture) submittedParts(t *testing.T, n int) *sb.Message {
	t.Helper()
	m := f.message("k1", now())
	m.Segments = n
	f.accept(t, m)
	cids := make([]string, n)
	for i := range cids {
		cids[i] = fmt.Sprintf("p%d", i)
	}
	f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", cids...)})
	return m
}

// Receipts for the parts of one message recorded at once, as they arrive
// on different binds, all land: Record's read-modify-write is atomic.
func testConcurrentReceipts(t *testing.T, f *fixture) {
	const parts = 8
	m := f.submittedParts(t, parts)
	updates := make([]sb.Update, parts)
	for part := range parts {
		updates[part] = sb.Update{MessageID: m.ID, Transition: receipt(now(), part, sb.StatusDelivered)}
	}
	f.recordConcurrently(t, updates...)
	got := f.get(t, m.ID)
	if got.Status != sb.StatusDelivered || len(got.Events) != 2+parts {
		t.Fatalf("status %s with %d events, want delivered with %d", got.Status, len(got.Events), 2+parts)
	}
}

// A write with a context already done fails and stores nothing.
func testCanceledContext(t *testing.T, f *fixture) {
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	m := f.message("k1", now())
	if err := f.s.Accept(ctx, []sb.NewMessage{{Message: m}}); err == nil {
		t.Fatal("Accept with a canceled context succeeded")
	}
	f.wantMissing(t, m.ID)
}

// After Close every call fails, Close included.
func testClose(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	f.accept(t, m)
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := f.ctx
	calls := map[string]func() error{
		"Accept": func() error { return f.s.Accept(ctx, []sb.NewMessage{{Message: f.message("k1", now())}}) },
		"Idempotency": func() error {
			_, err := f.s.Idempotency(ctx, "k1", "x")
			return err
		},
		"Message": func() error {
			_, err := f.s.Message(ctx, m.ID)
			return err
		},
		"Record": func() error {
			_, err := f.s.Record(ctx, []sb.Update{{MessageID: m.ID, Transition: status(now(), sb.StatusQueued)}})
			return err
		},
		"Pending": func() error {
			_, err := f.s.Pending(ctx, "k1", "", "", 10)
			return err
		},
		"PendingCount": func() error {
			_, err := f.s.PendingCount(ctx, "k1")
			return err
		},
		"PendingKeys": func() error {
			_, err := f.s.PendingKeys(ctx)
			return err
		},
		"CarrierMessage": func() error {
			_, _, err := f.s.CarrierMessage(ctx, "sandbox", "x")
			return err
		},
		"Overdue": func() error {
			_, err := f.s.Overdue(ctx, now(), 10)
			return err
		},
		"ListMessages": func() error {
			_, _, err := f.s.ListMessages(ctx, sb.MessageQuery{Key: "k1", Day: m.Day(), Limit: 10})
			return err
		},
		"Callbacks": func() error {
			_, err := f.s.Callbacks(ctx, messageEndpoint, "", "", 10)
			return err
		},
		"CallbackEndpoints": func() error {
			_, err := f.s.CallbackEndpoints(ctx)
			return err
		},
		"FinishCallbacks": func() error {
			return f.s.FinishCallbacks(ctx, []sb.FinishedCallback{{Callback: sb.Callback{ID: "evt_1", Endpoint: messageEndpoint}}})
		},
		"AddInboundPart": func() error { return f.s.AddInboundPart(ctx, f.part("sandbox", 1, 2, 1)) },
		"InboundParts": func() error {
			_, err := f.s.InboundParts(ctx)
			return err
		},
		"AcceptInbound": func() error { return f.s.AcceptInbound(ctx, f.inbound("k1", now()), nil, nil) },
		"InitSetting": func() error {
			_, err := f.s.InitSetting(ctx, "secret", "x")
			return err
		},
		"PutSetting":    func() error { return f.s.PutSetting(ctx, "secret", "x") },
		"DeleteSetting": func() error { return f.s.DeleteSetting(ctx, "secret") },
		"ListSettings": func() error {
			_, err := f.s.ListSettings(ctx, "")
			return err
		},
		"Writable": f.s.Writable, // writes fail now: Writable says so
		"Close":    f.s.Close,
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s after Close succeeded", name)
		}
	}
}
