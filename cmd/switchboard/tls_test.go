package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial
// to certFile and keyFile, and returns it for a client's trust.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "switchboard test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// With node.tls_cert and node.tls_key both listeners speak HTTPS only,
// and a reload serves the certificate the files hold then.
func TestTLSAndCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeCert(t, certFile, keyFile, 1)
	sim := testSim(t, smsc.Config{})
	yaml := strings.Replace(adminYAML(sim.Addr()), "node: {", fmt.Sprintf("node: {tls_cert: %q, tls_key: %q, ", certFile, keyFile), 1)
	g, _ := openTestGateway(t, dir, yaml)
	defer stopTestGateway(t, g)

	pool := x509.NewCertPool()
	pool.AddCert(first)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	req, _ := http.NewRequest("POST", "https://"+g.Addr()+"/v1/messages", strings.NewReader(`{"to":"+447700900123","from":"Acme","body":"over TLS"}`))
	req.Header.Set("Authorization", "Bearer "+testSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("HTTPS API: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("HTTPS API: %d", resp.StatusCode)
	}
	adminURL := "https://" + g.ops.adminLn.Addr().String()
	resp, err = c.Get(adminURL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTPS admin: %v %v", resp, err)
	}
	resp.Body.Close()
	// Plain HTTP gets no answer.
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + g.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on a TLS listener")
		}
	}

	// New files, a reload: new connections get the new certificate.
	second := writeCert(t, certFile, keyFile, 2)
	sets := []string{"node.data_dir=" + filepath.Join(dir, "data"), "node.http=127.0.0.1:0", "node.admin=127.0.0.1:0"}
	if err := g.reload(context.Background(), configLoader(filepath.Join(dir, "cluster.yaml"), sets)); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(second)
	var serial *big.Int
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, VerifyConnection: func(cs tls.ConnectionState) error {
		serial = cs.PeerCertificates[0].SerialNumber
		return nil
	}}}
	resp, err = (&http.Client{Transport: tr}).Get(adminURL + "/healthz")
	if err != nil {
		t.Fatalf("after the reload: %v", err)
	}
	var body map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if serial == nil || serial.Int64() != 2 || body["status"] != "ok" {
		t.Fatalf("after the reload the server's certificate is serial %v", serial)
	}
}
