package smpp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// Interoperability with an SMPP stack not written here: Perl's Net::SMPP
// (Debian libnet-smpp-perl), as an ESME against the simulator and as an
// SMSC for the client. The scripts are in testdata/interop; each prints one
// line per event and a summary line starting "OK", or "FAIL reason" and
// exits non-zero.

// interopTimeout bounds each Perl script; the scripts give up after 20 s
// themselves.
const interopTimeout = 30 * time.Second

// requireNetSMPP skips the test when Perl or Net::SMPP is missing, except
// under CI, whose .ci/run installs libnet-smpp-perl: there a missing
// module must fail loudly rather than skip the interop tests unnoticed.
func requireNetSMPP(t *testing.T) {
	t.Helper()
	out, err := exec.Command("perl", "-MNet::SMPP", "-e1").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("perl with Net::SMPP (Debian libnet-smpp-perl) not available: %v %s", err, bytes.TrimSpace(out))
	if os.Getenv("CI") == "" {
		t.Skip(msg)
	}
	t.Fatal(msg + " (CI is set, and .ci/run should have installed it)")
}

// perlScript is a running script from testdata/interop whose stdout is
// read line by line.
type perlScript struct {
	t        *testing.T
	name     string
	cmd      *exec.Cmd
	lines    chan string // stdout, closed at EOF
	stderr   lockedBuffer
	deadline time.Time
	seen     []string // stdout lines read so far
	waited   bool
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runPerl starts a script; it is killed, if still running, when the test
// ends.
func runPerl(t *testing.T, script string, args ...string) *perlScript {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	p := &perlScript{
		t:        t,
		name:     script,
		cmd:      exec.CommandContext(ctx, "perl", append([]string{filepath.Join("testdata", "interop", script)}, args...)...),
		lines:    make(chan string, 1024),
		deadline: time.Now().Add(interopTimeout),
	}
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", script, err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cancel()
		if !p.waited {
			for range p.lines {
			}
			_ = p.cmd.Wait()
		}
	})
	return p
}

func (p *perlScript) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("%s: %s\nstdout:\n%s\nstderr:\n%s", p.name, fmt.Sprintf(format, args...),
		strings.Join(p.seen, "\n"), p.stderr.String())
}

// expect reads stdout up to the next line that starts with prefix and
// returns it.
func (p *perlScript) expect(prefix string) string {
	p.t.Helper()
	timeout := time.NewTimer(time.Until(p.deadline))
	defer timeout.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.fatalf("exited before printing %q", prefix)
			}
			p.seen = append(p.seen, line)
			if strings.HasPrefix(line, "FAIL") {
				p.fatalf("failed while waiting for %q", prefix)
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timeout.C:
			p.fatalf("no %q within %v", prefix, interopTimeout)
		}
	}
}

// finish reads stdout to the end, waits for the script to exit, fails the
// test unless it exited 0, and returns every line it printed.
func (p *perlScript) finish() []string {
	p.t.Helper()
	timeout := time.NewTimer(time.Until(p.deadline))
	defer timeout.Stop()
	for done := false; !done; {
		select {
		case line, ok := <-p.lines:
			if !ok {
				done = true
				break
			}
			p.seen = append(p.seen, line)
		case <-timeout.C:
			p.fatalf("still running after %v", interopTimeout)
		}
	}
	err := p.cmd.Wait()
	p.waited = true
	if err != nil {
		p.fatalf("exit: %v", err)
	}
	p.t.Logf("%s printed:\n%s", p.name, strings.Join(p.seen, "\n"))
	return p.seen
}

