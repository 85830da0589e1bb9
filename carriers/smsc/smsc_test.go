package smsc

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
	"github.com/switchboard-sms/switchboard/carriers/receipt"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

func TestBind(t *testing.T) {
	s := listen(t, Config{Credentials: map[string]string{"acme": "secret"}})
	for _, tc := range []struct {
		name, id, pass string
		want           data.CommandStatusType
	}{
		{"wrong password", "acme", "nope", data.ESME_RINVPASWD},
		{"unknown system_id", "other", "secret", data.ESME_RINVSYSID},
		{"ok", "acme", "secret", data.ESME_ROK},
	} {
		c := dial(t, s.Addr())
		r := c.bind(pdu.Transceiver, tc.id, tc.pass)
		if r.CommandStatus != tc.want || r.SystemID != bindSystemID || r.CommandID != data.BIND_TRANSCEIVER_RESP {
			t.Errorf("%s: bind_resp %s status %s system_id %q, want %s %q",
				tc.name, r.CommandID, r.CommandStatus, r.SystemID, tc.want, bindSystemID)
		}
		if tc.want == data.ESME_ROK {
			if r := c.bind(pdu.Transmitter, "acme", "secret"); r.CommandStatus != data.ESME_RALYBND {
				t.Errorf("second bind: %s, want ESME_RALYBND", r.CommandStatus)
			}
		}
	}
	st := s.Stats()
	if st.Binds != 1 || st.BindsTotal != 1 || st.BindsRefused != 3 {
		t.Errorf("stats binds %d total %d refused %d, want 1 1 3", st.Binds, st.BindsTotal, st.BindsRefused)
	}
}

func TestBindTypes(t *testing.T) {
	s := listen(t, Config{})
	for _, typ := range []pdu.BindingType{pdu.Transmitter, pdu.Receiver, pdu.Transceiver} {
		c := dial(t, s.Addr())
		r := c.bind(typ, "any", "thing")
		if r.CommandStatus != data.ESME_ROK {
			t.Fatalf("bind type %d: %s", typ, r.CommandStatus)
		}
		resp := c.submitResp("hi", 0)
		want := data.ESME_ROK
		if typ == pdu.Receiver {
			want = data.ESME_RINVBNDSTS
		}
		if resp.CommandStatus != want {
			t.Errorf("submit on bind type %d: %s, want %s", typ, resp.CommandStatus, want)
		}
	}
}

func TestRefuseBinds(t *testing.T) {
	s := listen(t, Config{Faults: Faults{RefuseBinds: true}})
	c := dial(t, s.Addr())
	if r := c.bind(pdu.Transceiver, "acme", "x"); r.CommandStatus != data.ESME_RBINDFAIL {
		t.Fatalf("bind: %s, want ESME_RBINDFAIL", r.CommandStatus)
	}
	s.SetFaults(Faults{})
	if r := c.bind(pdu.Transceiver, "acme", "x"); r.CommandStatus != data.ESME_ROK {
		t.Fatalf("bind after the fault was lifted: %s", r.CommandStatus)
	}
}

