package http

import (
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// A server that refuses a request body and closes the connection while the
// client is still sending it makes the kernel reset the connection, and the
// reset can destroy the error response before the client reads it. So a
// connection refused for its body size drains what the client still sends,
// up to a limit and for at most the read timeout, before it closes — what
// net/http does for the same reason.

// lingerListener wraps accepted connections in lingerConn.
type lingerListener struct {
	net.Listener
	linger time.Duration
}

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &lingerConn{Conn: c, linger: l.linger}
	if tc, ok := c.(tlsConn); ok {
		return &lingerTLSConn{lingerConn: lc, tls: tc}, nil
	}
	return lc, nil
}

// tlsConn is how fasthttp tells a TLS connection. It must still tell one
// wrapped here: a connection over the limit is refused with a response
// written on it, except on TLS, where the write would first wait for the
// client's handshake on the goroutine that accepts connections, so that a
// client that sends nothing would stop the listener.
type tlsConn interface {
	Handshake() error
	ConnectionState() tls.ConnectionState
}

// lingerTLSConn is a lingerConn over a TLS connection.
type lingerTLSConn struct {
	*lingerConn
	tls tlsConn
}

func (c *lingerTLSConn) Handshake() error                     { return c.tls.Handshake() }
func (c *lingerTLSConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// lingerConn drains up to drain bytes on Close when drain is set.
type lingerConn struct {
	net.Conn
	linger time.Duration
	drain  atomic.Int64 // set by the connection's goroutine, read on Close
}

// lingerOnClose asks c to drain the rest of a refused body on Close: the
// announced length (or max when chunked or unknown), at most max.
func lingerOnClose(c net.Conn, contentLength, max int) {
	lc, ok := c.(*lingerConn)
	if t, isTLS := c.(*lingerTLSConn); isTLS {
		lc, ok = t.lingerConn, true
	}
	if !ok {
		return
	}
	n := max
	if contentLength > 0 && contentLength < max {
		n = contentLength
	}
	lc.drain.Store(int64(n))
}

func (c *lingerConn) Close() error {
	if n := c.drain.Swap(0); n > 0 {
		// Send FIN after the response, so the client sees the end of it,
		// then read and discard until it stops sending.
		if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		c.Conn.SetReadDeadline(time.Now().Add(c.linger))
		io.CopyN(io.Discard, c.Conn, n)
	}
	return c.Conn.Close()
}
