package smsc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard/carriers/receipt"
)

// netSMPPClient is an ESME written with Perl's Net::SMPP (Debian
// libnet-smpp-perl), an implementation independent of gosmpp: it binds,
// submits with a receipt requested, acknowledges the receipt and unbinds,
// printing what it saw.
const netSMPPClient = `
use strict; use warnings;
use Net::SMPP;
my ($host, $port) = split /:/, $ARGV[0];
my $smpp = Net::SMPP->new_transceiver($host, port => $port, system_id => 'perl',
	password => 'pw', async => 1) or die "connect: $!";
my $bind = $smpp->read_pdu() or die "no bind_resp";
print "bind status=$bind->{status} system_id=$bind->{system_id}\n";
$smpp->submit_sm(source_addr => 'Acme', destination_addr => '447700900123',
	short_message => 'hello from perl', registered_delivery => 1);
for (1..2) {
	my $pdu = $smpp->read_pdu() or die "no pdu";
	if ($pdu->{cmd} == 0x80000004) {
		print "resp status=$pdu->{status} id=$pdu->{message_id}\n";
	} elsif ($pdu->{cmd} == 0x00000005) {
		printf "receipt esm=%d state=%d rid=%s text=%s\n", $pdu->{esm_class},
			unpack('C', $pdu->{message_state}), $pdu->{receipted_message_id}, $pdu->{short_message};
		$smpp->deliver_sm_resp(seq => $pdu->{seq}, message_id => '');
	}
}
$smpp->unbind();
my $u = $smpp->read_pdu() or die "no unbind_resp";
printf "unbind_resp 0x%08x\n", $u->{cmd};
`

func TestNetSMPPClient(t *testing.T) {
	if err := exec.Command("perl", "-MNet::SMPP", "-e1").Run(); err != nil {
		t.Skip("Net::SMPP not installed (Debian libnet-smpp-perl):", err)
	}
	s := listen(t, Config{IDFormat: receipt.IDHexResp})
	script := filepath.Join(t.TempDir(), "esme.pl")
	if err := os.WriteFile(script, []byte(netSMPPClient), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "perl", script, s.Addr()).CombinedOutput()
	if err != nil {
		t.Fatalf("perl client: %v\n%s", err, out)
	}
	text := string(out)
	var respID, rid string
	for _, line := range strings.Split(text, "\n") {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "id="); ok && strings.HasPrefix(line, "resp ") {
				respID = v
			}
			if v, ok := strings.CutPrefix(f, "rid="); ok {
				rid = strings.TrimRight(v, "\x00")
			}
		}
	}
	for _, want := range []string{"bind status=0 system_id=smscsim", "resp status=0", "receipt esm=4 state=2",
		"stat:DELIVRD", "text:hello from perl", "unbind_resp 0x80000006"} {
		if !strings.Contains(text, want) {
			t.Errorf("Net::SMPP client output lacks %q:\n%s", want, text)
		}
	}
	if respID == "" || !receipt.IDHexResp.Match(respID, rid) {
		t.Errorf("resp id %q and receipted id %q do not match", respID, rid)
	}
	eventually(t, "receipt acknowledged", func() bool { return s.Stats().ReceiptsSent["DELIVRD"] == 1 })
}