func TestRequestsBeforeBind(t *testing.T) {
	s := listen(t, Config{})
	c := dial(t, s.Addr())
	if r := c.submitResp("hi", 1); r.CommandStatus != data.ESME_RINVBNDSTS {
		t.Errorf("submit before bind: %s", r.CommandStatus)
	}
	q := pdu.NewQuerySM()
	q.SetSequenceNumber(77)
	c.send(q)
	if f := c.next(); f.Header.CommandID != data.QUERY_SM_RESP || f.Header.CommandStatus != data.ESME_RINVBNDSTS {
		t.Errorf("query_sm before bind: %s %s", f.Header.CommandID, f.Header.CommandStatus)
	}
	e := pdu.NewEnquireLink()
	e.SetSequenceNumber(78)
	c.send(e)
	if f := c.next(); f.Header.CommandID != data.ENQUIRE_LINK_RESP || f.Header.SequenceNumber != 78 {
		t.Errorf("enquire_link: %s seq %d", f.Header.CommandID, f.Header.SequenceNumber)
	}
	if st := s.Stats(); st.EnquireLinks != 1 || st.Submits != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSubmitAndReceipt(t *testing.T) {
	var mu sync.Mutex
	var seen []Submit
	s := listen(t, Config{
		IDFormat: receipt.IDHexResp,
		OnSubmit: func(sub Submit) { mu.Lock(); seen = append(seen, sub); mu.Unlock() },
	})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transceiver, "acme")
	sub := c.submit("Hello world, this is a long text", 1)
	resp := c.nextOf(data.SUBMIT_SM_RESP).PDU.(*pdu.SubmitSMResp)
	if resp.CommandStatus != data.ESME_ROK || resp.GetSequenceNumber() != sub.GetSequenceNumber() {
		t.Fatalf("submit_sm_resp %s seq %d", resp.CommandStatus, resp.GetSequenceNumber())
	}
	if _, err := strconv.ParseUint(resp.MessageID, 16, 64); err != nil || strings.Trim(resp.MessageID, "0123456789") == "" && len(resp.MessageID) < 2 {
		t.Fatalf("message id %q is not hex", resp.MessageID)
	}

	d := c.receipt()
	if d.SourceAddr.Address() != "447700900123" || d.DestAddr.Address() != "Acme" || d.SourceAddr.Ton() != 1 {
		t.Errorf("receipt from %q to %q, want the submit's addresses swapped", d.SourceAddr.Address(), d.DestAddr.Address())
	}
	ud, _ := d.Message.GetMessageData()
	f, err := receipt.Parse(string(ud), nil)
	if err != nil {
		t.Fatalf("receipt text %q: %v", ud, err)
	}
	rid := d.OptionalParameters[pdu.TagReceiptedMessageID]
	state := d.OptionalParameters[pdu.TagMessageStateOption]
	// The TLV carries the id as submit_sm_resp did (SMPP 3.4, 5.3.2.12).
	if receiptedID(d) != resp.MessageID || len(rid.Data) == 0 || rid.Data[len(rid.Data)-1] != 0 {
		t.Errorf("receipted_message_id %q (C-string?) vs the response's id %q", rid.Data, resp.MessageID)
	}
	if !receipt.IDHexResp.Match(resp.MessageID, f.ID) || f.ID == resp.MessageID {
		t.Errorf("resp id %q and receipt id %q should be the same number in hex and decimal", resp.MessageID, f.ID)
	}
	hexN, _ := strconv.ParseUint(resp.MessageID, 16, 64)
	if decN, _ := strconv.ParseUint(f.ID, 10, 64); decN != hexN {
		t.Errorf("hex %s = %d, decimal receipt id %s", resp.MessageID, hexN, f.ID)
	}
	if f.Stat != receipt.Delivered || f.Err != "000" || f.Text != "Hello world, this is" {
		t.Errorf("receipt fields %+v", f)
	}
	if len(state.Data) != 1 || state.Data[0] != receipt.Delivered.MessageState() {
		t.Errorf("message_state %v", state.Data)
	}
	if f.SubmitDate.IsZero() || f.DoneDate.Before(f.SubmitDate) {
		t.Errorf("dates %v %v", f.SubmitDate, f.DoneDate)
	}

	eventually(t, "receipt acknowledged", func() bool { return s.Stats().ReceiptsSent["DELIVRD"] == 1 })
	st := s.Stats()
	if st.Submits != 1 || st.InFlight != 0 || st.ReceiptsPending != 0 {
		t.Errorf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0].MessageID != resp.MessageID || seen[0].SystemID != "acme" ||
		string(seen[0].Data) != "Hello world, this is a long text" || !seen[0].Registered || seen[0].Concat != nil {
		t.Errorf("OnSubmit saw %+v", seen)
	}
}

func TestIDFormats(t *testing.T) {
	for _, tc := range []struct {
		f               receipt.IDFormat
		respHex, rctHex bool
	}{
		{receipt.IDAsIs, false, false},
		{receipt.IDDecimal, false, false},
		{receipt.IDHex, true, true},
		{receipt.IDHexResp, true, false},
	} {
		s := listen(t, Config{IDFormat: tc.f})
		c := dial(t, s.Addr())
		c.mustBind(pdu.Transceiver, "acme")
		resp := c.submitResp("x", 1)
		d := c.receipt()
		ud, _ := d.Message.GetMessageData()
		f, err := receipt.Parse(string(ud), nil)
		if err != nil {
			t.Fatalf("format %q: receipt text %q: %v", tc.f, ud, err)
		}
		if tlv := receiptedID(d); tlv != resp.MessageID {
			t.Errorf("format %q: receipted_message_id %q, want the response's id %q", tc.f, tlv, resp.MessageID)
		}
		rid := f.ID
		base := func(hex bool) int {
			if hex {
				return 16
			}
			return 10
		}
		a, err1 := strconv.ParseUint(resp.MessageID, base(tc.respHex), 64)
		b, err2 := strconv.ParseUint(rid, base(tc.rctHex), 64)
		if err1 != nil || err2 != nil || a != b || !tc.f.Match(resp.MessageID, rid) {
			t.Errorf("format %q: resp %q receipt %q", tc.f, resp.MessageID, rid)
		}
	}
}

func TestUniqueIDs(t *testing.T) {
	s := listen(t, Config{})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transmitter, "acme")
	ids := map[string]bool{}
	for range 200 {
		c.submit("x", 0)
	}
	for range 200 {
		id := c.nextOf(data.SUBMIT_SM_RESP).PDU.(*pdu.SubmitSMResp).MessageID
		if ids[id] {
			t.Fatalf("id %s given twice", id)
		}
		ids[id] = true
	}
}

