package pebble

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// sample returns a message with every field set, the way one looks after
// its receipts: the codec's worst realistic case.
func sample() *sb.Message {
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	return &sb.Message{
		ID: "msg_01JN4Q5Z8K3V7W2X9Y6T5R4S3P", Key: "demo", To: "+491701234567", From: "Switchboard",
		Body:      strings.Repeat("Your code is 123456. ", 8)[:160],
		Reference: "order-1234", CallbackURL: "https://example.com/hooks/sms",
		Encoding: "gsm7", Segments: 2, Status: sb.StatusUndeliverable,
		AcceptedAt: at, UpdatedAt: at.Add(3 * time.Second), ExpiresAt: at.Add(48 * time.Hour),
		Carrier: "sandbox", CarrierIDs: []string{"5f3a9c", "5f3a9d"},
		PartStatus: []sb.Status{sb.StatusDelivered, sb.StatusUndeliverable}, Attempts: 1,
		Events: []sb.Event{
			{Status: sb.StatusAccepted, At: at},
			{Status: sb.StatusSubmitted, At: at.Add(time.Second), Carrier: "sandbox", CarrierMessageID: "5f3a9c"},
			{Status: sb.StatusUndeliverable, At: at.Add(3 * time.Second), Error: &sb.EventError{Code: "001", Description: "UNDELIV"}},
		},
	}
}

// sampleInbound returns an inbound message, which takes version 2.
func sampleInbound() *sb.Message {
	at := time.Date(2025, 3, 1, 12, 0, 0, 987654321, time.UTC)
	return &sb.Message{
		ID: "msg_01JN4Q5Z8K3V7W2X9Y6T5R4S3Q", Key: "demo", To: "+4915112345678", From: "+491701234567",
		Body: "Hello back", Encoding: "ucs2", Segments: 2, Status: sb.StatusReceived,
		AcceptedAt: at, UpdatedAt: at, Carrier: "sandbox",
		Events:    []sb.Event{{Status: sb.StatusReceived, At: at, Carrier: "sandbox"}},
		Direction: sb.DirectionInbound, Partial: true,
		WebhookFailures: []sb.WebhookFailure{{EventID: "evt_01JN4Q5Z8K3V7W2X9Y6T5R4S3R", Type: sb.CallbackInbound,
			URL: "https://example.com/hooks/in", Reason: sb.WebhookMaxAge, Attempts: 17, At: at.Add(24 * time.Hour)}},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	empty := &sb.Message{CarrierIDs: []string{}, PartStatus: []sb.Status{}, Events: []sb.Event{}}
	odd := sample()
	odd.Status, odd.PartStatus[0] = "some-future-status", ""
	odd.Segments, odd.Attempts = -1, 1<<40
	odd.AcceptedAt = time.Unix(0, 0).UTC()
	odd.ExpiresAt = time.Time{}
	failed := sample()
	failed.WebhookFailures = []sb.WebhookFailure{{EventID: "evt_1", Reason: sb.WebhookGone, Attempts: 1},
		{EventID: "evt_2", Type: "some.future.type", Attempts: -3, At: time.Unix(1, 2).UTC()}}
	emptyFailures := sample()
	emptyFailures.WebhookFailures = []sb.WebhookFailure{}
	partialOnly := &sb.Message{Partial: true}
	for name, m := range map[string]*sb.Message{"full": sample(), "zero": {}, "empty slices": empty, "odd": odd,
		"inbound": sampleInbound(), "failures": failed, "empty failures": emptyFailures, "partial only": partialOnly} {
		got, err := decodeMessage(appendMessage(nil, m))
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: round trip\n got: %+v\nwant: %+v", name, got, m)
		}
	}
}

// Decoded times are UTC but the same instant, including other locations.
func TestTimeLocation(t *testing.T) {
	m := &sb.Message{AcceptedAt: time.Date(2025, 3, 2, 0, 30, 0, 5, time.FixedZone("X", 3600))}
	got, err := decodeMessage(appendMessage(nil, m))
	if err != nil || !got.AcceptedAt.Equal(m.AcceptedAt) || got.AcceptedAt.Location() != time.UTC {
		t.Fatalf("got %v, %v; want %v in UTC", got.AcceptedAt, err, m.AcceptedAt)
	}
}

// The decoded message must not alias the buffer it came from: Pebble reuses
// it once the value's closer is closed.
func TestDecodeCopies(t *testing.T) {
	v := appendMessage(nil, sample())
	got, err := decodeMessage(v)
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		v[i] = 0
	}
	if !reflect.DeepEqual(got, sample()) {
		t.Fatal("decoded message changed with its buffer")
	}
}

