package switchboard

// KeyRing finds API keys by their bearer secret. It is built once from
// configuration and only read afterwards, so it needs no lock.
type KeyRing struct {
	byHash   map[[32]byte]*Key
	byID     map[string]*Key
	byNumber map[string]*Key
	all      []*Key
}

// NewKeyRing indexes keys by secret hash and by id.
func NewKeyRing(keys []*Key) *KeyRing {
	r := &KeyRing{byHash: make(map[[32]byte]*Key, len(keys)), byID: make(map[string]*Key, len(keys)),
		byNumber: make(map[string]*Key), all: keys}
	for _, k := range keys {
		r.byHash[k.SecretHash] = k
		r.byID[k.ID] = k
		for _, n := range k.Numbers {
			r.byNumber[NumberDigits(n)] = k
		}
	}
	return r
}

// All returns every key, in configuration order. The caller must not
// change the slice.
func (r *KeyRing) All() []*Key { return r.all }

// ByNumber returns the key that owns a phone number (an inbound message's
// destination), however the carrier wrote it: "+447700900123",
// "447700900123" and "00447700900123" are one number.
func (r *KeyRing) ByNumber(number string) (*Key, bool) {
	k, ok := r.byNumber[NumberDigits(number)]
	return k, ok
}

// NumberDigits reduces a phone number to its international digits: no
// "+", no "00" international prefix, no spaces or punctuation.
func NumberDigits(number string) string {
	b := make([]byte, 0, len(number))
	for i := 0; i < len(number); i++ {
		if c := number[i]; c >= '0' && c <= '9' {
			b = append(b, c)
		}
	}
	if len(b) > 2 && b[0] == '0' && b[1] == '0' {
		b = b[2:]
	}
	return string(b)
}

// Authenticate returns the key whose secret this is. The map is indexed
// by SHA-256 of the secret, so its timing reveals nothing about any secret;
// the final comparison is constant-time all the same.
func (r *KeyRing) Authenticate(secret string) (*Key, bool) {
	k, ok := r.byHash[HashSecret(secret)]
	if !ok || !k.Matches(secret) {
		return nil, false
	}
	return k, true
}

// Key returns a key by id.
func (r *KeyRing) Key(id string) (*Key, bool) {
	k, ok := r.byID[id]
	return k, ok
}

// Keys returns every key, in no particular order.
func (r *KeyRing) Keys() []*Key {
	out := make([]*Key, 0, len(r.byID))
	for _, k := range r.byID {
		out = append(out, k)
	}
	return out
}
