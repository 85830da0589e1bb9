package harness

import (
	"bytes"
	"math/rand/v2"
	"net/url"
	"strconv"

	"github.com/valyala/fasthttp"
)

// A driver speaks one gateway's submit API: it builds a request carrying
// n messages and reads which of them were accepted.
type driver interface {
	// build fills req (reset before each use) for n messages, the first
	// with sequence number seq; buf is scratch space to reuse.
	build(req *fasthttp.Request, buf []byte, r *rand.Rand, seq int64, n int) []byte
	// accepted reads the answer to such a request: it appends the ids of
	// the accepted messages (the ids their callbacks will carry) and
	// returns them with their parts (0 when the API does not say).
	accepted(resp *fasthttp.Response, seq int64, n int, ids []string) ([]string, int)
}

// switchboardDriver posts to POST /v1/messages (one message a request) or
// POST /v1/messages/batch (n > 1); a 202 accepts.
type switchboardDriver struct {
	gen   *gen
	one   string // URL of /v1/messages
	batch string // URL of /v1/messages/batch
}

func newSwitchboardDriver(addr string, g *gen) *switchboardDriver {
	return &switchboardDriver{gen: g, one: "http://" + addr + "/v1/messages", batch: "http://" + addr + "/v1/messages/batch"}
}

func (d *switchboardDriver) build(req *fasthttp.Request, buf []byte, r *rand.Rand, _ int64, n int) []byte {
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if n > 1 {
		req.SetRequestURI(d.batch)
		buf, _ = d.gen.appendBatch(buf[:0], r, n)
	} else {
		req.SetRequestURI(d.one)
		buf, _ = d.gen.appendMessage(buf[:0], r)
	}
	req.SetBodyRaw(buf)
	req.Header.SetBytesV("Authorization", d.gen.auths[d.gen.key(r)])
	return buf
}

func (d *switchboardDriver) accepted(resp *fasthttp.Response, _ int64, _ int, ids []string) ([]string, int) {
	if resp.StatusCode() != fasthttp.StatusAccepted {
		return ids, 0
	}
	return scanAccepted(resp.Body(), ids)
}

// scanAccepted reads the accepted messages of a 202 (one message, or a
// batch's results) without decoding it all: each carries "id" and
// "segments"; rejected batch items carry "error" and no "id".
func scanAccepted(body []byte, ids []string) ([]string, int) {
	segKey := []byte(`"segments":`)
	parts := 0
	eachAfter(body, []byte(`"id":"`), func(b []byte) {
		id, ok := untilQuote(b)
		if !ok {
			return
		}
		ids = append(ids, id)
		if k := bytes.Index(b[len(id):], segKey); k >= 0 {
			parts += leadingInt(b[len(id)+k+len(segKey):])
		}
	})
	return ids, parts
}

// eachAfter calls f with what follows each occurrence of key in body.
func eachAfter(body, key []byte, f func(rest []byte)) {
	for b := body; ; {
		i := bytes.Index(b, key)
		if i < 0 {
			return
		}
		b = b[i+len(key):]
		f(b)
	}
}

// untilQuote returns b up to its first '"': the rest of a JSON string
// without escapes.
func untilQuote(b []byte) (string, bool) {
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return "", false
	}
	return string(b[:j]), true
}

// leadingInt is the unsigned decimal number at the start of b (0 if none).
func leadingInt(b []byte) int {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// kannelDriver sends GET /cgi-bin/sendsms, one message a request, with a
// dlr-url pointing at the sink's /kannel handler (Kannel fills in %d with
// the report type) and dlr-mask 3 (delivered and failed). Kannel answers
// 202 "0: Accepted for delivery" (or "3: Queued for later delivery") when
// it took the message; anything else is a refusal.
type kannelDriver struct {
	gen    *gen
	prefix []byte // base URL, path and the fixed query
	sink   string // the sink's base URL
}

func newKannelDriver(base, user, pass, sinkURL string, g *gen) *kannelDriver {
	q := url.Values{}
	q.Set("username", user)
	q.Set("password", pass)
	q.Set("from", "Bench")
	q.Set("dlr-mask", "3")
	return &kannelDriver{gen: g, prefix: []byte(base + "/cgi-bin/sendsms?" + q.Encode()), sink: sinkURL}
}

func (d *kannelDriver) build(req *fasthttp.Request, buf []byte, r *rand.Rand, seq int64, _ int) []byte {
	v := d.gen.variant(r)
	buf = append(buf[:0], d.prefix...)
	buf = append(buf, "&to="...)
	buf = append(buf, url.QueryEscape(d.gen.dests[r.IntN(len(d.gen.dests))])...)
	buf = append(buf, "&text="...)
	buf = append(buf, url.QueryEscape(v.text)...)
	if v.coding == "ucs2" {
		// UTF-8 in, UCS-2 to the SMSC.
		buf = append(buf, "&charset=UTF-8&coding=2"...)
	}
	buf = append(buf, "&dlr-url="...)
	buf = append(buf, url.QueryEscape(d.sink+"/kannel?n="+strconv.FormatInt(seq, 10)+"&status=%d")...)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURIBytes(buf)
	return buf
}

func (d *kannelDriver) accepted(resp *fasthttp.Response, seq int64, _ int, ids []string) ([]string, int) {
	if resp.StatusCode() != fasthttp.StatusAccepted {
		return ids, 0
	}
	body := resp.Body()
	if !bytes.HasPrefix(body, []byte("0:")) && !bytes.HasPrefix(body, []byte("3:")) {
		return ids, 0
	}
	return append(ids, "kannel-"+strconv.FormatInt(seq, 10)), 0
}
