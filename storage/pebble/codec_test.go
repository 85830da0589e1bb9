package pebble

import (
	"bytes"
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

func TestMessageRoundTrip(t *testing.T) {
	empty := &sb.Message{CarrierIDs: []string{}, PartStatus: []sb.Status{}, Events: []sb.Event{}}
	odd := sample()
	odd.Status, odd.PartStatus[0] = "some-future-status", ""
	odd.Segments, odd.Attempts = -1, 1<<40
	odd.AcceptedAt = time.Unix(0, 0).UTC()
	odd.ExpiresAt = time.Time{}
	for name, m := range map[string]*sb.Message{"full": sample(), "zero": {}, "empty slices": empty, "odd": odd} {
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
	v := appendMessage(nil, sample())
	for n := range len(v) {
		if _, err := decodeMessage(v[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(v))
		}
	}
	if _, err := decodeMessage(append(v, 0)); err == nil {
		t.Fatal("trailing byte: no error")
	}
	bad := bytes.Clone(v)
	bad[0] = 9
	if _, err := decodeMessage(bad); err == nil {
		t.Fatal("unknown version: no error")
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

func TestKeys(t *testing.T) {
	k := pendingKey(nil, "demo", "msg_1")
	if key, ok := pendingKeyOf(k); !ok || key != "demo" {
		t.Fatalf("pendingKeyOf(%q) = %q, %v", k, key, ok)
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
// valueVersion), never a side effect. This pins one message's bytes.
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
}
