// Package smpp is Switchboard's SMPP 3.4 client: one Client is one logical
// bind to a carrier's SMSC (a transceiver connection, or a transmitter and a
// receiver connection), with its own window, TPS pacing, enquire_link
// keep-alive and reconnect schedule.
//
// Reconnects wait with capped exponential backoff and full jitter, from
// ReconnectMin doubling up to ReconnectMax. A bind that succeeds does not
// by itself start the waits again: only a session that stayed up for at
// least ReconnectMax does, so an SMSC that accepts binds and drops them at
// once is tried after waits that grow to ReconnectMax, not every
// 0–ReconnectMin forever.
//
// It uses gosmpp only for its pdu package (the PDU structs and their wire
// encoding). gosmpp's session layer is not used: its window drops messages
// when full and loses requests that were in flight when a connection drops.
// Here a full window makes the caller wait, every request is tracked by
// sequence number in our own map, and a lost connection hands every request
// still in flight back to its caller as retriable. Nothing is dropped
// silently.
//
// Conn (framing, one writer goroutine that batches small PDUs into few
// syscalls) is shared with the SMSC simulator in carriers/smsc.
package smpp