func TestOutcomes(t *testing.T) {
	s := listen(t, Config{Outcomes: Outcomes{Rejected: 1}})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transceiver, "acme")
	for range 5 {
		c.submitResp("x", 1)
		d := c.receipt()
		ud, _ := d.Message.GetMessageData()
		f, _ := receipt.Parse(string(ud), nil)
		if f.Stat != receipt.Rejected || f.Err == "000" || f.Dlvrd != "000" {
			t.Errorf("receipt %q", ud)
		}
		if st := d.OptionalParameters[pdu.TagMessageStateOption].Data; len(st) != 1 || st[0] != 8 {
			t.Errorf("message_state %v, want 8", st)
		}
	}
	eventually(t, "5 REJECTD acknowledged", func() bool { return s.Stats().ReceiptsSent["REJECTD"] == 5 })
}

func TestOutcomeMix(t *testing.T) {
	w := Outcomes{Delivered: 0.5, Undeliverable: 0.2, Expired: 0.2, Rejected: 0.1}
	counts := map[outcome]int{}
	for range 10000 {
		counts[w.pick()]++
	}
	for o, want := range map[outcome]float64{outDelivered: 0.5, outUndeliverable: 0.2, outExpired: 0.2, outRejected: 0.1} {
		if got := float64(counts[o]) / 10000; got < want-0.03 || got > want+0.03 {
			t.Errorf("%s: %.3f, want about %.2f", o.state(), got, want)
		}
	}
	if (Outcomes{}).pick() != outDelivered {
		t.Error("zero outcomes should deliver")
	}
}

func TestReceiptOnFailureOnly(t *testing.T) {
	s := listen(t, Config{})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transceiver, "acme")
	c.submitResp("x", 2) // delivered: no receipt wanted
	s.SetFaults(Faults{})
	s2 := listen(t, Config{Outcomes: Outcomes{Undeliverable: 1}})
	c2 := dial(t, s2.Addr())
	c2.mustBind(pdu.Transceiver, "acme")
	c2.submitResp("x", 2)
	if d := c2.receipt(); d.OptionalParameters[pdu.TagMessageStateOption].Data[0] != 5 {
		t.Error("want an UNDELIV receipt")
	}
	c.none(100 * time.Millisecond)
}

func TestReceiptResentAfterRefusal(t *testing.T) {
	s := listen(t, Config{RetryDelay: 5 * time.Millisecond})
	c := dial(t, s.Addr())
	c.refuse.Store(2)
	c.mustBind(pdu.Transceiver, "acme")
	c.submitResp("x", 1)
	first := c.receipt()
	id := receiptedID(first)
	for i := range 2 {
		d := c.receipt()
		if got := receiptedID(d); got != id {
			t.Fatalf("re-send %d carries id %q, want %q", i, got, id)
		}
		if d.GetSequenceNumber() == first.GetSequenceNumber() {
			t.Error("a re-sent deliver_sm should have a new sequence number")
		}
	}
	eventually(t, "receipt acknowledged once", func() bool {
		st := s.Stats()
		return st.ReceiptsSent["DELIVRD"] == 1 && st.InFlight == 0 && st.ReceiptsPending == 0
	})
	c.none(50 * time.Millisecond)
}

func TestReceiptResentAfterConnectionLoss(t *testing.T) {
	s := listen(t, Config{RetryDelay: 5 * time.Millisecond})
	c := dial(t, s.Addr())
	c.silent.Store(true)
	c.mustBind(pdu.Transceiver, "acme")
	c.submitResp("x", 1)
	id := receiptedID(c.receipt())
	eventually(t, "receipt in flight", func() bool { return s.Stats().InFlight == 1 })
	c.close()
	eventually(t, "receipt pending again", func() bool {
		st := s.Stats()
		return st.InFlight == 0 && st.ReceiptsPending == 1 && st.Binds == 0
	})
	c2 := dial(t, s.Addr())
	c2.mustBind(pdu.Receiver, "acme")
	if got := receiptedID(c2.receipt()); got != id {
		t.Fatalf("receipt %q, want %q", got, id)
	}
	eventually(t, "acknowledged", func() bool { return s.Stats().ReceiptsSent["DELIVRD"] == 1 })
}

func TestReceiptWaitsForReceiver(t *testing.T) {
	s := listen(t, Config{})
	tx := dial(t, s.Addr())
	tx.mustBind(pdu.Transmitter, "acme")
	var ids []string
	for range 3 {
		ids = append(ids, tx.submitResp("x", 1).MessageID)
	}
	eventually(t, "3 pending", func() bool { return s.Stats().ReceiptsPending == 3 })
	other := dial(t, s.Addr())
	other.mustBind(pdu.Receiver, "someone-else")
	rx := dial(t, s.Addr())
	rx.mustBind(pdu.Receiver, "acme")
	for i := range 3 {
		if got := receiptedID(rx.receipt()); got != ids[i] {
			t.Errorf("receipt %d for %q, want %q", i, got, ids[i])
		}
	}
	eventually(t, "none pending", func() bool {
		st := s.Stats()
		return st.ReceiptsPending == 0 && st.ReceiptsSent["DELIVRD"] == 3
	})
	other.none(50 * time.Millisecond)
	tx.none(0)
}

