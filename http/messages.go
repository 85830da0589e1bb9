package http

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard"
)

// handleSubmit serves POST /v1/messages: one message, 202 once the engine
// has stored it durably.
func (s *Server) handleSubmit(ctx *fasthttp.RequestCtx, key *switchboard.Key, _ []byte) error {
	body, err := s.jsonBody(ctx, s.cfg.MaxBodySize)
	if err != nil {
		return err
	}
	req, err := decodeSubmit(body, string(ctx.Request.Header.Peek("Idempotency-Key")), s.rules)
	if err != nil {
		return err
	}
	reqs := [1]switchboard.SubmitRequest{req}
	res := s.engine.Submit(s.ctx, key, reqs[:])
	if len(res) != 1 {
		return engineBroken("Submit", len(res), 1)
	}
	if res[0].Err != nil {
		return res[0].Err
	}
	if res[0].Message == nil {
		return errors.New("http: engine accepted a message without returning it")
	}
	w := s.writer()
	w.openObject()
	w.accepted(res[0].Message)
	w.closeObject()
	s.send(ctx, fasthttp.StatusAccepted, w)
	return nil
}

// handleBatch serves POST /v1/messages/batch. Items are independent: each
// that fails decoding, validation or the engine gets its own error and the
// rest are still submitted, in one engine call. Only a malformed envelope
// fails the whole request.
func (s *Server) handleBatch(ctx *fasthttp.RequestCtx, key *switchboard.Key, _ []byte) error {
	body, err := s.jsonBody(ctx, s.cfg.MaxBatchBodySize)
	if err != nil {
		return err
	}
	if len(ctx.Request.Header.Peek("Idempotency-Key")) > 0 {
		return apiError(switchboard.EINVALID, `Idempotency-Key is not supported on batches; give each message an "idempotency_key".`)
	}
	items, err := decodeBatch(body, s.cfg.MaxBatch)
	if err != nil {
		return err
	}
	results := make([]switchboard.SubmitResult, len(items))
	reqs := make([]switchboard.SubmitRequest, 0, len(items))
	index := make([]int, 0, len(items)) // reqs[j] is item index[j]
	for i, raw := range items {
		req, err := decodeItem(raw, s.rules)
		if err != nil {
			results[i].Err = err
			continue
		}
		reqs = append(reqs, req)
		index = append(index, i)
	}
	if len(reqs) > 0 {
		res := s.engine.Submit(s.ctx, key, reqs)
		if len(res) != len(reqs) {
			return engineBroken("Submit", len(res), len(reqs))
		}
		for j, r := range res {
			results[index[j]] = r
		}
	}
	s.writeBatch(ctx, results)
	return nil
}

// writeBatch writes the 202 of a batch. Retry-After is the longest any
// item was told to wait, so a client can retry the rejected ones.
func (s *Server) writeBatch(ctx *fasthttp.RequestCtx, results []switchboard.SubmitResult) {
	var accepted, rejected, retryAfter int64
	// Items that failed at 500 or above are logged once, with the first
	// cause and how many.
	var failedFirst error
	var failed, failedStatus int
	w := s.writer()
	w.openObject()
	w.key("results")
	w.openArray()
	for i, r := range results {
		w.elem()
		w.openObject()
		w.int("index", int64(i))
		switch {
		case r.Err == nil && r.Message != nil:
			accepted++
			w.accepted(r.Message)
		default:
			rejected++
			err := r.Err
			if err == nil {
				err = errors.New("http: engine returned neither a message nor an error")
			}
			p := publicOf(err)
			if p.status >= 500 {
				if failed++; failedFirst == nil {
					failedFirst, failedStatus = err, p.status
				}
			}
			retryAfter = max(retryAfter, p.retryAfter)
			w.key("error")
			w.errorObject(p.code, p.message)
		}
		w.closeObject()
	}
	w.closeArray()
	w.int("accepted", accepted)
	w.int("rejected", rejected)
	w.closeObject()
	if failed > 0 {
		s.logFailed(ctx, failedFirst, failedStatus, failed)
	}
	if retryAfter > 0 {
		setRetryAfter(ctx, retryAfter)
	}
	s.send(ctx, fasthttp.StatusAccepted, w)
}

// errNoSuchMessage is the one answer for a message a key cannot see: an
// id that cannot be a message id, an unknown one, another key's. They
// must read alike, or the answer would tell which ids exist.
func errNoSuchMessage() error { return apiError(switchboard.ENOTFOUND, "No such message.") }

