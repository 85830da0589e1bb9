package actors

import (
	"crypto/tls"
	"testing"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// A carrier built again from the same settings (a new *tls.Config, a new
// status table, another logger) is the same carrier: reapplying the
// configuration restarts no bind.
func TestSameCarrier(t *testing.T) {
	build := func() CarrierConfig {
		return CarrierConfig{Name: "c", Binds: 2, TPS: 10, SMPP: smpp.Config{Addr: "smsc:2775", SystemID: "a", Window: 64,
			TLS: &tls.Config{ServerName: "smsc", MinVersion: tls.VersionTLS12}, Statuses: smpp.Statuses{0x58: true},
			Log: zerolog.Nop()}}
	}
	a, b := build(), build()
	b.SMPP.Log = zerolog.New(nil)
	if !sameCarrier(a, b) {
		t.Fatal("identical settings read as a change")
	}
	b.SMPP.Window = 32
	if sameCarrier(a, b) {
		t.Fatal("a new window reads as no change")
	}
}