func TestPendingBound(t *testing.T) {
	s := listen(t, Config{MaxPending: 2})
	tx := dial(t, s.Addr())
	tx.mustBind(pdu.Transmitter, "acme")
	for range 5 {
		tx.submitResp("x", 1)
	}
	eventually(t, "2 pending and 3 dropped", func() bool {
		st := s.Stats()
		return st.ReceiptsPending == 2 && st.ReceiptsDropped == 3
	})
}

func TestReceiptTargetAny(t *testing.T) {
	s := listen(t, Config{})
	a, b := dial(t, s.Addr()), dial(t, s.Addr())
	a.mustBind(pdu.Transceiver, "acme")
	b.mustBind(pdu.Transceiver, "acme")
	const n = 10
	for range n {
		a.submit("x", 1)
	}
	got := map[*testClient]int{}
	eventually(t, "all receipts", func() bool {
		for _, c := range []*testClient{a, b} {
			for drained := false; !drained; {
				select {
				case f := <-c.frames:
					if f.Header.CommandID == data.DELIVER_SM {
						got[c]++
					}
				default:
					drained = true
				}
			}
		}
		return got[a]+got[b] == n
	})
	if got[a] != n/2 || got[b] != n/2 {
		t.Errorf("receipts on a %d, on b %d: want round-robin", got[a], got[b])
	}
}

func TestReceiptTargetSame(t *testing.T) {
	s := listen(t, Config{ReceiptTarget: TargetSame})
	a, b := dial(t, s.Addr()), dial(t, s.Addr())
	a.mustBind(pdu.Transceiver, "acme")
	b.mustBind(pdu.Transceiver, "acme")
	for range 4 {
		a.submitResp("x", 1)
		a.receipt()
	}
	b.none(50 * time.Millisecond)
	// A transmitter cannot receive: its receipts go to any receiver.
	tx := dial(t, s.Addr())
	tx.mustBind(pdu.Transmitter, "acme")
	tx.submitResp("x", 1)
	eventually(t, "5 receipts", func() bool { return s.Stats().ReceiptsSent["DELIVRD"] == 5 })
}

func TestThrottleEvery(t *testing.T) {
	s := listen(t, Config{Faults: Faults{ThrottleEvery: 3}})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transmitter, "acme")
	var statuses []data.CommandStatusType
	for range 6 {
		statuses = append(statuses, c.submitResp("x", 0).CommandStatus)
	}
	for i, st := range statuses {
		want := data.ESME_ROK
		if (i+1)%3 == 0 {
			want = data.ESME_RTHROTTLED
		}
		if st != want {
			t.Errorf("submit %d: %s, want %s", i+1, st, want)
		}
	}
	if st := s.Stats(); st.Throttled != 2 || st.Submits != 4 {
		t.Errorf("throttled %d submits %d", st.Throttled, st.Submits)
	}
}

func TestThrottleAbove(t *testing.T) {
	s := listen(t, Config{Faults: Faults{ThrottleAbove: 5}})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transmitter, "acme")
	for range 20 {
		c.submit("x", 0)
	}
	throttled := 0
	for range 20 {
		if c.nextOf(data.SUBMIT_SM_RESP).Header.CommandStatus == data.ESME_RTHROTTLED {
			throttled++
		}
	}
	// A burst of 5 passes; the 15 others arrive well within a second.
	if throttled < 10 || throttled > 15 {
		t.Errorf("%d of 20 throttled, want about 15", throttled)
	}
}

func TestDropAfter(t *testing.T) {
	s := listen(t, Config{Faults: Faults{DropAfter: 3}})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transmitter, "acme")
	for range 5 {
		c.submit("x", 0)
	}
	for range 2 {
		if f := c.next(); f.Header.CommandID != data.SUBMIT_SM_RESP {
			t.Fatalf("got %s", f.Header.CommandID)
		}
	}
	if !c.closed(waitTimeout) {
		t.Fatal("connection not dropped after the third submit")
	}
	eventually(t, "drop counted", func() bool { st := s.Stats(); return st.Drops == 1 && st.Binds == 0 })
	if st := s.Stats(); st.Submits != 2 {
		t.Errorf("submits %d, want 2", st.Submits)
	}
	// The server still serves new connections.
	c2 := dial(t, s.Addr())
	c2.mustBind(pdu.Transmitter, "acme")
	if r := c2.submitResp("x", 0); r.CommandStatus != data.ESME_ROK {
		t.Error(r.CommandStatus)
	}
}

