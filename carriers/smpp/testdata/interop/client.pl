#!/usr/bin/perl
# Net::SMPP (Debian libnet-smpp-perl) as an ESME against Switchboard's SMSC
# simulator, run by TestInteropNetSMPPClientAgainstSimulator.
#
#   perl client.pl HOST PORT
#
# Binds transceiver as perl/secret, prints "BOUND ...", submits 5 messages
# with a receipt requested, sends an enquire_link, and reads until it has a
# submit_sm_resp for each submit, a receipt for each message id (answering
# deliver_sm_resp), one inbound message (which the Go test injects after
# BOUND) and the enquire_link_resp. It checks them, unbinds, checks that
# the SMSC closes the connection, and prints one line per event and a
# summary "OK ...". Any failure prints "FAIL ..." and exits non-zero.
#
# Only Net::SMPP and core Perl are used.
use strict;
use warnings;
use IO::Select;
use Net::SMPP;

my $TIMEOUT = 20; # seconds for the whole run
my $MESSAGES = 5;

$| = 1;
my $deadline = time + $TIMEOUT;

sub fail {
	my ($msg) = @_;
	print "FAIL $msg\n";
	print STDERR "client.pl: $msg\n";
	exit 1;
}

# A backstop only: Net::SMPP's read_hard() localises $SIG{ALRM} (for its
# enquire_interval option), so an alarm that fires while read_pdu blocks
# never reaches this handler; it is swallowed and an enquire_link is sent
# instead. Reads are therefore bounded by next_pdu's select.
$SIG{ALRM} = sub { print "FAIL timed out after ${TIMEOUT}s\n"; exit 2 };
alarm $TIMEOUT + 5;

# Any warning from Net::SMPP (an unknown TLV tag, a short read) means the
# two stacks disagree about the wire format.
$SIG{__WARN__} = sub { fail("warning: $_[0]") };

@ARGV == 2 or fail("usage: client.pl HOST PORT");
my ($host, $port) = @ARGV;

# next_pdu reads one PDU, waiting at most until the deadline.
sub next_pdu {
	my ($smpp, $what) = @_;
	my $left = $deadline - time;
	fail("timed out waiting for $what") if $left <= 0 || !IO::Select->new($smpp)->can_read($left);
	my $pdu = $smpp->read_pdu() or fail("connection ended while waiting for $what");
	return $pdu;
}

sub cmd_name { sprintf '0x%08x', $_[0] }

# async => 1: without it every request waits for its response in
# wait_pdu(), which silently discards whatever else arrives meanwhile (such
# as receipts), and the bind_resp must then be read by hand.
my $smpp = Net::SMPP->new_transceiver($host, port => $port, timeout => 5, async => 1,
	system_id => 'perl', password => 'secret')
	or fail("connect to $host:$port: $!");
my $bind = next_pdu($smpp, 'bind_transceiver_resp');
$bind->{cmd} == 0x80000009 or fail('expected bind_transceiver_resp, got ' . cmd_name($bind->{cmd}));
$bind->{status} == 0 or fail("bind refused: status $bind->{status}");
print "BOUND system_id=$bind->{system_id}\n";

my %text_by_seq; # submit_sm sequence number => text
for my $n (1 .. $MESSAGES) {
	my $text = "interop message $n";
	my $seq = $smpp->submit_sm(
		source_addr_ton => 5, source_addr_npi => 0, source_addr => 'Acme',
		dest_addr_ton => 1, dest_addr_npi => 1, destination_addr => '447700900123',
		registered_delivery => 1, data_coding => 0, short_message => $text);
	$text_by_seq{$seq} = $text;
}
my $enquire_seq = $smpp->enquire_link();

my (%text_by_id, @receipts, @mo);
my $enquire_resp = 0;
while (keys(%text_by_id) < $MESSAGES || @receipts < $MESSAGES || @mo < 1 || !$enquire_resp) {
	my $pdu = next_pdu($smpp, sprintf('responses (%d), receipts (%d), inbound (%d), enquire_link_resp (%d)',
		scalar(keys %text_by_id), scalar(@receipts), scalar(@mo), $enquire_resp));
	my $cmd = $pdu->{cmd};
	if ($cmd == 0x80000004) { # submit_sm_resp
		my $text = delete $text_by_seq{$pdu->{seq}};
		defined $text or fail("submit_sm_resp for unknown or answered seq $pdu->{seq}");
		$pdu->{status} == 0 or fail("submit_sm refused: status $pdu->{status}");
		my $id = $pdu->{message_id};
		fail("empty or duplicate message_id '$id'") if $id eq '' || exists $text_by_id{$id};
		$text_by_id{$id} = $text;
		print "SUBMITTED id=$id text=$text\n";
	} elsif ($cmd == 0x00000005) { # deliver_sm
		# message_id must be passed: deliver_sm_resp croaks without it.
		$smpp->deliver_sm_resp(seq => $pdu->{seq}, message_id => '');
		if (($pdu->{esm_class} & 0x3c) == 0x04) {
			push @receipts, $pdu;
		} else {
			push @mo, $pdu;
		}
	} elsif ($cmd == 0x80000015) { # enquire_link_resp
		$pdu->{seq} == $enquire_seq or fail("enquire_link_resp for seq $pdu->{seq}, sent $enquire_seq");
		$pdu->{status} == 0 or fail("enquire_link_resp status $pdu->{status}");
		$enquire_resp++;
	} elsif ($cmd == 0x00000015) { # enquire_link from the SMSC
		$smpp->enquire_link_resp(seq => $pdu->{seq});
	} elsif ($cmd == 0x80000000) {
		fail("generic_nack status $pdu->{status} for seq $pdu->{seq}");
	} else {
		fail('unexpected PDU ' . cmd_name($cmd));
	}
}

