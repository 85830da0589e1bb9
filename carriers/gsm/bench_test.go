package gsm_test

import (
	"strings"
	"testing"

	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

// text160 is a typical full single-part message: GSM7, 160 septets, one
// extension character.
var text160 = func() string {
	s := "Your Switchboard code is 482913. It expires in 10 minutes. Never share it: we never ask for it by phone. Questions? Reply HELP. Cost: 0,05€ "
	_, septets, _ := gsm.Count(s)
	return s + strings.Repeat(".", 160-septets)
}()

func TestBenchTextFitsOnePart(t *testing.T) {
	if c, u, p := gsm.Count(text160); c != gsm.GSM7 || u != 160 || p != 1 {
		t.Fatalf("Count(text160) = %v, %d, %d", c, u, p)
	}
}

func BenchmarkSplit160GSM(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := gsm.Split(text160, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplitInto160GSM(b *testing.B) {
	var seg gsm.Segments
	buf := make([]byte, 0, 160*gsm.DefaultMaxParts)
	b.ReportAllocs()
	for b.Loop() {
		if err := gsm.SplitInto(&seg, buf, text160, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCount(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		gsm.Count(text160)
	}
}

func BenchmarkSplit1530GSM(b *testing.B) {
	text := strings.Repeat("a", 1530)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := gsm.Split(text, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplit70UCS2(b *testing.B) {
	text := strings.Repeat("ш", 70)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := gsm.Split(text, 0); err != nil {
			b.Fatal(err)
		}
	}
}