func TestDropProbability(t *testing.T) {
	s := listen(t, Config{Faults: Faults{DropProbability: 1}})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transmitter, "acme")
	c.submit("x", 0)
	if !c.closed(waitTimeout) {
		t.Fatal("not dropped")
	}
	if s.Stats().Drops != 1 {
		t.Error("drop not counted")
	}
}

func TestDropAll(t *testing.T) {
	s := listen(t, Config{})
	a, b := dial(t, s.Addr()), dial(t, s.Addr())
	a.mustBind(pdu.Transmitter, "acme")
	b.mustBind(pdu.Receiver, "acme")
	s.DropAll()
	if !a.closed(waitTimeout) || !b.closed(waitTimeout) {
		t.Fatal("connections survived DropAll")
	}
	eventually(t, "no binds", func() bool { return s.Stats().Binds == 0 })
}

func TestDropOne(t *testing.T) {
	ids := make(chan uint64, 1)
	s := listen(t, Config{OnSubmit: func(sub Submit) { ids <- sub.BindID }})
	a, b := dial(t, s.Addr()), dial(t, s.Addr())
	a.mustBind(pdu.Transceiver, "acme")
	b.mustBind(pdu.Transceiver, "acme")
	a.submit("x", 0)
	a.nextOf(data.SUBMIT_SM_RESP)
	id := <-ids
	if s.Drop(id + 100) {
		t.Fatal("Drop reported a connection that does not exist")
	}
	if !s.Drop(id) {
		t.Fatal("Drop did not find the connection a submit came on")
	}
	if !a.closed(waitTimeout) {
		t.Fatal("the dropped connection is still open")
	}
	e := pdu.NewEnquireLink()
	e.SetSequenceNumber(b.conn.NextSeq())
	b.send(e)
	if f := b.next(); f.Header.CommandID != data.ENQUIRE_LINK_RESP {
		t.Fatalf("the other connection got %s, want it still answered", f.Header.CommandID)
	}
	if got := s.Stats().Drops; got != 1 {
		t.Errorf("%d drops counted, want 1", got)
	}
}

func TestHang(t *testing.T) {
	s := listen(t, Config{})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transceiver, "acme")
	s.SetFaults(Faults{Hang: true})
	c.submit("x", 1)
	e := pdu.NewEnquireLink()
	e.SetSequenceNumber(c.conn.NextSeq())
	c.send(e)
	c.none(150 * time.Millisecond)
	if st := s.Stats(); st.Submits != 0 {
		t.Errorf("a hung server accepted %d submits", st.Submits)
	}
	s.SetFaults(Faults{})
	e.SetSequenceNumber(c.conn.NextSeq())
	c.send(e)
	if f := c.next(); f.Header.CommandID != data.ENQUIRE_LINK_RESP {
		t.Errorf("after the hang: %s", f.Header.CommandID)
	}
}

func TestHangHoldsReceipts(t *testing.T) {
	s := listen(t, Config{ReceiptDelay: Delay{Min: 20 * time.Millisecond, Max: 20 * time.Millisecond}, RetryDelay: 5 * time.Millisecond})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transceiver, "acme")
	c.submitResp("x", 1)
	s.SetFaults(Faults{Hang: true})
	c.none(100 * time.Millisecond)
	eventually(t, "receipt pending while hung", func() bool { return s.Stats().ReceiptsPending == 1 })
	s.SetFaults(Faults{})
	c.receipt()
}

func TestLatency(t *testing.T) {
	const lat = 30 * time.Millisecond
	s := listen(t, Config{Faults: Faults{Latency: Delay{Min: lat, Max: lat}}})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transceiver, "acme")
	start := time.Now()
	var seqs []int32
	for range 5 {
		seqs = append(seqs, c.submit("x", 1).GetSequenceNumber())
	}
	for _, seq := range seqs {
		f := c.nextOf(data.SUBMIT_SM_RESP)
		if f.Header.SequenceNumber != seq {
			t.Errorf("resp seq %d, want %d: a fixed latency keeps the order", f.Header.SequenceNumber, seq)
		}
	}
	if el := time.Since(start); el < lat {
		t.Errorf("responses after %v, want at least %v", el, lat)
	}
	eventually(t, "receipts", func() bool { return s.Stats().ReceiptsSent["DELIVRD"] == 5 })
}

func TestReceiptDelay(t *testing.T) {
	const delay = 150 * time.Millisecond
	s := listen(t, Config{ReceiptDelay: Delay{Min: delay, Max: delay}})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transceiver, "acme")
	sent := time.Now()
	c.submitResp("x", 1)
	eventually(t, "receipt pending", func() bool { return s.Stats().ReceiptsPending == 1 })
	c.receipt()
	if el := time.Since(sent); el < delay {
		t.Errorf("receipt after %v, want about %v", el, delay)
	}
}

