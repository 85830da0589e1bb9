package http

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/http/callback"
)

// Request decoding uses encoding/json with unknown fields refused, so a
// misspelt optional field ("refrence") is an error, not silently dropped.
// Every failure is a *switchboard.Error with a 4xx code whose message names
// the field; nothing a client sends can make decoding panic or read as 500.

// decodeRules are the configured limits decoding checks against.
type decodeRules struct {
	// allowPrivate lets callback_url name loopback and private addresses
	// (webhooks.allow_private_networks).
	allowPrivate bool
	// maxValidity is the longest validity a client may ask for, in whole
	// seconds (limits.max_validity).
	maxValidity int64
}

// errValidity is the one message for a validity out of range or of the
// wrong type.
func (r decodeRules) errValidity() error {
	return switchboard.Errorf(switchboard.EINVALID, `"validity" must be a whole number of seconds from 1 to %d.`, r.maxValidity)
}

// MaxIdempotencyKey is the longest Idempotency-Key, in bytes.
const MaxIdempotencyKey = 255

// submitBody is the JSON of one message: POST /v1/messages, and each item
// of a batch (with idempotency_key).
type submitBody struct {
	To          string `json:"to"`
	From        string `json:"from"`
	Body        string `json:"body"`
	CallbackURL string `json:"callback_url"`
	Reference   string `json:"reference"`
	// Validity is whole seconds, 1..maxValidity; absent or null takes the
	// configured default.
	Validity *int64 `json:"validity"`
}

// batchItem is one message of a batch. The Idempotency-Key header would be
// ambiguous for many messages, so each carries its own key.
type batchItem struct {
	submitBody
	IdempotencyKey string `json:"idempotency_key"`
}

// batchBody is the JSON of POST /v1/messages/batch. Items stay raw so each
// decodes on its own: a bad item fails alone.
type batchBody struct {
	Messages batchItems `json:"messages"`
}

// batchItems are a batch's items, raw. It reads its array itself, so that
// it stops at the first item past max: decoded whole, a body of tiny items
// ([0,0,…]) costs some 65 times its size in memory before its count can
// be checked.
type batchItems struct {
	raw []json.RawMessage
	max int
}

func (b *batchItems) UnmarshalJSON(data []byte) error {
	b.raw = b.raw[:0] // a repeated "messages": the last wins, as for any field
	if string(data) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return &json.UnmarshalTypeError{Value: "non-array", Type: reflect.TypeFor[[]json.RawMessage](), Field: "messages"}
	}
	for dec.More() {
		if len(b.raw) == b.max {
			return b.countError("more")
		}
		var item json.RawMessage
		if err := dec.Decode(&item); err != nil {
			return err
		}
		b.raw = append(b.raw, item)
	}
	return nil
}

func (b *batchItems) countError(holds string) error {
	return switchboard.Errorf(switchboard.EINVALID, `"messages" must hold 1 to %d messages; it holds %s.`, b.max, holds)
}

// decodeSubmit decodes and validates the body of POST /v1/messages with the
// Idempotency-Key header's value ("" when absent).
func decodeSubmit(body []byte, idempotencyKey string, rules decodeRules) (switchboard.SubmitRequest, error) {
	key, err := parseIdempotencyKey(idempotencyKey, "Idempotency-Key header")
	if err != nil {
		return switchboard.SubmitRequest{}, err
	}
	var in submitBody
	if !decodeFlat(body, &in, nil) {
		if err := decodeObject(body, &in, "Request body", rules); err != nil {
			return switchboard.SubmitRequest{}, err
		}
	}
	return in.request(key, rules)
}

// decodeBatch decodes the envelope of a batch; items are decoded by
// decodeItem, which checks each one's text: one item's bad UTF-8 fails
// that item, not the batch (the envelope keeps items as raw bytes).
func decodeBatch(body []byte, maxBatch int) ([]json.RawMessage, error) {
	in := batchBody{Messages: batchItems{max: maxBatch}}
	if err := decodeJSONObject(body, &in, "Request body", decodeRules{}); err != nil {
		return nil, err
	}
	if len(in.Messages.raw) == 0 {
		return nil, in.Messages.countError("none")
	}
	return in.Messages.raw, nil
}

