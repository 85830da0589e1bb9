package smpp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// The client binds over TLS: a TLS listener with a certificate made for the
// test terminates TLS and relays bytes to the simulator.
func TestSubmitOverTLS(t *testing.T) {
	sim := startSim(t, smsc.Config{})
	cert, pool := selfSignedCert(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go relay(ln, sim.Addr())

	cfg := fastConfig(ln.Addr().String())
	cfg.TLS = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	c := start(t, cfg)
	if _, err := c.Submit(context.Background(), msg("over tls")); err != nil {
		t.Fatal(err)
	}
	if sim.Stats().Submits != 1 {
		t.Fatalf("simulator saw %d submits, want 1", sim.Stats().Submits)
	}

	// A client that does not trust the certificate never binds.
	bad := fastConfig(ln.Addr().String())
	bad.TLS = &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	bc := startUnbound(t, bad)
	eventually(t, "a failed TLS attempt", func() bool { return bc.Stats().Reconnects >= 1 })
	if bc.Bound() {
		t.Fatal("bound over TLS without trusting the certificate")
	}
}

// relay accepts TLS connections and copies bytes to and from addr, until
// the listener closes.
func relay(ln net.Listener, addr string) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer in.Close()
			out, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer out.Close()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			_, _ = io.Copy(in, out)
		}()
	}
}

func selfSignedCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smsc test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}