func TestDelaySample(t *testing.T) {
	for _, d := range []Delay{{}, {Min: 5}, {Min: 5, Max: 10}, {Min: 5, Max: 50, Exponential: true}} {
		for range 1000 {
			v := d.Sample()
			hi := max(d.Max, d.Min)
			lo := d.Min
			if d.Exponential {
				lo = 0
			}
			if v < lo || v > hi {
				t.Fatalf("%+v sampled %v", d, v)
			}
		}
	}
}

func TestUnknownCommandAndMalformed(t *testing.T) {
	s := listen(t, Config{})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transceiver, "acme")
	var h [16]byte
	binary.BigEndian.PutUint32(h[0:], 16)
	binary.BigEndian.PutUint32(h[4:], 0x00000099)
	binary.BigEndian.PutUint32(h[12:], 4242)
	c.writeRaw(h[:])
	f := c.next()
	if f.Header.CommandID != data.GENERIC_NACK || f.Header.CommandStatus != data.ESME_RINVCMDID || f.Header.SequenceNumber != 4242 {
		t.Fatalf("unknown command: %s %s seq %d", f.Header.CommandID, f.Header.CommandStatus, f.Header.SequenceNumber)
	}
	// A submit_sm cut short after its service_type.
	bad := []byte{0, 0, 0, 20, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9, 'a', 'b', 'c', 0}
	c.writeRaw(bad)
	f = c.next()
	if f.Header.CommandID != data.GENERIC_NACK || f.Header.CommandStatus != data.ESME_RINVCMDLEN || f.Header.SequenceNumber != 9 {
		t.Fatalf("malformed: %s %s seq %d", f.Header.CommandID, f.Header.CommandStatus, f.Header.SequenceNumber)
	}
	// Still in step.
	if r := c.submitResp("x", 0); r.CommandStatus != data.ESME_ROK {
		t.Fatal(r.CommandStatus)
	}
	if st := s.Stats(); st.GenericNacks != 2 {
		t.Errorf("generic nacks %d", st.GenericNacks)
	}
}

func TestGarbageClosesOnlyThatConnection(t *testing.T) {
	s := listen(t, Config{})
	good := dial(t, s.Addr())
	good.mustBind(pdu.Transceiver, "acme")
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		{0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1},
		{0, 0, 0, 3, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1},
	} {
		c := dial(t, s.Addr())
		c.writeRaw(junk)
		if !c.closed(waitTimeout) {
			t.Fatalf("connection not closed after %q", junk)
		}
	}
	if r := good.submitResp("x", 0); r.CommandStatus != data.ESME_ROK {
		t.Fatal(r.CommandStatus)
	}
}

func TestRandomBytesNeverPanic(t *testing.T) {
	s := listen(t, Config{})
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		c := dial(t, s.Addr())
		c.mustBind(pdu.Transceiver, "acme")
		// A valid header with a random body: decoders see garbage.
		n := 16 + r.IntN(200)
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		binary.BigEndian.PutUint32(b, uint32(n))
		ids := []data.CommandIDType{data.SUBMIT_SM, data.DELIVER_SM_RESP, data.BIND_TRANSCEIVER, data.QUERY_SM, data.DATA_SM, data.SUBMIT_MULTI}
		binary.BigEndian.PutUint32(b[4:], uint32(ids[r.IntN(len(ids))]))
		c.writeRaw(b)
		e := pdu.NewEnquireLink()
		e.SetSequenceNumber(c.conn.NextSeq())
		c.send(e)
		c.nextOf(data.ENQUIRE_LINK_RESP)
		c.close()
	}
}

func TestUnbind(t *testing.T) {
	s := listen(t, Config{})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transceiver, "acme")
	u := pdu.NewUnbind()
	u.SetSequenceNumber(5)
	c.send(u)
	if f := c.next(); f.Header.CommandID != data.UNBIND_RESP || f.Header.SequenceNumber != 5 {
		t.Fatalf("unbind: %s", f.Header.CommandID)
	}
	if !c.closed(waitTimeout) {
		t.Fatal("not closed after unbind")
	}
	eventually(t, "no binds", func() bool { return s.Stats().Binds == 0 })
}

