package callback

import (
	"bytes"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "whsec_0123456789abcdef"

var testBody = []byte(`{"event_id":"evt_01J","attempt":1,"type":"message.status","message_id":"msg_1","status":"delivered"}`)

func TestSignFormat(t *testing.T) {
	at := time.Unix(1700000000, 999_000_000) // the fraction is dropped
	got := Sign(testSecret, at, testBody)
	if !regexp.MustCompile(`^t=1700000000,v1=[0-9a-f]{64}$`).MatchString(got) {
		t.Fatalf("Sign = %q, want t=1700000000,v1=<64 lower hex>", got)
	}
	if Sign(testSecret, at, testBody) != got {
		t.Fatal("Sign is not deterministic")
	}
	if Sign(testSecret, at.Add(time.Second), testBody) == got {
		t.Fatal("the signature does not cover the timestamp")
	}
}

func TestVerify(t *testing.T) {
	at := time.Unix(1700000000, 0)
	good := Sign(testSecret, at, testBody)
	sig := strings.TrimPrefix(good, "t=1700000000,")
	other := Sign("another secret", at, testBody)
	otherSig := strings.TrimPrefix(other, "t=1700000000,")
	tampered := bytes.Replace(testBody, []byte("delivered"), []byte("failed"), 1)
	tests := []struct {
		name   string
		header string
		secret string
		body   []byte
		now    time.Time
		want   error
	}{
		{"round trip", good, testSecret, testBody, at, nil},
		{"4m59s late", good, testSecret, testBody, at.Add(299 * time.Second), nil},
		{"4m59s early (receiver's clock behind)", good, testSecret, testBody, at.Add(-299 * time.Second), nil},
		{"spaces and order", " " + sig + " ,  t = 1700000000 ", testSecret, testBody, at, nil},
		{"several v1, the good one last", "t=1700000000," + otherSig + ",v1=zz," + sig, testSecret, testBody, at, nil},
		{"unknown keys", "t=1700000000,v0=abc,scheme=x," + sig + ",v2=" + strings.Repeat("0", 64), testSecret, testBody, at, nil},
		{"trailing comma", good + ",", testSecret, testBody, at, nil},

		{"tampered body", good, testSecret, tampered, at, ErrSignatureMismatch},
		{"empty body", good, testSecret, nil, at, ErrSignatureMismatch},
		{"wrong secret", good, "wrong secret", testBody, at, ErrSignatureMismatch},
		{"signed by another secret", other, testSecret, testBody, at, ErrSignatureMismatch},
		{"timestamp changed", strings.Replace(good, "1700000000", "1700000001", 1), testSecret, testBody, at, ErrSignatureMismatch},
		{"upper-case hex", "t=1700000000,v1=" + strings.ToUpper(strings.TrimPrefix(sig, "v1=")), testSecret, testBody, at, nil},
		{"truncated v1", good[:len(good)-2], testSecret, testBody, at, ErrSignatureMismatch},
		{"only a malformed v1", "t=1700000000,v1=xyz", testSecret, testBody, at, ErrSignatureMismatch},
		{"stale: 5m01s old", good, testSecret, testBody, at.Add(301 * time.Second), ErrSignatureStale},
		{"stale: a day old", good, testSecret, testBody, at.Add(24 * time.Hour), ErrSignatureStale},
		{"from the future", good, testSecret, testBody, at.Add(-301 * time.Second), ErrSignatureStale},

		{"empty header", "", testSecret, testBody, at, ErrSignatureMissing},
		{"blank header", "   ", testSecret, testBody, at, ErrSignatureMissing},
		{"no v1", "t=1700000000", testSecret, testBody, at, ErrSignatureMissing},
		{"only other schemes", "t=1700000000,v0=abc", testSecret, testBody, at, ErrSignatureMissing},
		{"no t", sig, testSecret, testBody, at, ErrSignatureMalformed},
		{"two t", "t=1700000000,t=1700000000," + sig, testSecret, testBody, at, ErrSignatureMalformed},
		{"t not a number", "t=17e8," + sig, testSecret, testBody, at, ErrSignatureMalformed},
		{"negative t", "t=-1," + sig, testSecret, testBody, at, ErrSignatureMalformed},
		{"empty t", "t=," + sig, testSecret, testBody, at, ErrSignatureMalformed},
		{"huge t", "t=99999999999999999999," + sig, testSecret, testBody, at, ErrSignatureMalformed},
		{"item without =", "t=1700000000,garbage," + sig, testSecret, testBody, at, ErrSignatureMalformed},
		{"= without key", "t=1700000000,=x," + sig, testSecret, testBody, at, ErrSignatureMalformed},
		{"semicolons", "t=1700000000;" + sig, testSecret, testBody, at, ErrSignatureMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Verify(tt.header, tt.secret, tt.body, 5*time.Minute, tt.now); err != tt.want {
				t.Fatalf("Verify(%q) = %v, want %v", tt.header, err, tt.want)
			}
		})
	}
}