func TestDecodeCorrupt(t *testing.T) {
	for _, m := range []*sb.Message{sample(), sampleInbound()} {
		v := appendMessage(nil, m)
		for n := range len(v) {
			if _, err := decodeMessage(v[:n]); err == nil {
				t.Fatalf("version %d truncated to %d of %d bytes: no error", v[0], n, len(v))
			}
		}
		if _, err := decodeMessage(append(v, 0)); err == nil {
			t.Fatalf("version %d, trailing byte: no error", v[0])
		}
		for _, version := range []byte{0, 3, 9} {
			bad := bytes.Clone(v)
			bad[0] = version
			if _, err := decodeMessage(bad); err == nil {
				t.Fatalf("unknown version %d: no error", version)
			}
		}
	}
	// A version 1 value followed by what version 2 adds is not version 1.
	if _, err := decodeMessage(append(appendMessage(nil, sample()), 0, 0, 0)); err == nil {
		t.Fatal("version 1 with version 2 fields: no error")
	}
}

// A message takes version 2 exactly when it has a field version 1 lacks.
func TestMessageVersion(t *testing.T) {
	for _, tc := range []struct {
		set  func(m *sb.Message)
		want byte
	}{
		{func(m *sb.Message) {}, 1},
		{func(m *sb.Message) { m.Status = sb.StatusReceived }, 1},
		{func(m *sb.Message) { m.Direction = sb.DirectionInbound }, 2},
		{func(m *sb.Message) { m.Partial = true }, 2},
		{func(m *sb.Message) { m.WebhookFailures = []sb.WebhookFailure{} }, 2},
	} {
		m := sample()
		tc.set(m)
		if v := appendMessage(nil, m); v[0] != tc.want {
			t.Errorf("%+v: version %d, want %d", m, v[0], tc.want)
		}
	}
}

func TestIdempotencyRoundTrip(t *testing.T) {
	r := sb.IdempotencyRecord{MessageID: "msg_1", RequestHash: [32]byte{1, 2, 3, 31: 9}, CreatedAt: time.Unix(1700000000, 7).UTC()}
	got, err := decodeIdempotency(appendIdempotency(nil, &r))
	if err != nil || got != r {
		t.Fatalf("got %+v, %v; want %+v", got, err, r)
	}
	if _, err := decodeIdempotency(appendIdempotency(nil, &r)[:10]); err == nil {
		t.Fatal("truncated record: no error")
	}
}

func sampleCallback() sb.Callback {
	return sb.Callback{ID: "evt_01JN4Q5Z8K3V7W2X9Y6T5R4S3R", Type: sb.CallbackStatus, Key: "demo",
		URL: "https://example.com/hooks/sms", Endpoint: "https://example.com:443", MessageID: "msg_01JN4Q5Z8K3V7W2X9Y6T5R4S3P",
		CreatedAt: time.Date(2025, 3, 1, 12, 0, 3, 5, time.UTC), Data: []byte(`{"type":"message.status","status":"delivered"}`)}
}

func TestCallbackRoundTrip(t *testing.T) {
	other := sampleCallback()
	other.Type, other.Data, other.CreatedAt = "some.future.type", []byte{}, time.Time{}
	inbound := sampleCallback()
	inbound.Type, inbound.Data = sb.CallbackInbound, nil
	for name, cb := range map[string]sb.Callback{"status": sampleCallback(), "other type": other, "inbound": inbound} {
		v := appendCallback(nil, &cb)
		got, err := decodeCallback(cb.Endpoint, cb.ID, v)
		if err != nil || !reflect.DeepEqual(got, cb) {
			t.Fatalf("%s: got %+v, %v; want %+v", name, got, err, cb)
		}
		for n := range len(v) {
			if _, err := decodeCallback(cb.Endpoint, cb.ID, v[:n]); err == nil {
				t.Fatalf("%s truncated to %d of %d bytes: no error", name, n, len(v))
			}
		}
		if _, err := decodeCallback(cb.Endpoint, cb.ID, append(v, 0)); err == nil {
			t.Fatalf("%s, trailing byte: no error", name)
		}
	}
	cb := sampleCallback()
	v := appendCallback(nil, &cb)
	got, _ := decodeCallback(cb.Endpoint, cb.ID, v)
	v[len(v)-1] = 'X'
	if !bytes.Equal(got.Data, cb.Data) {
		t.Fatal("decoded Data changed with its buffer")
	}
}

func sampleInboundPart() sb.InboundPart {
	return sb.InboundPart{Carrier: "sandbox", From: "+491701234567", To: "+4915112345678", DataCoding: 8,
		Payload: []byte{0, 'H', 0, 'i', 0xff}, Concat: &sb.Concat{Ref: 0xbeef, Total: 3, Seq: 2},
		ReceivedAt: time.Date(2025, 3, 1, 12, 0, 0, 1, time.UTC)}
}

