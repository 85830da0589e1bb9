package pebble

import (
	"context"
	"errors"
	"testing"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
)

// A caller that gives up while its request is still queued gets ctx's
// error, and the committer skips the request.
func TestAbandonedRequestIsSkipped(t *testing.T) {
	db, err := pebbledb.Open(t.TempDir(), &pebbledb.Options{Logger: pebbleLogger{zerolog.Nop()}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := newCommitter(db, time.Now, zerolog.Nop()) // not started: requests stay queued
	ctx, cancel := context.WithCancel(t.Context())
	abandoned := &sb.Message{ID: "msg_1", Key: "k", Status: sb.StatusAccepted}
	errc := make(chan error)
	go func() { errc <- c.do(ctx, &request{accept: []sb.NewMessage{{Message: abandoned}}}) }()
	for c.queued() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned Accept returned %v, want context.Canceled", err)
	}

	c.start()
	defer c.stop()
	kept := &sb.Message{ID: "msg_2", Key: "k", Status: sb.StatusAccepted}
	if err := c.do(t.Context(), &request{accept: []sb.NewMessage{{Message: kept}}}); err != nil {
		t.Fatalf("Accept after the abandoned one: %v", err)
	}
	if _, err := getMessage(db, messageKey(nil, abandoned.ID)); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("abandoned message: %v, want ENOTFOUND", err)
	}
	if _, err := getMessage(db, messageKey(nil, kept.ID)); err != nil {
		t.Fatalf("kept message: %v", err)
	}
}

func (c *committer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}
