package actors

import (
	"errors"
	"time"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors/wire"
)

// Conversions between the engine's types and the messages nodes exchange.

func submitToWire(keyID string, reqs []switchboard.SubmitRequest, budget time.Duration) *wire.SubmitBatch {
	b := &wire.SubmitBatch{KeyId: keyID, BudgetMs: budget.Milliseconds(), Requests: make([]*wire.SubmitRequest, len(reqs))}
	for i := range reqs {
		r := &reqs[i]
		w := &wire.SubmitRequest{To: r.To, From: r.From, Body: r.Body, CallbackUrl: r.CallbackURL,
			Reference: r.Reference, ValidityMs: r.Validity.Milliseconds(), IdempotencyKey: r.IdempotencyKey}
		if r.IdempotencyKey != "" {
			w.RequestHash = r.RequestHash[:]
		}
		b.Requests[i] = w
	}
	return b
}

func requestsFromWire(b *wire.SubmitBatch) []switchboard.SubmitRequest {
	reqs := make([]switchboard.SubmitRequest, len(b.Requests))
	for i, w := range b.Requests {
		r := switchboard.SubmitRequest{To: w.To, From: w.From, Body: w.Body, CallbackURL: w.CallbackUrl,
			Reference: w.Reference, Validity: time.Duration(w.ValidityMs) * time.Millisecond, IdempotencyKey: w.IdempotencyKey}
		copy(r.RequestHash[:], w.RequestHash)
		reqs[i] = r
	}
	return reqs
}

func resultsToWire(results []switchboard.SubmitResult) *wire.SubmitReply {
	reply := &wire.SubmitReply{Results: make([]*wire.SubmitResult, len(results))}
	for i, r := range results {
		w := &wire.SubmitResult{}
		switch {
		case r.Err != nil:
			w.Error = errorToWire(r.Err)
		case r.Message == nil:
			w.Error = errorToWire(errors.New("a submit ended with neither a message nor an error"))
		default:
			m := r.Message
			w.Accepted = &wire.Accepted{Id: m.ID, KeyId: m.Key, To: m.To, From: m.From, Segments: int32(m.Segments),
				Encoding: m.Encoding, AcceptedAt: m.AcceptedAt.UnixNano(), Reference: m.Reference}
		}
		reply.Results[i] = w
	}
	return reply
}

// resultsFromWire rebuilds the results an owner sent back: an accepted
// message as the API shows it in a 202 (the rest is the owner's to tell,
// through GET /v1/messages/{id}), or the error with its code.
func resultsFromWire(reply *wire.SubmitReply) []switchboard.SubmitResult {
	out := make([]switchboard.SubmitResult, len(reply.Results))
	for i, w := range reply.Results {
		if w.Error != nil || w.Accepted == nil {
			out[i].Err = errorFromWire(w.Error)
			continue
		}
		a := w.Accepted
		at := time.Unix(0, a.AcceptedAt).UTC()
		out[i].Message = &switchboard.Message{ID: a.Id, Key: a.KeyId, To: a.To, From: a.From, Segments: int(a.Segments),
			Encoding: a.Encoding, AcceptedAt: at, UpdatedAt: at, Reference: a.Reference, Status: switchboard.StatusAccepted}
	}
	return out
}

func errorToWire(err error) *wire.Error {
	w := &wire.Error{Code: switchboard.ErrorCode(err), Message: switchboard.ErrorMessage(err)}
	if e, ok := err.(*switchboard.Error); ok {
		w.RetryAfterMs = e.RetryAfter.Milliseconds()
	}
	return w
}

func errorFromWire(w *wire.Error) error {
	if w == nil {
		return switchboard.Errorf(switchboard.EINTERNAL, "Internal error.")
	}
	return &switchboard.Error{Code: w.Code, Message: w.Message, RetryAfter: time.Duration(w.RetryAfterMs) * time.Millisecond}
}