func TestInboundPartRoundTrip(t *testing.T) {
	single := sampleInboundPart()
	single.Concat, single.Payload = nil, []byte{}
	zero := sb.InboundPart{}
	for name, p := range map[string]sb.InboundPart{"part": sampleInboundPart(), "no concat": single, "zero": zero} {
		v := appendInboundPart(nil, &p)
		got, err := decodeInboundPart(v)
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("%s: got %+v, %v; want %+v", name, got, err, p)
		}
		for n := range len(v) {
			if _, err := decodeInboundPart(v[:n]); err == nil {
				t.Fatalf("%s truncated to %d of %d bytes: no error", name, n, len(v))
			}
		}
	}
}

func TestSettingRoundTrip(t *testing.T) {
	for _, s := range []string{"", "secret", "\x00\xff"} {
		if got, err := decodeSetting(appendSetting(nil, s)); err != nil || got != s {
			t.Fatalf("got %q, %v; want %q", got, err, s)
		}
	}
	if _, err := decodeSetting(nil); err == nil {
		t.Fatal("empty value: no error")
	}
}

func TestCarrierRefRoundTrip(t *testing.T) {
	id, part, err := decodeCarrierRef(appendCarrierRef(nil, "msg_1", 3))
	if err != nil || id != "msg_1" || part != 3 {
		t.Fatalf("got %s, %d, %v", id, part, err)
	}
}

// FuzzDecodeMessage: no input makes the decoder panic or allocate without
// bound, and whatever decodes re-encodes to the same bytes.
func FuzzDecodeMessage(f *testing.F) {
	f.Add(appendMessage(nil, sample()))
	f.Add(appendMessage(nil, &sb.Message{}))
	f.Add(appendMessage(nil, sampleInbound()))
	f.Add(appendMessage(nil, &sb.Message{Partial: true, WebhookFailures: []sb.WebhookFailure{}}))
	f.Fuzz(func(t *testing.T, v []byte) {
		m, err := decodeMessage(v)
		if err != nil {
			return
		}
		if again := appendMessage(nil, m); !bytes.Equal(again, v) {
			// Varints have more than one encoding; a canonical re-encoding
			// must still decode to the same message.
			m2, err := decodeMessage(again)
			if err != nil || !reflect.DeepEqual(m, m2) {
				t.Fatalf("re-encoding differs: %v", err)
			}
		}
	})
}