# Receipts are checked once every response is in: SMPP does not order a
# receipt after its submit_sm_resp, though the simulator does.
my %receipted;
for my $r (@receipts) {
	# TLV values are returned raw: the C-octet string keeps its NUL.
	my $tlv_id = $r->{receipted_message_id};
	defined $tlv_id or fail('receipt without receipted_message_id TLV');
	$tlv_id =~ s/\0\z// or fail("receipted_message_id '$tlv_id' is not NUL-terminated");
	my $state = $r->{message_state};
	defined $state && length($state) == 1 or fail('receipt without a 1-octet message_state TLV');
	$state = unpack 'C', $state;
	$r->{short_message} =~ /\Aid:(\S+) sub:(\d{3}) dlvrd:(\d{3}) submit date:(\d{10}) done date:(\d{10}) stat:(\w{7}) err:(\d{3}) text:(.*)\z/s
		or fail("receipt text not in the usual format: '$r->{short_message}'");
	my ($id, $stat, $err, $excerpt) = ($1, $6, $7, $8);
	$id eq $tlv_id or fail("receipt text id $id, receipted_message_id $tlv_id");
	my $text = $text_by_id{$id};
	defined $text or fail("receipt for id $id, which no submit_sm_resp carried");
	fail("second receipt for $id") if $receipted{$id}++;
	$stat eq 'DELIVRD' && $err eq '000' && $state == 2
		or fail("receipt for $id: stat:$stat err:$err message_state $state, want DELIVRD 000 2");
	$excerpt eq substr($text, 0, 20) or fail("receipt for $id has text:'$excerpt', submitted '$text'");
	$r->{source_addr} eq '447700900123' && $r->{source_addr_ton} == 1 && $r->{source_addr_npi} == 1
		or fail("receipt for $id from $r->{source_addr_ton}/$r->{source_addr_npi}/$r->{source_addr}");
	$r->{destination_addr} eq 'Acme' && $r->{dest_addr_ton} == 5 && $r->{dest_addr_npi} == 0
		or fail("receipt for $id to $r->{dest_addr_ton}/$r->{dest_addr_npi}/$r->{destination_addr}");
	print "RECEIPT id=$id stat=$stat message_state=$state\n";
}
@mo == 1 or fail(scalar(@mo) . ' inbound messages, want 1');
for my $m (@mo) {
	printf "MO from=%s/%d/%d to=%s/%d/%d esm=%d coding=%d text=%s\n",
		$m->{source_addr}, $m->{source_addr_ton}, $m->{source_addr_npi},
		$m->{destination_addr}, $m->{dest_addr_ton}, $m->{dest_addr_npi},
		$m->{esm_class}, $m->{data_coding}, $m->{short_message};
}

my $unbind_seq = $smpp->unbind();
my $u = next_pdu($smpp, 'unbind_resp');
$u->{cmd} == 0x80000006 or fail('expected unbind_resp, got ' . cmd_name($u->{cmd}) . ' (something arrived after everything expected)');
$u->{seq} == $unbind_seq && $u->{status} == 0 or fail("unbind_resp seq $u->{seq} status $u->{status}");

# After unbind_resp the SMSC must close the connection. read_pdu warns
# "premature eof" at the end of the stream, which is what is wanted here.
{
	local $SIG{__WARN__} = sub { };
	my $left = $deadline - time;
	fail('SMSC did not close the connection after unbind_resp')
		if $left <= 0 || !IO::Select->new($smpp)->can_read($left);
	my $extra = $smpp->read_pdu();
	fail('PDU ' . cmd_name($extra->{cmd}) . ' after unbind_resp') if $extra;
}
$smpp->close();

printf "OK submitted=%d receipts=%d mo=%d enquire_links=%d\n",
	scalar(keys %text_by_id), scalar(keys %receipted), scalar(@mo), $enquire_resp;
exit 0;