func TestVerifyTolerance(t *testing.T) {
	at := time.Unix(1700000000, 0)
	h := Sign(testSecret, at, testBody)
	if err := Verify(h, testSecret, testBody, 10*time.Second, at.Add(11*time.Second)); err != ErrSignatureStale {
		t.Fatalf("10s tolerance, 11s late: %v, want stale", err)
	}
	if err := Verify(h, testSecret, testBody, time.Hour, at.Add(59*time.Minute)); err != nil {
		t.Fatalf("1h tolerance, 59m late: %v", err)
	}
	// Zero means the default, not "no check".
	if err := Verify(h, testSecret, testBody, 0, at.Add(DefaultTolerance+time.Second)); err != ErrSignatureStale {
		t.Fatalf("zero tolerance, just past the default: %v, want stale", err)
	}
	if err := Verify(h, testSecret, testBody, 0, at.Add(DefaultTolerance-time.Second)); err != nil {
		t.Fatalf("zero tolerance, within the default: %v", err)
	}
}

// splitSig returns the timestamp and hex MAC of a Sign result.
func splitSig(t *testing.T, header string) (ts, mac string) {
	t.Helper()
	m := regexp.MustCompile(`^t=(\d+),v1=([0-9a-f]{64})$`).FindStringSubmatch(header)
	if m == nil {
		t.Fatalf("unexpected signature %q", header)
	}
	return m[1], m[2]
}

// TestSignMatchesPython checks the signature against Python's hmac module:
// an implementation that shares no code with Go's.
func TestSignMatchesPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	// A secret and body with bytes that would trip up quoting or encoding.
	secret := "s3cr3t 'quoted' \"double\" ünïcode"
	body := []byte("{\"to\":\"+15551234567\",\"text\":\"caf\u00e9 \\n \u20ac\"}\n\x00\xff")
	ts, want := splitSig(t, Sign(secret, time.Unix(1712345678, 0), body))
	cmd := exec.Command(python, "-c", `
import hashlib, hmac, os, sys
body = sys.stdin.buffer.read()
msg = os.environ["TS"].encode() + b"." + body
print(hmac.new(os.environ["SECRET"].encode(), msg, hashlib.sha256).hexdigest())
`)
	cmd.Env = []string{"SECRET=" + secret, "TS=" + ts, "PYTHONIOENCODING=utf-8", "LC_ALL=C.UTF-8"}
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("python3 computed %s, Go signed %s", got, want)
	}
}