// FuzzDecodeCallback and FuzzDecodeInboundPart: as FuzzDecodeMessage, for
// the outbox and inbox values.
func FuzzDecodeCallback(f *testing.F) {
	cb := sampleCallback()
	f.Add(appendCallback(nil, &cb))
	cb.Type, cb.Data = "other", nil
	f.Add(appendCallback(nil, &cb))
	f.Fuzz(func(t *testing.T, v []byte) {
		cb, err := decodeCallback("e", "i", v)
		if err != nil {
			return
		}
		if again, err := decodeCallback("e", "i", appendCallback(nil, &cb)); err != nil || !reflect.DeepEqual(again, cb) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

func FuzzDecodeInboundPart(f *testing.F) {
	p := sampleInboundPart()
	f.Add(appendInboundPart(nil, &p))
	p.Concat = nil
	f.Add(appendInboundPart(nil, &p))
	f.Fuzz(func(t *testing.T, v []byte) {
		p, err := decodeInboundPart(v)
		if err != nil {
			return
		}
		if again, err := decodeInboundPart(appendInboundPart(nil, &p)); err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

func TestKeys(t *testing.T) {
	k := pendingKey(nil, "demo", "msg_1")
	if key, ok := firstComponent(k); !ok || key != "demo" {
		t.Fatalf("firstComponent(%q) = %q, %v", k, key, ok)
	}
	// A key that is a prefix of another key does not share its range.
	p := pendingPrefix(nil, "ab")
	if bytes.HasPrefix(pendingKey(nil, "abc", "msg_1"), p) {
		t.Fatal("key abc falls in the range of key ab")
	}
	if got := successor([]byte("p/\x02ab")); string(got) != "p/\x02ac" {
		t.Fatalf("successor = %q", got)
	}
	if got := successor([]byte{'a', 0xff}); !bytes.Equal(got, []byte{'b'}) {
		t.Fatalf("successor = %q", got)
	}
	// An endpoint that is a prefix of another does not share its range.
	if bytes.HasPrefix(outboxKey(nil, "http://h:8080", "evt_1"), outboxPrefix(nil, "http://h:80")) {
		t.Fatal("endpoint http://h:8080 falls in the range of http://h:80")
	}
	if e, ok := firstComponent(outboxKey(nil, "http://h:80", "evt_1")); !ok || e != "http://h:80" {
		t.Fatalf("firstComponent = %q, %v", e, ok)
	}
	// Parts of one message sort together, in sequence order.
	part := sampleInboundPart()
	k2 := partKey(nil, &part)
	part.Concat = &sb.Concat{Ref: part.Concat.Ref, Total: 3, Seq: 3}
	k3 := partKey(nil, &part)
	part.Concat = &sb.Concat{Ref: part.Concat.Ref + 1, Total: 3, Seq: 1}
	if k4 := partKey(nil, &part); bytes.Compare(k2, k3) >= 0 || bytes.Compare(k3, k4) >= 0 {
		t.Fatalf("part keys out of order: %x %x %x", k2, k3, k4)
	}
}

// BenchmarkCodec compares this encoding with encoding/json on a message
// with its receipts, the record Record rewrites.
func BenchmarkCodec(b *testing.B) {
	m := sample()
	bin := appendMessage(nil, m)
	js, _ := json.Marshal(m)
	b.Run("binary/encode", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendMessage(buf[:0], m)
		}
		b.ReportMetric(float64(len(bin)), "bytes")
	})
	b.Run("binary/decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeMessage(bin); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json/encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(js)), "bytes")
	})
	b.Run("json/decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out sb.Message
			if err := json.Unmarshal(js, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The encoding is on disk: a change to it must be deliberate (a new
// version), never a side effect. This pins one message's bytes in version
// 1, which a message without inbound fields or webhook failures still
// takes, and checks that those bytes, as written before version 2 existed,
// decode to the same message with the new fields zero.
func TestFormatGolden(t *testing.T) {
	at := time.Unix(1700000000, 5).UTC()
	m := &sb.Message{
		ID: "msg_1", Key: "k", Segments: 1, Status: sb.StatusQueued, AcceptedAt: at,
		CarrierIDs: []string{"c"},
		PartStatus: []sb.Status{"", sb.StatusAccepted, sb.StatusQueued, sb.StatusSubmitted, sb.StatusDelivered,
			sb.StatusUndeliverable, sb.StatusExpired, sb.StatusRejected, sb.StatusFailed, "new"},
		Events: []sb.Event{{Status: sb.StatusFailed, At: at, Error: &sb.EventError{Code: "e"}}},
	}
	const golden = "01" + // version
		"056d73675f31" + "016b" + "000000000000" + // ID, Key, six empty strings
		"02" + "02" + // Segments 1 (zigzag), queued
		"0b80c49fd50c" + "00" + "00" + // AcceptedAt, zero UpdatedAt and ExpiresAt
		"00" + "020163" + // Carrier, CarrierIDs
		"0b" + "000102030405060708" + "ff036e6577" + // PartStatus
		"00" + // Attempts
		"02" + "08" + "0b80c49fd50c" + "0000" + "01" + "0165" + "00" // one event, with an error
	if got := fmt.Sprintf("%x", appendMessage(nil, m)); got != golden {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, golden)
	}
	v, _ := hex.DecodeString(golden)
	if got, err := decodeMessage(v); err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("version 1 decodes to %+v, %v; want %+v", got, err, m)
	}
}

// TestFormatGoldenV2 pins version 2: an inbound message with a webhook
// failure, and the status byte of received.
func TestFormatGoldenV2(t *testing.T) {
	at := time.Unix(1700000000, 5).UTC()
	m := &sb.Message{
		ID: "msg_2", Key: "k", Status: sb.StatusReceived, AcceptedAt: at,
		Direction: sb.DirectionInbound, Partial: true,
		WebhookFailures: []sb.WebhookFailure{{EventID: "e", Type: sb.CallbackInbound, URL: "u", Reason: sb.WebhookGone, Attempts: 2, At: at}},
	}
	const golden = "02" + // version
		"056d73675f32" + "016b" + "000000000000" + // ID, Key, six empty strings
		"00" + "09" + // Segments 0, received
		"0b80c49fd50c" + "00" + "00" + // AcceptedAt, zero UpdatedAt and ExpiresAt
		"00" + "00" + "00" + "00" + "00" + // Carrier, nil CarrierIDs and PartStatus, Attempts, nil Events
		"07696e626f756e64" + "01" + // Direction "inbound", Partial
		"02" + "0165" + "0f6d6573736167652e696e626f756e64" + "0175" + "04676f6e65" + "04" + "0b80c49fd50c" // one failure
	if got := fmt.Sprintf("%x", appendMessage(nil, m)); got != golden {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, golden)
	}
}
