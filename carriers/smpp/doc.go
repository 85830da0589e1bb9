// Package smpp is Switchboard's SMPP 3.4 client: one Client is one logical
// bind to a carrier's SMSC (a transceiver connection, or a transmitter and a
// receiver connection), with its own window, TPS pacing, enquire_link
// keep-alive and reconnect schedule.
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