// TestSignMatchesOpenSSL checks the signature against openssl's HMAC.
func TestSignMatchesOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	secret := "whsec_" + strings.Repeat("k", 40)
	at := time.Unix(1712345678, 0)
	ts, want := splitSig(t, Sign(secret, at, testBody))
	cmd := exec.Command(openssl, "dgst", "-sha256", "-hmac", secret)
	cmd.Stdin = strings.NewReader(ts + "." + string(testBody))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	// "HMAC-SHA2-256(stdin)= <hex>" or "(stdin)= <hex>", by version.
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		t.Fatalf("openssl printed nothing")
	}
	if got := fields[len(fields)-1]; got != want {
		t.Fatalf("openssl computed %s, Go signed %s (output %q)", got, want, out)
	}
	if err := Verify("t="+strconv.FormatInt(at.Unix(), 10)+",v1="+fields[len(fields)-1], secret, testBody, 0, at); err != nil {
		t.Fatalf("Verify refuses openssl's signature: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	at := time.Unix(1700000000, 0)
	f.Add(Sign(testSecret, at, testBody), []byte("x"))
	f.Add("t=1700000000,v1=,v1=zz, ,=,t", []byte{})
	f.Add("t=1,t=2", []byte("{}"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		// Any input: no panic, and only Verify's own errors.
		switch err := Verify(header, testSecret, body, time.Minute, at); err {
		case nil, ErrSignatureMissing, ErrSignatureMalformed, ErrSignatureMismatch, ErrSignatureStale:
		default:
			t.Fatalf("Verify(%q) = %v", header, err)
		}
		// What Sign makes, Verify accepts.
		if err := Verify(Sign(header, at, body), header, body, time.Minute, at); err != nil {
			t.Fatalf("round trip with secret %q: %v", header, err)
		}
	})
}

// During a rotation the header carries the new signature, then the old:
// a receiver holding either secret accepts it, one holding neither does
// not, and the signature of each is the one Sign gives for it alone.
func TestSignWithOldSecret(t *testing.T) {
	at := time.Unix(1700000000, 0)
	got := Sign("new-secret", at, testBody, "old-secret")
	newOnly := strings.TrimPrefix(Sign("new-secret", at, testBody), "t=1700000000,")
	oldOnly := strings.TrimPrefix(Sign("old-secret", at, testBody), "t=1700000000,")
	if want := "t=1700000000," + newOnly + "," + oldOnly; got != want {
		t.Fatalf("Sign with an old secret = %q, want %q", got, want)
	}
	for _, secret := range []string{"new-secret", "old-secret"} {
		if err := Verify(got, secret, testBody, time.Minute, at); err != nil {
			t.Errorf("Verify with %s: %v", secret, err)
		}
	}
	if err := Verify(got, "third-secret", testBody, time.Minute, at); err != ErrSignatureMismatch {
		t.Errorf("Verify with neither secret: %v", err)
	}
}

// A client's kept HMAC states sign exactly as Sign does, used again and
// again, across secrets, a rotation's second secret and goroutines; the
// secrets kept stay bounded.
func TestKeptMACsSignAsSign(t *testing.T) {
	m := newMACs()
	at := time.Unix(1718029831, 0)
	bodies := [][]byte{[]byte(`{"event_id":"evt_1"}`), nil, bytes.Repeat([]byte("x"), 200)}
	secrets := []string{"whsec_a", "whsec_b", ""}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 50 {
				for i, s := range secrets {
					body := bodies[(i+round+g)%len(bodies)]
					var more []string
					if round%2 == 1 {
						more = []string{secrets[(i+1)%len(secrets)]}
					}
					want := Sign(s, at, body, more...)
					if got := m.sign(s, at, body, more); got != want {
						t.Errorf("goroutine %d round %d secret %q: %s, Sign: %s", g, round, s, got, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for i := range maxSecrets + 10 {
		s := "whsec_" + strconv.Itoa(i)
		if got, want := m.sign(s, at, bodies[0], nil), Sign(s, at, bodies[0]); got != want {
			t.Fatalf("secret %q: %s, Sign: %s", s, got, want)
		}
		if len(m.pools.m) > maxSecrets {
			t.Fatalf("after %d secrets %d kept; the bound is %d", i+1, len(m.pools.m), maxSecrets)
		}
	}
}
