package callback

import (
	"context"
	"time"

	"github.com/switchboard-sms/switchboard/actors"
)

// Poster is the engine's actors.Poster on a Client: it signs each attempt
// with the key's secret at the moment it is sent, so a retry carries a
// fresh timestamp that passes the receiver's replay window; during a
// webhook secret rotation, with the old secret too (two v1 signatures).
type Poster struct{ Client *Client }

// EventIDHeader repeats the body's event_id, so a receiver can drop a
// duplicate before parsing the body. A batch (a JSON array) has none.
const EventIDHeader = "Switchboard-Event-Id"

// Post sends one attempt and says what it means for the callback.
func (p Poster) Post(ctx context.Context, req actors.WebhookRequest) actors.PostResult {
	var old []string
	if req.OldSecret != "" {
		old = []string{req.OldSecret}
	}
	headers := [][2]string{
		{SignatureHeader, p.Client.macs.sign(req.Secret, time.Now(), req.Body, old)},
		{EventIDHeader, req.EventID},
	}
	if req.EventID == "" { // a batch: the body lists the event_ids
		headers = headers[:1]
	}
	res := p.Client.Post(ctx, req.URL, req.Body, headers)
	out := actors.PostResult{Status: res.Status, RetryAfter: res.RetryAfter, Err: res.Err, Outcome: actors.PostRetry}
	switch res.Outcome {
	case Delivered:
		out.Outcome = actors.PostDelivered
	case Gone:
		out.Outcome = actors.PostGone
	case RefusedURL:
		out.Outcome = actors.PostRefused
	}
	// RefusedAddress stays a retry: the name may resolve elsewhere later,
	// and max_age bounds the attempts.
	return out
}
