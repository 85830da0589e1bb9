package harness

import "testing"

func TestParseSocketBytes(t *testing.T) {
	out := []byte("0      0      127.0.0.1:41780 127.0.0.1:9042 users:((\"switchboard\",pid=42,fd=11))\n" +
		"\t bbr wscale:10,10 rto:204 mss:32768 cwnd:18 bytes_sent:6386 bytes_acked:6387 bytes_received:16678 segs_out:126\n" +
		"0      0      127.0.0.1:41782 127.0.0.1:9042 users:((\"other\",pid=7,fd=13))\n" +
		"\t bbr wscale:10,10 rto:204 mss:32768 cwnd:18 bytes_sent:1000 bytes_acked:1001 bytes_received:2000 segs_out:12\n" +
		"0      0      127.0.0.1:41784 127.0.0.1:9042 users:((\"switchboard\",pid=42,fd=12))\n" +
		"\t bbr wscale:10,10 rto:204 mss:32768 cwnd:18 bytes_sent:14 bytes_acked:15 bytes_received:22 segs_out:2\n")
	sent, recv := parseSocketBytes(out, 42)
	if sent != 6400 || recv != 16700 {
		t.Fatalf("pid 42: sent %d, received %d; want 6400 and 16700", sent, recv)
	}
	if sent, recv := parseSocketBytes(out, 8); sent != 0 || recv != 0 {
		t.Fatalf("pid 8 has no sockets: sent %d, received %d", sent, recv)
	}
}

func TestDBFiguresPerMessage(t *testing.T) {
	a := dbSnapshot{requests: 100, statements: 200, writes: map[string]int64{"messages": 10}, reads: map[string]int64{"messages": 5},
		sent: 1000, recv: 10, ok: true}
	b := dbSnapshot{requests: 300, statements: 600, writes: map[string]int64{"messages": 50, "pending": 40},
		reads: map[string]int64{"messages": 25, "pending": 20}, sent: 5000, recv: 410, ok: true}
	var f dbFigures
	f.fill(a, b, 20)
	if f.RequestsPerMsg != 10 || f.StatementsPerMsg != 20 || f.WritesPerMsg != 4 || f.ReadsPerMsg != 2 ||
		f.BytesSentPerMsg != 200 || f.BytesRecvPerMsg != 20 || f.WritesByTable["messages"] != 2 || f.WritesByTable["pending"] != 2 ||
		f.ReadsByTable["messages"] != 1 || f.ReadsByTable["pending"] != 1 {
		t.Fatalf("figures %+v", f)
	}
	if f.CountersIncomplete {
		t.Fatal("complete counters reported incomplete")
	}
	b.ok = false
	f.fill(a, b, 20)
	if !f.CountersIncomplete {
		t.Fatal("a failed read of the counters not reported")
	}
}