// decodeItem decodes and validates one message of a batch.
func decodeItem(raw []byte, rules decodeRules) (switchboard.SubmitRequest, error) {
	var in batchItem
	if !decodeFlat(raw, &in.submitBody, &in.IdempotencyKey) {
		if err := decodeObject(raw, &in, "The message", rules); err != nil {
			return switchboard.SubmitRequest{}, err
		}
	}
	key, err := parseIdempotencyKey(in.IdempotencyKey, `"idempotency_key"`)
	if err != nil {
		return switchboard.SubmitRequest{}, err
	}
	return in.request(key, rules)
}

// decodeObject decodes one JSON object and nothing after it; what names it
// in errors. Raw bytes are checked for UTF-8 first because encoding/json
// would silently turn invalid sequences into U+FFFD, changing the message.
func decodeObject(data []byte, v any, what string, rules decodeRules) error {
	if !utf8.Valid(data) {
		return apiError(switchboard.EINVALID, what+" is not valid UTF-8.")
	}
	if !validSurrogates(data) {
		return apiError(switchboard.EINVALID, what+` has a \u escape of a lone UTF-16 surrogate.`)
	}
	return decodeJSONObject(data, v, what, rules)
}

// decodeJSONObject is decodeObject without the checks of the text.
func decodeJSONObject(data []byte, v any, what string, rules decodeRules) error {
	if i := skipSpace(data, 0); i == len(data) || data[i] != '{' {
		return apiError(switchboard.EINVALID, what+" must be a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, what, rules)
	}
	if skipSpace(data, int(dec.InputOffset())) != len(data) {
		return apiError(switchboard.EINVALID, what+" has data after the JSON object.")
	}
	return nil
}

// validSurrogates reports whether every \u escape of a UTF-16 surrogate in
// data is half of a pair. encoding/json turns a lone one into U+FFFD as
// silently as it does invalid UTF-8. Outside strings a backslash is a
// syntax error the decoder reports, so the scan need not track strings.
func validSurrogates(data []byte) bool {
	for i := 0; i < len(data); {
		j := bytes.IndexByte(data[i:], '\\')
		if j < 0 {
			return true
		}
		i += j
		r, ok := hexEscape(data[i:])
		switch {
		case !ok:
			i += 2 // \" \\ \n ... or a broken escape the decoder will refuse
		case r >= 0xd800 && r < 0xdc00:
			if low, ok := hexEscape(data[i+6:]); !ok || low < 0xdc00 || low >= 0xe000 {
				return false
			}
			i += 12
		case r >= 0xdc00 && r < 0xe000:
			return false
		default:
			i += 6
		}
	}
	return true
}

// hexEscape decodes a \uXXXX escape at the start of b.
func hexEscape(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// jsonError turns an encoding/json error into a message for the client,
// naming the field without Go type names.
func jsonError(err error, what string, rules decodeRules) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var own *switchboard.Error
	if errors.As(err, &own) { // a decoder of ours said what is wrong
		return own
	}
	if errors.As(err, &typ) {
		// Field is the Go path; batch items embed submitBody, so it may
		// read "submitBody.to". JSON fields are flat: keep the last part.
		typ.Field = typ.Field[strings.LastIndexByte(typ.Field, '.')+1:]
	}
	switch {
	case errors.As(err, &syntax):
		return switchboard.Errorf(switchboard.EINVALID, "%s is not valid JSON at byte %d: %s.", what, syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ) && typ.Field == "":
		return apiError(switchboard.EINVALID, what+" must be a JSON object.")
	case errors.As(err, &typ) && typ.Field == "validity":
		return rules.errValidity()
	case errors.As(err, &typ):
		return switchboard.Errorf(switchboard.EINVALID, "%q must be %s.", typ.Field, jsonKind(typ.Type))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return apiError(switchboard.EINVALID, what+" is not complete JSON.")
	}
	// encoding/json has no type for an unknown field; its message is
	// `json: unknown field "name"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return switchboard.Errorf(switchboard.EINVALID, "Unknown field %s.", name)
	}
	return apiError(switchboard.EINVALID, what+" is not valid JSON.")
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Bool:
		return "true or false"
	}
	return "an object"
}