// lastLine returns the last line printed, the summary of a script that
// exited 0.
func lastLine(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

// linesWith returns the lines that start with prefix.
func linesWith(lines []string, prefix string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// keyValues parses the "key=value" words of an event line.
func keyValues(line string) map[string]string {
	kv := map[string]string{}
	for _, w := range strings.Fields(line) {
		if k, v, ok := strings.Cut(w, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// Net::SMPP binds to the simulator as a transceiver, submits five messages
// asynchronously, checks each receipt against the ids it was given, takes
// an inbound message, exchanges enquire_link and unbinds.
func TestInteropNetSMPPClientAgainstSimulator(t *testing.T) {
	requireNetSMPP(t)
	var (
		mu      sync.Mutex
		submits []smsc.Submit
	)
	sim := startSim(t, smsc.Config{
		Credentials: map[string]string{"perl": "secret"},
		OnSubmit: func(s smsc.Submit) {
			mu.Lock()
			submits = append(submits, s)
			mu.Unlock()
		},
	})
	host, port, err := net.SplitHostPort(sim.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p := runPerl(t, "client.pl", host, port)
	if got := p.expect("BOUND"); got != "BOUND system_id=smscsim" {
		p.fatalf("bind: %q", got)
	}
	// The bind is registered as a receiver before its bind_resp is sent, so
	// the MO can go as soon as the script has read it.
	mo := smsc.MO{From: "+447700900999", To: "12345", Text: "hello from switchboard"}
	if err := sim.InjectMO("perl", mo); err != nil {
		t.Fatal(err)
	}
	lines := p.finish()

	const n = 5
	if last := lastLine(lines); last != fmt.Sprintf("OK submitted=%d receipts=%d mo=1 enquire_links=1", n, n) {
		p.fatalf("summary %q", last)
	}
	// The ids Net::SMPP read from submit_sm_resp are those the simulator
	// gave out, each for the text it was given for.
	idByText := map[string]string{}
	for _, l := range linesWith(lines, "SUBMITTED ") {
		id, text, _ := strings.Cut(strings.TrimPrefix(l, "SUBMITTED id="), " text=")
		idByText[text] = id
	}
	mu.Lock()
	got := slices.Clone(submits)
	mu.Unlock()
	if len(got) != n || len(idByText) != n {
		p.fatalf("simulator accepted %d submits, script saw %d ids", len(got), len(idByText))
	}
	for _, s := range got {
		text := string(s.Data)
		if s.SystemID != "perl" || s.Source != "Acme" || s.Dest != "447700900123" || s.DataCoding != 0 ||
			!s.Registered || s.Concat != nil || !strings.HasPrefix(text, "interop message ") {
			t.Errorf("simulator saw submit %+v", s)
		}
		if idByText[text] != s.MessageID {
			t.Errorf("%q: simulator answered id %q, Net::SMPP read %q", text, s.MessageID, idByText[text])
		}
	}
	if rs := linesWith(lines, "RECEIPT "); len(rs) != n {
		t.Errorf("%d receipts checked, want %d", len(rs), n)
	}
	wantMO := "MO from=447700900999/1/1 to=12345/0/1 esm=0 coding=0 text=hello from switchboard"
	if mos := linesWith(lines, "MO "); len(mos) != 1 || mos[0] != wantMO {
		t.Errorf("inbound seen by Net::SMPP: %q, want %q", mos, wantMO)
	}

	eventually(t, "the simulator to end the unbound session", func() bool { return sim.Stats().Binds == 0 })
	st := sim.Stats()
	receipts := int64(0)
	for _, v := range st.ReceiptsSent {
		receipts += v
	}
	if st.BindsTotal != 1 || st.BindsRefused != 0 || st.Submits != n || st.Throttled != 0 || st.Drops != 0 ||
		st.ReceiptsSent["DELIVRD"] != n || receipts != n || st.ReceiptsPending != 0 || st.InFlight != 0 ||
		st.MOSent != 1 || st.EnquireLinks != 1 || st.GenericNacks != 0 {
		t.Errorf("simulator stats %+v", st)
	}
}

// Our client against a Net::SMPP SMSC: binds, answers the SMSC's
// enquire_link, takes a two-part inbound message, submits a GSM 7-bit
// message, a two-part one and a UCS-2 one, gets the ids and receipts the
// Perl side made (with and without TLVs), keeps the link alive, and unbinds
// cleanly when stopped.
func TestInteropOurClientAgainstNetSMPPServer(t *testing.T) {
	requireNetSMPP(t)
	cfg := fastConfig("")
	cfg.Name = "perl"
	p := runPerl(t, "server.pl", cfg.SystemID, cfg.Password)
	port := strings.TrimPrefix(p.expect("LISTENING "), "LISTENING ")
	if _, err := strconv.Atoi(port); err != nil {
		p.fatalf("port %q", port)
	}
	cfg.Addr = net.JoinHostPort("127.0.0.1", port)
	cfg.EnquireLinkInterval = 20 * time.Millisecond // one at the first keep-alive tick
	cfg.ReconnectMin = time.Minute                  // a dropped connection shows as a failed test, not a retry
	cfg.ReconnectMax = time.Minute
	rs := newReceipts()
	cfg.OnReceipt = rs.handle
	var (
		mu      sync.Mutex
		inbound []switchboard.InboundPart
	)
	cfg.OnInbound = func(p switchboard.InboundPart, ack func(error)) {
		mu.Lock()
		inbound = append(inbound, p)
		mu.Unlock()
		ack(nil)
	}
	c, err := smpp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	p.expect("BOUND system_id=" + cfg.SystemID)
	eventually(t, "bound to Net::SMPP", c.Bound)

	texts := []string{
		"hello from switchboard",
		strings.Repeat("0123456789", 20), // 200 GSM 7-bit characters: two parts
		"Grüße ✓ from Go",                // ✓ is not in the GSM alphabet: UCS-2
	}
	wantIDs := [][]string{{"perl-1"}, {"perl-2", "perl-3"}, {"perl-4"}}
	for i, text := range texts {
		res, err := c.Submit(context.Background(), &smpp.Message{From: "Acme", To: "+447700900123", Text: text, Validity: time.Hour})
		if err != nil {
			p.fatalf("submit %d: %v", i+1, err)
		}
		if !slices.Equal(res.CarrierIDs, wantIDs[i]) {
			p.fatalf("submit %d: ids %q, want %q", i+1, res.CarrierIDs, wantIDs[i])
		}
	}
	const parts = 4
	for i := 1; i <= parts; i++ {
		id := fmt.Sprintf("perl-%d", i)
		eventually(t, "receipt "+id, func() bool { _, ok := rs.get(id); return ok })
		r, _ := rs.get(id)
		wantSub := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		if r.Status != switchboard.StatusDelivered || r.State != "DELIVRD" || r.Carrier != "perl" ||
			!r.SubmittedAt.Equal(wantSub) || !r.DoneAt.Equal(wantSub.Add(time.Minute)) {
			t.Errorf("receipt %s: %+v", id, r)
		}
	}
	if rs.count() != parts {
		t.Errorf("%d receipts, want %d", rs.count(), parts)
	}
	p.expect("ENQUIRE_LINK ")

	cancel() // drains, unbinds and closes
	<-done
	lines := p.finish()
	last := lastLine(lines)
	var submits, acked, moAcked, enquires int
	if _, err := fmt.Sscanf(last, "OK submits=%d receipts_acked=%d mo_acked=%d enquire_links=%d", &submits, &acked, &moAcked, &enquires); err != nil ||
		submits != parts || acked != parts || moAcked != 2 || enquires < 1 {
		p.fatalf("summary %q", last)
	}
	if len(linesWith(lines, "ENQUIRE_LINK_RESP ")) != 1 {
		p.fatalf("the SMSC's enquire_link was not answered once")
	}

	// The inbound parts as Net::SMPP encoded them (in order: one
	// connection), UDH taken apart.
	mu.Lock()
	got := slices.Clone(inbound)
	mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d inbound parts, want 2: %+v", len(got), got)
	}
	for i, want := range []string{"part one, ", "part two"} {
		part := got[i]
		if part.Carrier != "perl" || part.From != "+447700900999" || part.To != "12345" || part.DataCoding != 0 ||
			string(part.Payload) != want || part.Concat == nil ||
			*part.Concat != (switchboard.Concat{Ref: 0x42, Total: 2, Seq: uint8(i + 1)}) {
			t.Errorf("inbound part %d: %+v (concat %+v), want %q", i+1, part, part.Concat, want)
		}
	}

	// What Net::SMPP decoded from our submit_sm is what we meant to send.
	seen := linesWith(lines, "SUBMIT ")
	if len(seen) != parts {
		p.fatalf("%d submit_sm seen, want %d", len(seen), parts)
	}
	k := 0
	for i, text := range texts {
		seg, err := gsm.Split(text, 10)
		if err != nil {
			t.Fatal(err)
		}
		ref := ""
		for j, ud := range seg.Parts {
			kv := keyValues(seen[k])
			k++
			want := map[string]string{
				"src": "Acme/5/0", "dst": "447700900123/1/1", "esm": "0", "coding": strconv.Itoa(int(seg.Coding)),
				"reg": "1", "validity": "000000010000000R", "concat": "-", "ud": hex.EncodeToString(ud),
			}
			if len(seg.Parts) > 1 {
				want["esm"] = "64"
				if j == 0 { // the reference is the client's choice; the parts must share it
					ref, _, _ = strings.Cut(kv["concat"], ":")
				}
				want["concat"] = fmt.Sprintf("%s:%d:%d", ref, len(seg.Parts), j+1)
			}
			for key, v := range want {
				if kv[key] != v {
					t.Errorf("message %d part %d: Net::SMPP read %s=%q, want %q (line %q)", i+1, j+1, key, kv[key], v, seen[k-1])
				}
			}
		}
	}
	if st := c.Stats(); st.Binds != 1 || st.Reconnects != 0 || st.Submits != parts || st.Accepted != parts ||
		st.Receipts != parts || st.Inbound != 2 || st.BadDeliver != 0 || st.Lost != 0 || st.Timeouts != 0 {
		t.Errorf("client stats %+v", st)
	}
}