func TestSubmitConcatAndCoding(t *testing.T) {
	var mu sync.Mutex
	var seen []Submit
	s := listen(t, Config{OnSubmit: func(sub Submit) { mu.Lock(); seen = append(seen, sub); mu.Unlock() }})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transmitter, "acme")

	udh := newSubmit(c.conn.NextSeq(), "a", "1", []byte("part two"), 0)
	udh.EsmClass = esmUDHI
	udh.Message.SetUDH(pdu.UDH{pdu.NewIEConcatMessage(3, 2, 0x42)})
	c.send(udh)

	wide := newSubmit(c.conn.NextSeq(), "a", "1", append([]byte{6, 8, 4, 0x12, 0x34, 2, 1}, "wide"...), 0)
	wide.EsmClass = esmUDHI
	c.send(wide)

	sarP := newSubmit(c.conn.NextSeq(), "a", "1", []byte("sar"), 0)
	sarP.RegisterOptionalParam(pdu.Field{Tag: pdu.TagSarMsgRefNum, Data: []byte{0xAB, 0xCD}})
	sarP.RegisterOptionalParam(pdu.Field{Tag: pdu.TagSarTotalSegments, Data: []byte{4}})
	sarP.RegisterOptionalParam(pdu.Field{Tag: pdu.TagSarSegmentSeqnum, Data: []byte{4}})
	c.send(sarP)

	odd := newSubmit(c.conn.NextSeq(), "a", "1", []byte{1, 2, 3}, 0)
	_ = odd.Message.SetMessageDataWithEncoding([]byte{1, 2, 3}, smpp.DataCoding(0xF5))
	c.send(odd)

	payload := newSubmit(c.conn.NextSeq(), "a", "1", nil, 0)
	payload.RegisterOptionalParam(pdu.Field{Tag: pdu.TagMessagePayload, Data: []byte("in a TLV")})
	c.send(payload)

	for range 5 {
		if f := c.nextOf(data.SUBMIT_SM_RESP); f.Header.CommandStatus != data.ESME_ROK {
			t.Fatal(f.Header.CommandStatus)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []struct {
		data   string
		concat *gsm.Concat
		coding byte
	}{
		{"part two", &gsm.Concat{Ref: 0x42, Total: 3, Seq: 2}, 0},
		{"wide", &gsm.Concat{Ref: 0x1234, Total: 2, Seq: 1, Wide: true}, 0},
		{"sar", &gsm.Concat{Ref: 0xABCD, Total: 4, Seq: 4}, 0},
		{"\x01\x02\x03", nil, 0xF5},
		{"in a TLV", nil, 0},
	}
	if len(seen) != len(want) {
		t.Fatalf("saw %d submits", len(seen))
	}
	for i, w := range want {
		g := seen[i]
		if string(g.Data) != w.data || g.DataCoding != w.coding || (g.Concat == nil) != (w.concat == nil) ||
			g.Concat != nil && *g.Concat != *w.concat {
			t.Errorf("submit %d: data %q coding 0x%02X concat %+v, want %q 0x%02X %+v", i, g.Data, g.DataCoding, g.Concat, w.data, w.coding, w.concat)
		}
	}
}

func TestOnSubmitOrder(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	s := listen(t, Config{OnSubmit: func(sub Submit) { mu.Lock(); ids = append(ids, sub.MessageID); mu.Unlock() }})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transmitter, "acme")
	for range 100 {
		c.submit("x", 0)
	}
	var resps []string
	for range 100 {
		resps = append(resps, c.nextOf(data.SUBMIT_SM_RESP).PDU.(*pdu.SubmitSMResp).MessageID)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(ids, ",") != strings.Join(resps, ",") {
		t.Error("OnSubmit order differs from the order of the responses")
	}
}

// moPart is one inbound deliver_sm as a client would reassemble it.
type moPart struct {
	coding byte
	concat *gsm.Concat
	ud     []byte
}

func readMO(t *testing.T, c *testClient) moPart {
	t.Helper()
	f := c.nextOf(data.DELIVER_SM)
	d := f.PDU.(*pdu.DeliverSM)
	if d.EsmClass&0x3C != 0 {
		t.Fatalf("inbound message with receipt esm_class 0x%02X", d.EsmClass)
	}
	p := moPart{coding: d.Message.Encoding().DataCoding()}
	p.ud, _ = d.Message.GetMessageData()
	if udh := d.Message.UDH(); len(udh) > 0 {
		b, err := udh.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		c, found, _, err := gsm.ParseUDH(b)
		if err != nil || !found {
			t.Fatalf("UDH %x: %v", b, err)
		}
		p.concat = &c
	}
	if sc, ok := smpp.SARConcat(d.OptionalParameters); ok {
		p.concat = &sc
	}
	return p
}

func TestInjectMO(t *testing.T) {
	s := listen(t, Config{})
	if err := s.InjectMO("acme", MO{From: "+447700900123", To: "12345", Text: "hi"}); !errors.Is(err, ErrNoReceiver) {
		t.Fatalf("no receiver: %v", err)
	}
	c := dial(t, s.Addr())
	c.mustBind(pdu.Receiver, "acme")

	if err := s.InjectMO("acme", MO{From: "+447700900123", To: "12345", Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	d := c.nextOf(data.DELIVER_SM).PDU.(*pdu.DeliverSM)
	ud, _ := d.Message.GetMessageData()
	if string(ud) != "hello" || d.EsmClass != 0 || d.SourceAddr.Address() != "447700900123" || d.SourceAddr.Ton() != 1 ||
		d.DestAddr.Address() != "12345" || d.DestAddr.Ton() != 0 {
		t.Errorf("single MO: %q esm 0x%02X from %q/%d to %q/%d", ud, d.EsmClass,
			d.SourceAddr.Address(), d.SourceAddr.Ton(), d.DestAddr.Address(), d.DestAddr.Ton())
	}

	long := strings.Repeat("abcdefghij", 20) // 200 GSM7 characters: 2 parts
	emoji := strings.Repeat("héllo ☃ ", 12)  // UCS2, 96 units: 2 parts
	for _, tc := range []struct {
		name string
		mo   MO
		wide bool
	}{
		{"udh8", MO{From: "Bank", To: "+1555", Text: long}, false},
		{"udh16", MO{From: "Bank", To: "+1555", Text: long, Wide: true}, true},
		{"sar", MO{From: "Bank", To: "+1555", Text: long, SAR: true}, false},
		{"ucs2", MO{From: "Bank", To: "+1555", Text: emoji}, false},
	} {
		if err := s.InjectMO("acme", tc.mo); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		seg, _ := gsm.Split(tc.mo.Text, 10)
		var joined []byte
		var ref uint16
		for i := range 2 {
			p := readMO(t, c)
			if p.concat == nil || p.concat.Total != 2 || p.concat.Seq != byte(i+1) || p.concat.Wide != tc.wide {
				t.Fatalf("%s part %d: concat %+v", tc.name, i+1, p.concat)
			}
			if i == 0 {
				ref = p.concat.Ref
			} else if p.concat.Ref != ref {
				t.Errorf("%s: parts carry refs %d and %d", tc.name, ref, p.concat.Ref)
			}
			if p.coding != byte(seg.Coding) {
				t.Errorf("%s: coding 0x%02X want 0x%02X", tc.name, p.coding, seg.Coding)
			}
			joined = append(joined, p.ud...)
		}
		text, err := gsm.Decode(seg.Coding, joined)
		if err != nil || text != tc.mo.Text {
			t.Errorf("%s: reassembled %q (%v)", tc.name, text, err)
		}
	}
	eventually(t, "MO acknowledged", func() bool { return s.Stats().MOSent == 9 })
}

func TestInjectMOAfterClose(t *testing.T) {
	s := listen(t, Config{})
	_ = s.Close()
	if err := s.InjectMO("acme", MO{Text: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{ReceiptTarget: "nearest"},
		{IDFormat: "base64"},
		{Outcomes: Outcomes{Delivered: -1}},
		{ReceiptDelay: Delay{Min: 2, Max: 1}},
		{Faults: Faults{DropProbability: 2}},
	} {
		cfg.Addr = "127.0.0.1:0"
		if s, err := Listen(cfg); err == nil {
			_ = s.Close()
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := Listen(Config{Addr: "127.0.0.1:0", ReceiptDelay: Delay{Min: time.Hour, Max: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	tx := dial(t, s.Addr())
	tx.mustBind(pdu.Transceiver, "acme")
	rx := dial(t, s.Addr())
	rx.mustBind(pdu.Receiver, "acme")
	for range 10 {
		tx.submitResp("x", 1)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if f := rx.next(); f.Header.CommandID != data.UNBIND {
		t.Errorf("close sent %s, want unbind", f.Header.CommandID)
	}
	if !tx.closed(waitTimeout) || !rx.closed(waitTimeout) {
		t.Fatal("connections left open")
	}
	tx.close()
	rx.close()
	eventually(t, "goroutines to stop", func() bool { return runtime.NumGoroutine() <= before })
	if st := s.Stats(); st.ReceiptsPending != 0 || st.Binds != 0 {
		t.Errorf("after close: %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Error("second Close:", err)
	}
}

// With TextOnlyReceipts a receipt carries neither TLV; its text still
// names the message.
func TestTextOnlyReceipts(t *testing.T) {
	s := listen(t, Config{TextOnlyReceipts: true})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Transceiver, "acme")
	resp := c.submitResp("x", 1)
	d := c.receipt()
	for _, tag := range []pdu.Tag{pdu.TagReceiptedMessageID, pdu.TagMessageStateOption} {
		if _, ok := d.OptionalParameters[tag]; ok {
			t.Errorf("a text-only receipt carries TLV %#04x", tag)
		}
	}
	ud, _ := d.Message.GetMessageData()
	if f, err := receipt.Parse(string(ud), nil); err != nil || f.ID != resp.MessageID || f.Stat != receipt.Delivered {
		t.Fatalf("receipt text %q: %+v, %v; want the response's id %q, DELIVRD", ud, f, err, resp.MessageID)
	}
}
