package harness

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

// Request bodies. Every message picks a key and a destination uniformly at
// random and a body from the mix by weight.

// bodyTexts are the bodies --body-mix can name. Their part counts come
// from carriers/gsm, the same code the gateway counts with.
var bodyTexts = map[string]string{
	// GSM-7, 60 characters: one part.
	"short": "Your Switchboard code is 482913. It expires in 10 minutes. ",
	// GSM-7, 400 characters: three concatenated parts (153 septets each).
	"long": strings.Repeat("Long GSM-7 message for the Switchboard load test, sent as a concatenated SMS. ", 5) +
		strings.Repeat("x", 15),
	// UCS-2 (Cyrillic), 52 characters: one part (70 units).
	"ucs2": "Ваш код подтверждения 482913. Он действует 10 минут.",
	// UCS-2, 156 characters: three parts (67 units each).
	"ucs2long": strings.Repeat("Ваш код подтверждения 482913. Он действует 10 минут. ", 3),
	// UCS-2 with emoji (each a surrogate pair, two UTF-16 units): one part.
	"emoji": "Your order 482913 is on its way 🚚📦 Thanks for shopping 🙂",
}

type bodyVariant struct {
	name   string
	text   string
	json   []byte // the body as a JSON string, quotes included
	parts  int
	coding string
	weight float64
}

// parseBodyMix reads "short:90,long:5,ucs2:5" (weights are relative); ""
// is short only.
func parseBodyMix(s string) ([]bodyVariant, error) {
	if s == "" {
		s = "short:1"
	}
	var out []bodyVariant
	for _, item := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(item), ":")
		weight := 1.0
		if ok {
			var err error
			if weight, err = strconv.ParseFloat(w, 64); err != nil || weight < 0 {
				return nil, fmt.Errorf("--body-mix: bad weight in %q", item)
			}
		}
		text, found := bodyTexts[name]
		if !found {
			names := make([]string, 0, len(bodyTexts))
			for n := range bodyTexts {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("--body-mix: unknown body %q (have %s)", name, strings.Join(names, ", "))
		}
		if weight == 0 {
			continue
		}
		js, _ := json.Marshal(text)
		coding, _, parts := gsm.Count(text)
		c := "gsm7"
		if coding == gsm.UCS2 {
			c = "ucs2"
		}
		out = append(out, bodyVariant{name: name, text: text, json: js, parts: parts, coding: c, weight: weight})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--body-mix: no body with a weight above 0")
	}
	return out, nil
}

// gen builds request bodies.
type gen struct {
	variants []bodyVariant
	cum      []float64 // cumulative weights, last = 1
	dests    []string
	auths    [][]byte // "Bearer <secret>" per key
	// hot is the share of messages for key 0 (0: keys are uniform).
	hot float64
}

func newGen(variants []bodyVariant, dests int, secrets []string) *gen {
	g := &gen{variants: variants}
	if len(variants) == 0 {
		g.variants, _ = parseBodyMix("")
	}
	variants = g.variants
	var sum float64
	for _, v := range variants {
		sum += v.weight
	}
	var acc float64
	for _, v := range variants {
		acc += v.weight / sum
		g.cum = append(g.cum, acc)
	}
	g.cum[len(g.cum)-1] = 1
	for i := range dests {
		// +4477 and 8 digits: E.164, 12 digits.
		g.dests = append(g.dests, fmt.Sprintf("+4477%08d", 900000+i))
	}
	for _, s := range secrets {
		g.auths = append(g.auths, []byte("Bearer "+s))
	}
	return g
}

func (g *gen) variant(r *rand.Rand) *bodyVariant {
	if len(g.variants) == 1 {
		return &g.variants[0]
	}
	x := r.Float64()
	for i, c := range g.cum {
		if x < c {
			return &g.variants[i]
		}
	}
	return &g.variants[len(g.variants)-1]
}

// appendMessage appends one message object and returns its part count.
func (g *gen) appendMessage(buf []byte, r *rand.Rand) ([]byte, int) {
	return g.appendVariant(buf, r, g.variant(r))
}

// appendBatch appends a batch envelope of n messages and returns their
// parts in all.
func (g *gen) appendBatch(buf []byte, r *rand.Rand, n int) ([]byte, int) {
	buf = append(buf, `{"messages":[`...)
	parts := 0
	for i := range n {
		if i > 0 {
			buf = append(buf, ',')
		}
		var p int
		buf, p = g.appendMessage(buf, r)
		parts += p
	}
	return append(buf, "]}"...), parts
}

func (g *gen) appendVariant(buf []byte, r *rand.Rand, v *bodyVariant) ([]byte, int) {
	buf = append(buf, `{"to":"`...)
	buf = append(buf, g.dests[r.IntN(len(g.dests))]...)
	buf = append(buf, `","from":"Bench","body":`...)
	buf = append(buf, v.json...)
	buf = append(buf, '}')
	return buf, v.parts
}

// key picks an API key: key 0 for a g.hot share of messages, the others
// uniformly (all uniformly when hot is 0).
func (g *gen) key(r *rand.Rand) int {
	n := len(g.auths)
	if g.hot > 0 && n > 1 {
		if r.Float64() < g.hot {
			return 0
		}
		return 1 + r.IntN(n-1)
	}
	return r.IntN(n)
}

// meanParts is the expected parts per message of the mix.
func (g *gen) meanParts() float64 {
	var sum, w float64
	for _, v := range g.variants {
		sum += v.weight * float64(v.parts)
		w += v.weight
	}
	return sum / w
}

func (g *gen) describe() string {
	var parts []string
	for _, v := range g.variants {
		parts = append(parts, fmt.Sprintf("%s (w %g, %s, %d part(s))", v.name, v.weight, v.coding, v.parts))
	}
	return strings.Join(parts, ", ")
}
