package smsc

import (
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
)

// BenchmarkSubmitReceipt measures what the gateway benchmark needs from
// the simulator: submit_sm, submit_sm_resp, receipt and deliver_sm_resp
// over one transceiver bind with 64 submits in flight, client and server in
// one process.
func BenchmarkSubmitReceipt(b *testing.B) {
	s := listen(b, Config{})
	c := dial(b, s.Addr())
	c.mustBind(pdu.Transceiver, "bench")
	const window = 64
	ud := []byte("benchmark message text")
	sent, resps, receipts := 0, 0, 0
	start := time.Now()
	b.ResetTimer()
	for resps < b.N || receipts < b.N {
		for sent < b.N && sent-resps < window {
			c.send(newSubmit(c.conn.NextSeq(), "Acme", "447700900123", ud, 1))
			sent++
		}
		f := c.next()
		switch f.Header.CommandID {
		case data.SUBMIT_SM_RESP:
			resps++
		case data.DELIVER_SM:
			receipts++
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	eventually(b, "all receipts acknowledged", func() bool { return s.Stats().ReceiptsSent["DELIVRD"] == int64(b.N) })
}