// request checks what Validate does not and builds the SubmitRequest.
func (in *submitBody) request(idempotencyKey string, rules decodeRules) (switchboard.SubmitRequest, error) {
	r := switchboard.SubmitRequest{
		To:          in.To,
		From:        in.From,
		Body:        in.Body,
		CallbackURL: in.CallbackURL,
		Reference:   in.Reference,
	}
	if err := r.Validate(); err != nil {
		return r, err
	}
	if in.Validity != nil {
		v := *in.Validity
		if v < 1 || v > rules.maxValidity {
			return r, rules.errValidity()
		}
		r.Validity = time.Duration(v) * time.Second
	}
	if strings.IndexByte(r.Reference, 0) >= 0 {
		return r, apiError(switchboard.EINVALID, `"reference" must not contain NUL characters.`)
	}
	if err := checkCallbackURL(r.CallbackURL, rules.allowPrivate); err != nil {
		return r, err
	}
	if idempotencyKey != "" {
		r.IdempotencyKey = idempotencyKey
		r.RequestHash = requestHash(&r)
	}
	return r, nil
}

// checkCallbackURL accepts "" (the key's default) or a URL of at most
// MaxURLLength bytes that the webhook client will call (callback.CheckURL),
// so a client hears at once rather than finding a give-up recorded later.
func checkCallbackURL(s string, allowPrivate bool) error {
	if s == "" {
		return nil
	}
	if len(s) > switchboard.MaxURLLength {
		return switchboard.Errorf(switchboard.EINVALID, `"callback_url" must be at most %d bytes.`, switchboard.MaxURLLength)
	}
	if err := callback.CheckURL(s, allowPrivate); err != nil {
		return switchboard.Errorf(switchboard.EINVALID, `"callback_url": %s.`, switchboard.ErrorMessage(err))
	}
	return nil
}

// parseIdempotencyKey accepts nothing (no key) or 1..255 bytes of printable
// ASCII; where names the key's source for the error.
func parseIdempotencyKey(s, where string) (string, error) {
	if len(s) > MaxIdempotencyKey {
		return "", switchboard.Errorf(switchboard.EINVALID, "%s must be at most %d characters.", where, MaxIdempotencyKey)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return "", switchboard.Errorf(switchboard.EINVALID, "%s must be printable ASCII.", where)
		}
	}
	return s, nil
}

// requestHashVersion starts every hashed request, so the canonical form can
// change without a new form colliding with an old record (records live for
// switchboard.IdempotencyWindow, across upgrades).
const requestHashVersion = "switchboard.submit.v1"

// requestHash is SHA-256 of the request's canonical fields, each prefixed
// by its length, and validity in seconds. It hashes fields rather than raw
// bytes, so a retry that re-serialises the JSON (other spacing, order or
// escapes) is still the same request.
func requestHash(r *switchboard.SubmitRequest) [32]byte {
	h := sha256.New()
	io.WriteString(h, requestHashVersion)
	var n [binary.MaxVarintLen64]byte
	for _, f := range [...]string{r.To, r.From, r.Body, r.CallbackURL, r.Reference} {
		h.Write(binary.AppendUvarint(n[:0], uint64(len(f))))
		io.WriteString(h, f)
	}
	h.Write(binary.AppendUvarint(n[:0], uint64(r.Validity/time.Second)))
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// isJSONContentType reports whether a Content-Type is application/json,
// with parameters allowed as long as a charset, if any, is UTF-8 (JSON has
// no other).
func isJSONContentType(ct []byte) bool {
	mediaType, params, _ := strings.Cut(string(ct), ";")
	if !strings.EqualFold(strings.TrimSpace(mediaType), contentTypeJSON) {
		return false
	}
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, value, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "charset") &&
			!strings.EqualFold(strings.Trim(strings.TrimSpace(value), `"`), "utf-8") {
			return false
		}
	}
	return true
}

// errMediaType is the 415 for a POST that is not JSON.
func errMediaType(ct []byte) error {
	if len(ct) == 0 {
		return apiError(switchboard.EMEDIATYPE, "Content-Type must be application/json.")
	}
	return switchboard.Errorf(switchboard.EMEDIATYPE, "Content-Type must be application/json, not %.64q.", ct)
}
