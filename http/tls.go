package http

import (
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
)

// Certificate is a TLS certificate and key read from files, which Reload
// reads again (on SIGHUP): connections made afterwards get the new one,
// and open ones keep theirs.
type Certificate struct {
	mu                sync.Mutex
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// LoadCertificate reads a PEM certificate (chain) and its key.
func LoadCertificate(certFile, keyFile string) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again; if they do not make a certificate, the
// one in use stays and the error says why.
func (c *Certificate) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.load(c.certFile, c.keyFile)
}

// Use reads the certificate from these files from now on (Reload reads
// them again), if they make one.
func (c *Certificate) Use(certFile, keyFile string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.load(certFile, keyFile)
}

func (c *Certificate) load(certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("tls certificate %s, key %s: %w", certFile, keyFile, err)
	}
	c.certFile, c.keyFile = certFile, keyFile
	c.cur.Store(&cert)
	return nil
}

// Config is a server TLS configuration that always serves the current
// certificate: TLS 1.2 at least, HTTP/1.1 (fasthttp speaks no HTTP/2).
func (c *Certificate) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}
}
