package http

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-sms/switchboard"
)

// allCodes is every error code the API answers with; docs/openapi.yaml
// lists the same in ErrorCode.
var allCodes = []string{
	switchboard.EINVALID, switchboard.EINVALIDTO, switchboard.EINVALIDFROM, switchboard.EINVALIDBODY, switchboard.ETOOLONG,
	switchboard.ENOROUTE, switchboard.EUNAUTHORIZED, switchboard.ENOTFOUND, EMETHOD, ETIMEOUT, switchboard.ECONFLICT,
	switchboard.EIDEMPOTENCY, switchboard.ETOOLARGE, switchboard.EMEDIATYPE, switchboard.ERATELIMITED, switchboard.EQUEUEFULL,
	EHEADERSTOOLARGE, switchboard.EINTERNAL, switchboard.EUNAVAILABLE,
}

type doc = map[string]any

func loadOpenAPI(t *testing.T) doc {
	t.Helper()
	b, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d doc
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// get walks a path of keys through the document.
func get(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for _, k := range keys {
		m, ok := v.(doc)
		if !ok {
			t.Fatalf("no %q in %v", k, keys)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("no %q in %v", k, keys)
		}
	}
	return v
}

// TestOpenAPIRoutes holds docs/openapi.yaml to the router: every route is
// described with its method, and nothing else is.
func TestOpenAPIRoutes(t *testing.T) {
	d := loadOpenAPI(t)
	if v := get(t, d, "openapi"); v != "3.0.3" {
		t.Errorf("openapi %v", v)
	}
	if url := get(t, d, "servers").([]any)[0].(doc)["url"]; url != "http://127.0.0.1:8080" {
		t.Errorf("server %v", url)
	}
	if s := get(t, d, "components", "securitySchemes", "bearerAuth", "scheme"); s != "bearer" {
		t.Errorf("security scheme %v", s)
	}
	paths := get(t, d, "paths").(doc)
	srv := &Server{}
	routes := map[string]bool{}
	for _, r := range srv.routes() {
		key := strings.ToLower(r.method) + " " + r.pattern
		routes[key] = true
		pathItem, _ := paths[r.pattern].(doc)
		op, ok := pathItem[strings.ToLower(r.method)].(doc)
		if !ok {
			t.Errorf("%s is not in docs/openapi.yaml", key)
			continue
		}
		responses := op["responses"].(doc)
		if _, ok := responses["405"]; !ok {
			t.Errorf("%s: no 405", key)
		}
		security, hasSecurity := op["security"].([]any)
		switch {
		case r.public && !(hasSecurity && len(security) == 0):
			t.Errorf("%s needs no key but the spec does not say security: []", key)
		case !r.public && (responses["401"] == nil || responses["429"] == nil):
			t.Errorf("%s: no 401 or no 429 (failed authentications are throttled)", key)
		}
		if r.method == "POST" {
			for _, status := range []string{"400", "413", "415"} {
				if responses[status] == nil {
					t.Errorf("%s: no %s", key, status)
				}
			}
		}
	}
	for path, ops := range paths {
		for method := range ops.(doc) {
			if !routes[method+" "+path] && method != "parameters" {
				t.Errorf("the spec has %s %s, the router does not", method, path)
			}
		}
	}
}

// TestOpenAPIExamples decodes every request example with the real decoder.
func TestOpenAPIExamples(t *testing.T) {
	d := loadOpenAPI(t)
	examples := func(path string) []any {
		content := get(t, d, "paths", path, "post", "requestBody", "content", "application/json").(doc)
		var out []any
		if ex, ok := content["example"]; ok {
			out = append(out, ex)
		}
		if exs, ok := content["examples"].(doc); ok {
			for _, ex := range exs {
				out = append(out, ex.(doc)["value"])
			}
		}
		if len(out) == 0 {
			t.Errorf("%s has no request example", path)
		}
		return out
	}
	for _, ex := range examples(pathMessages) {
		body, err := json.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		req, err := decodeSubmit(body, "", testRules)
		if err == nil {
			err = req.Validate()
		}
		if err != nil {
			t.Errorf("example %s: %v", body, err)
		}
	}
	for _, ex := range examples(pathBatch) {
		body, err := json.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		items, err := decodeBatch(body, DefaultMaxBatch)
		if err != nil {
			t.Errorf("example %s: %v", body, err)
		}
		for _, item := range items {
			req, err := decodeItem(item, testRules)
			if err == nil {
				err = req.Validate()
			}
			if err != nil {
				t.Errorf("example item %s: %v", item, err)
			}
		}
	}
}

// TestOpenAPICodes checks the documented error codes against the API's,
// and every example against the documented shapes of ids and codes.
func TestOpenAPICodes(t *testing.T) {
	d := loadOpenAPI(t)
	var documented []string
	for _, c := range get(t, d, "components", "schemas", "ErrorCode", "enum").([]any) {
		documented = append(documented, c.(string))
	}
	want := slices.Clone(allCodes)
	slices.Sort(want)
	slices.Sort(documented)
	if !slices.Equal(documented, want) {
		t.Errorf("ErrorCode lists %v, the API has %v", documented, want)
	}
	for _, code := range allCodes {
		if _, known := statusOf(code); !known {
			t.Errorf("%s has no status", code)
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case doc:
			if id, ok := v["id"].(string); ok && strings.HasPrefix(id, "msg_") && !validMessageID([]byte(id)) {
				t.Errorf("example id %q is not a message id", id)
			}
			if e, ok := v["error"].(doc); ok {
				if code, ok := e["code"].(string); ok && !slices.Contains(allCodes, code) && e["message"] != nil {
					t.Errorf("example error code %q is not a code", code)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(get(t, d, "paths"))
	walk(get(t, d, "components"))
}

// TestOpenAPIStatuses holds the documented statuses to the domain's.
func TestOpenAPIStatuses(t *testing.T) {
	d := loadOpenAPI(t)
	var documented []string
	for _, s := range get(t, d, "components", "schemas", "Status", "enum").([]any) {
		documented = append(documented, s.(string))
	}
	var want []string
	for _, s := range []switchboard.Status{switchboard.StatusAccepted, switchboard.StatusQueued, switchboard.StatusSubmitted,
		switchboard.StatusDelivered, switchboard.StatusUndeliverable, switchboard.StatusExpired, switchboard.StatusRejected,
		switchboard.StatusFailed, switchboard.StatusUnknown, switchboard.StatusCanceled, switchboard.StatusReceived} {
		want = append(want, string(s))
	}
	if !slices.Equal(documented, want) {
		t.Errorf("Status lists %v, the domain has %v", documented, want)
	}
}

// TestOpenAPIMessageFields writes a message with every field set and
// checks each object in it against its schema: every member documented,
// every required one present.
func TestOpenAPIMessageFields(t *testing.T) {
	d := loadOpenAPI(t)
	schemas := get(t, d, "components", "schemas").(doc)
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	m := &switchboard.Message{
		ID: "msg_01JH8Z3Q4V5W6X7Y8Z9A0B1C2D", Key: "k", To: "+447700900123", From: "Acme", Body: "hi",
		Reference: "r", CallbackURL: "https://example.com/", Encoding: "gsm7", Segments: 2,
		Status: switchboard.StatusUndeliverable, AcceptedAt: at, UpdatedAt: at, ExpiresAt: at,
		Carrier: "c", CarrierIDs: []string{"a", "b"},
		PartStatus: []switchboard.Status{switchboard.StatusDelivered, switchboard.StatusUndeliverable},
		Events: []switchboard.Event{{Status: switchboard.StatusUndeliverable, At: at, Carrier: "c", CarrierMessageID: "b",
			Part: 2, Error: &switchboard.EventError{Code: "001", Description: "UNDELIV"}}},
		WebhookFailures: []switchboard.WebhookFailure{{EventID: "evt_1", Type: "message.status", URL: "https://example.com/",
			Reason: "gone", Attempts: 1, At: at}},
	}
	var w jsonWriter
	w.message(m)
	var got doc
	if err := json.Unmarshal(w.b, &got); err != nil {
		t.Fatalf("%s: %v", w.b, err)
	}
	checkObject(t, schemas, "Message", got)
	var lw jsonWriter
	lw.messageFields(m, false)
	var listed doc
	if err := json.Unmarshal(lw.b, &listed); err != nil {
		t.Fatalf("%s: %v", lw.b, err)
	}
	checkObject(t, schemas, "ListedMessage", listed)
	checkObject(t, schemas, "MessageError", got["error"].(doc))
	checkObject(t, schemas, "Part", got["parts"].([]any)[1].(doc))
	checkObject(t, schemas, "Event", got["events"].([]any)[0].(doc))
	checkObject(t, schemas, "WebhookFailure", got["webhook_failures"].([]any)[0].(doc))
}

// checkObject checks one JSON object against the named schema's
// properties and required members.
func checkObject(t *testing.T, schemas doc, name string, obj doc) {
	t.Helper()
	props, req := doc{}, []any{}
	var collect func(schema doc)
	collect = func(schema doc) {
		if ref, ok := schema["$ref"].(string); ok {
			collect(schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(doc))
		}
		if all, ok := schema["allOf"].([]any); ok {
			for _, sub := range all {
				collect(sub.(doc))
			}
		}
		if p, ok := schema["properties"].(doc); ok {
			for k, v := range p {
				props[k] = v
			}
		}
		if r, ok := schema["required"].([]any); ok {
			req = append(req, r...)
		}
	}
	collect(schemas[name].(doc))
	for k := range obj {
		if _, ok := props[k]; !ok {
			t.Errorf("%s: the server writes %q, the spec does not have it", name, k)
		}
	}
	for _, k := range req {
		if _, ok := obj[k.(string)]; !ok {
			t.Errorf("%s: %q is required by the spec, the server did not write it", name, k)
		}
	}
}

// TestOpenAPIRules holds the spec's patterns and bounds to the server's
// own checks, on samples at and around each rule's edges.
func TestOpenAPIRules(t *testing.T) {
	d := loadOpenAPI(t)
	schemas := get(t, d, "components", "schemas").(doc)
	pattern := func(v any) *regexp.Regexp {
		t.Helper()
		return regexp.MustCompile(v.(doc)["pattern"].(string))
	}
	agree := func(name string, re *regexp.Regexp, server func(string) bool, samples ...string) {
		t.Helper()
		for _, s := range samples {
			if re.MatchString(s) != server(s) {
				t.Errorf("%s %q: the spec's pattern says %v, the server %v", name, s, re.MatchString(s), server(s))
			}
		}
	}
	agree("from", pattern(schemas["Sender"]), switchboard.ValidSender,
		"Acme", "A", "9", "ab cd", "Acme Corp 1", "Acme Corp 12", " Acme", "Acme ", "a  b", "Ac-me", "Açme", "",
		"+447700900123", "+4477009001", "+44770090", "+4477009", "+0447700900123", "+4477009001234567", "447700900123", "+12345678901234")
	agree("to", pattern(get(t, d, "components", "schemas", "SubmitRequest", "properties", "to")), switchboard.ValidMSISDN,
		"+447700900123", "+12345678", "+1234567", "+123456789012345", "+1234567890123456", "+0123456789", "447700900123", "+4477 009")
	agree("X-Request-Id", pattern(get(t, d, "components", "headers", "X-Request-Id", "schema")),
		func(s string) bool { return saneRequestID([]byte(s)) },
		"abc-123", "a", strings.Repeat("a", 64), "has space", "caf\u00e9", "tab\t", "!~")
	var cursorSchema doc
	for _, p := range get(t, d, "paths", "/v1/messages", "get", "parameters").([]any) {
		if p.(doc)["name"] == "cursor" {
			cursorSchema = p.(doc)["schema"].(doc)
		}
	}
	agree("cursor", pattern(cursorSchema), func(s string) bool { _, ok := decodeCursor(s); return ok },
		"AZRR8dybLw3T-R9KgLCwTQ", "AAAAAAAAAAAAAAAAAAAAAA", "______________________", "AZRR8dybLw3T-R9KgLCwT", "AZRR8dybLw3T-R9KgLCwTQA",
		"AZRR8dybLw3T+R9KgLCwTQ", "AZRR8dybLw3T/R9KgLCwTQ", "AZRR8dybLw3T-R9KgLCw==", "")
	// Every callback URL the pattern allows, the server takes (the
	// pattern is a documented subset).
	cb := pattern(schemas["CallbackURL"])
	for _, u := range []string{"", "http://a", "https://example.com/sms/events", "https://a.b_c.d-e.example:8443/p/a/t/h;x=1?q=1&r=/s",
		"http://x" + strings.Repeat("/y", 256)} {
		if !cb.MatchString(u) {
			t.Errorf("callback_url pattern refuses %q", u)
		} else if err := checkCallbackURL(u, true); err != nil {
			t.Errorf("callback_url %q: the pattern allows it, the server says %v", u, err)
		}
	}
	for _, u := range []string{"ftp://a", "http://", "http://user@a", "http://a b", "http://1.2.3.4", "http://a:99999", "//a", "http://a/%zz"} {
		if cb.MatchString(u) {
			t.Errorf("callback_url pattern allows %q", u)
		}
	}
	limit := func(v any, key string) int { t.Helper(); return v.(doc)[key].(int) }
	if got := limit(schemas["Validity"], "maximum"); got != int(DefaultMaxValidity/time.Second) {
		t.Errorf("validity maximum %d, the server's default %d", got, int(DefaultMaxValidity/time.Second))
	}
	// body: the default 10 parts of GSM-7.
	if got := limit(schemas["Body"], "maxLength"); got != 10*153 {
		t.Errorf("body maxLength %d, want 1530 (10 parts of 153 GSM-7 characters)", got)
	}
	if got := limit(schemas["Reference"], "maxLength"); got != switchboard.MaxReferenceLength {
		t.Errorf("reference maxLength %d, the server's %d", got, switchboard.MaxReferenceLength)
	}
	if got := limit(schemas["CallbackURL"], "maxLength"); got != switchboard.MaxURLLength {
		t.Errorf("callback_url maxLength %d, the server's %d", got, switchboard.MaxURLLength)
	}
}