// handleMessage serves GET /v1/messages/{id}.
func (s *Server) handleMessage(ctx *fasthttp.RequestCtx, key *switchboard.Key, id []byte) error {
	if !validMessageID(id) {
		return errNoSuchMessage()
	}
	m, err := s.engine.Message(s.ctx, key, string(id))
	if switchboard.ErrorCode(err) == switchboard.ENOTFOUND {
		return errNoSuchMessage()
	}
	if err != nil {
		return err
	}
	if m == nil {
		return errors.New("http: engine returned no message and no error")
	}
	w := s.writer()
	w.message(m)
	// The body is private data; no cache may keep it.
	ctx.Response.Header.Set("Cache-Control", "no-store")
	s.send(ctx, fasthttp.StatusOK, w)
	return nil
}

// handleHealthz serves GET /healthz: the process is up. It stays 200 while
// draining, so the process is not restarted mid-drain.
func (s *Server) handleHealthz(ctx *fasthttp.RequestCtx, _ *switchboard.Key, _ []byte) error {
	s.sendStatusOK(ctx)
	return nil
}

// handleReadyz serves GET /readyz: 503 unavailable, with the reason as
// the error's message, while draining or while the engine is not ready
// (stopping, the store refuses writes, no carrier to send to), so load
// balancers send traffic elsewhere. /healthz is the liveness probe.
func (s *Server) handleReadyz(ctx *fasthttp.RequestCtx, _ *switchboard.Key, _ []byte) error {
	err := s.readiness()
	s.noteReadiness(err)
	if err != nil {
		return err
	}
	s.sendStatusOK(ctx)
	return nil
}

// readiness returns nil when ready, else the 503 to answer /readyz with.
func (s *Server) readiness() error {
	if s.draining.Load() {
		return s.errDraining
	}
	err := s.engine.Ready()
	if err == nil {
		return nil
	}
	if switchboard.ErrorCode(err) != switchboard.EUNAVAILABLE {
		// Not a reason meant for clients: log it, answer in general terms.
		s.log.Error().Err(err).Msg("readiness check failed")
		return apiError(switchboard.EUNAVAILABLE, "The node is not ready.")
	}
	return err
}

// noteReadiness logs a change of readiness (readinessLog).
func (s *Server) noteReadiness(err error) {
	s.readyLog.note(err, err == error(s.errDraining))
}

// readinessLog logs a listener's changes of readiness, as its /readyz
// finds them: the reason when it turns unready or the reason changes
// (not for a drain, which is logged when it starts), and when it is ready
// again.
type readinessLog struct {
	log      zerolog.Logger
	notReady atomic.Pointer[string] // why /readyz last answered 503, "" if 200
}

func (l *readinessLog) note(err error, draining bool) {
	reason := ""
	if err != nil {
		reason = switchboard.ErrorMessage(err)
	}
	if old := l.notReady.Swap(&reason); old != nil && *old == reason || old == nil && reason == "" {
		return
	}
	if reason == "" {
		l.log.Info().Msg("ready")
	} else if !draining {
		l.log.Warn().Str("reason", reason).Msg("not ready")
	}
}

func (s *Server) sendStatusOK(ctx *fasthttp.RequestCtx) {
	w := s.writer()
	w.openObject()
	w.str("status", "ok")
	w.closeObject()
	s.send(ctx, fasthttp.StatusOK, w)
}

// jsonBody returns the body of a POST after checking its media type and
// size. fasthttp already refused bodies over the route's limit (see
// headerReceived); the check here keeps the limit whatever the path's
// spelling.
func (s *Server) jsonBody(ctx *fasthttp.RequestCtx, limit int) ([]byte, error) {
	if ct := ctx.Request.Header.ContentType(); !isJSONContentType(ct) {
		return nil, errMediaType(ct)
	}
	body := ctx.PostBody()
	if len(body) > limit {
		return nil, switchboard.Errorf(switchboard.ETOOLARGE, "Request body is larger than %d bytes.", limit)
	}
	return body, nil
}

const messageIDPrefix = "msg_"

// validMessageID reports whether id is "msg_" and 26 upper-case Crockford
// base32 characters (a ULID).
func validMessageID(id []byte) bool {
	const prefix = messageIDPrefix
	if len(id) != len(prefix)+26 || string(id[:len(prefix)]) != prefix {
		return false
	}
	for _, c := range id[len(prefix):] {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U') {
			return false
		}
	}
	return true
}

// engineBroken reports an engine that broke its contract of one result per
// request: an internal error, logged by Error.
func engineBroken(method string, got, want int) error {
	return fmt.Errorf("http: engine %s returned %d results for %d requests", method, got, want)
}
