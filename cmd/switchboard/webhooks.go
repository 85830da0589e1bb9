package main

import (
	"context"
	"time"

	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/http/callback"
)

// webhookPoster is the engine's Poster on the HTTP client: it signs each
// attempt with the key's secret at the moment it is sent, so a retry
// carries a fresh timestamp that passes the receiver's replay window.
type webhookPoster struct{ client *callback.Client }

func newWebhookPoster(cfg WebhooksConfig) webhookPoster {
	return webhookPoster{client: callback.New(callback.Options{
		AllowPrivate:        cfg.AllowPrivateNetworks,
		Timeout:             cfg.Timeout.Std(),
		MaxConnsPerEndpoint: cfg.Concurrency,
	})}
}

func (p webhookPoster) Post(ctx context.Context, req actors.WebhookRequest) actors.PostResult {
	headers := [][2]string{
		{callback.SignatureHeader, callback.Sign(req.Secret, time.Now(), req.Body)},
		{"Switchboard-Event-Id", req.EventID},
	}
	res := p.client.Post(ctx, req.URL, req.Body, headers)
	out := actors.PostResult{Status: res.Status, RetryAfter: res.RetryAfter, Err: res.Err, Outcome: actors.PostRetry}
	switch res.Outcome {
	case callback.Delivered:
		out.Outcome = actors.PostDelivered
	case callback.Gone:
		out.Outcome = actors.PostGone
	case callback.RefusedURL:
		out.Outcome = actors.PostRefused
	}
	// RefusedAddress stays a retry: the name may resolve elsewhere later,
	// and max_age bounds the attempts.
	return out
}

func (p webhookPoster) Close() {
	if p.client != nil {
		p.client.Close()
	}
}
