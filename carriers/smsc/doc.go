// Package smsc is an SMPP 3.4 SMSC simulator: the carrier that every
// Switchboard test, the benchmark and the demo talk to.
//
// It accepts transmitter, receiver and transceiver binds, answers submit_sm
// with unique message ids and sends delivery receipts as deliver_sm, with
// the behaviour of real SMSCs that a gateway must survive:
//
//   - Receipts go by default to any receiver bind of the same system_id,
//     round-robin, so a receipt often arrives on another connection than
//     its submit did.
//   - Receipt delivery is reliable: a receipt whose deliver_sm_resp is not
//     ESME_ROK, or whose connection drops first, is sent again later, and
//     receipts wait while no receiver is bound. The queue is in memory and
//     bounded (Config.MaxPending); what overflows is counted, not kept.
//   - Ids can be written as hex in submit_sm_resp and as decimal in
//     receipts, a quirk of real carriers.
//   - InjectMO sends inbound messages, cut as a handset cuts them or, to
//     test reassembly, blindly through escape and surrogate pairs, with a
//     chosen reference, and with parts reordered, repeated or left out.
//   - Faults (Faults) add latency, throttling, dropped connections, a hung
//     peer or refused binds, and can be changed while it runs.
//
// Each connection has one goroutine that reads and answers inline; the
// writes of all goroutines are batched by smpp.Conn. Receipts are sent
// straight after the submit_sm_resp, or, when delayed, by one scheduler
// goroutine per server holding a timer heap. That keeps the simulator
// faster than the gateway it tests, so benchmarks measure the gateway.
//
// gosmpp's pdu package supplies the PDU types; the simulator never lets
// gosmpp choose a sequence number (it draws them from a process-wide
// counter) and reads data_coding from the raw PDU when gosmpp does not know
// the coding.
package smsc
