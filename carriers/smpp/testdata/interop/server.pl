#!/usr/bin/perl
# Net::SMPP (Debian libnet-smpp-perl) as an SMSC for Switchboard's client,
# run by TestInteropOurClientAgainstNetSMPPServer.
#
#   perl server.pl SYSTEM_ID PASSWORD
#
# Listens on 127.0.0.1, a port the kernel picks, and prints
# "LISTENING <port>". It serves one connection: a bind_transceiver with
# the given credentials, then each submit_sm is answered with message id
# perl-<n> and followed by a delivery receipt (esm_class 0x04) that must be
# acknowledged with deliver_sm_resp OK. Receipts for odd n carry the
# receipted_message_id and message_state TLVs as well as the text; those for
# even n only the text, as many SMSCs send them. Right after the bind it
# sends an enquire_link of its own and an inbound message in two parts
# (8-bit concatenation UDH, reference 0x42), and expects their responses.
# enquire_link from the client is answered. On unbind it replies
# unbind_resp, expects the client to close the connection, and prints
# "OK submits=N receipts_acked=N mo_acked=2 enquire_links=M".
# Each event is printed as a line; any failure prints "FAIL ..." and exits
# non-zero.
#
# Only Net::SMPP and core Perl are used.
use strict;
use warnings;
use IO::Select;
use Net::SMPP;

my $TIMEOUT = 20; # seconds for the whole run

$| = 1;
my $deadline = time + $TIMEOUT;

sub fail {
	my ($msg) = @_;
	print "FAIL $msg\n";
	print STDERR "server.pl: $msg\n";
	exit 1;
}

# A backstop only: Net::SMPP's read_hard() localises $SIG{ALRM}, so an
# alarm during a blocking read_pdu is swallowed (and an enquire_link sent).
# Reads are bounded by next_pdu's select instead.
$SIG{ALRM} = sub { print "FAIL timed out after ${TIMEOUT}s\n"; exit 2 };
alarm $TIMEOUT + 5;

$SIG{__WARN__} = sub { fail("warning: $_[0]") };

@ARGV == 2 or fail('usage: server.pl SYSTEM_ID PASSWORD');
my ($want_system_id, $want_password) = @ARGV;

sub next_pdu {
	my ($smpp, $what) = @_;
	my $left = $deadline - time;
	fail("timed out waiting for $what") if $left <= 0 || !IO::Select->new($smpp)->can_read($left);
	my $pdu = $smpp->read_pdu() or fail("connection ended while waiting for $what");
	return $pdu;
}

sub cmd_name { sprintf '0x%08x', $_[0] }

# port => 0 lets the kernel choose. timeout is also accept()'s timeout
# (IO::Socket's), 5 s by default. async => 1 is inherited by the accepted
# connection: deliver_sm must not wait for its response, or the submits
# read meanwhile would be discarded.
my $listener = Net::SMPP->new_listen('127.0.0.1', port => 0, timeout => $TIMEOUT, async => 1,
	system_id => 'perlsmsc')
	or fail("listen: $!");
print 'LISTENING ', $listener->sockport, "\n";
my $smpp = $listener->accept() or fail("accept: $!");
$listener->close();

# excerpt is the receipt's text: field: the start of the user data, in
# characters every stack reads alike.
sub excerpt {
	my ($ud, $coding) = @_;
	my @chars = $coding == 8 ? unpack('n*', $ud) : unpack('C*', $ud);
	my $s = join '', map { my $c = chr $_; $c =~ /[A-Za-z0-9 ]/ ? $c : '?' } @chars;
	return substr($s, 0, 20);
}

my ($bound, $submits, $acked, $mo_acked, $enquires) = (0, 0, 0, 0, 0);
my %pending; # deliver_sm seq => message id, or "mo" for an inbound part
my $enquire_seq; # our enquire_link, until answered
while (1) {
	my $pdu = next_pdu($smpp, $bound ? 'the next request' : 'bind');
	my $cmd = $pdu->{cmd};
	if ($cmd == 0x00000009) { # bind_transceiver
		fail('second bind on one connection') if $bound;
		if ($pdu->{system_id} ne $want_system_id || $pdu->{password} ne $want_password) {
			$smpp->bind_transceiver_resp(seq => $pdu->{seq}, status => 0x0e);
			fail("bind as $pdu->{system_id}/$pdu->{password}, want $want_system_id/$want_password");
		}
		$pdu->{interface_version} == 0x34 or fail("interface_version $pdu->{interface_version}, want 0x34");
		$smpp->bind_transceiver_resp(seq => $pdu->{seq}, system_id => 'perlsmsc');
		$bound = 1;
		print "BOUND system_id=$pdu->{system_id}\n";
		$enquire_seq = $smpp->enquire_link();
		for my $part ([1, 'part one, '], [2, 'part two']) {
			my $seq = $smpp->deliver_sm(
				source_addr_ton => 1, source_addr_npi => 1, source_addr => '447700900999',
				dest_addr_ton => 0, dest_addr_npi => 1, destination_addr => '12345',
				esm_class => 0x40, data_coding => 0,
				short_message => pack('C6', 5, 0, 3, 0x42, 2, $part->[0]) . $part->[1]);
			$pending{$seq} = 'mo';
		}
	} elsif ($cmd == 0x00000001 || $cmd == 0x00000002) {
		fail('expected bind_transceiver, got ' . cmd_name($cmd));
	} elsif ($cmd == 0x00000004) { # submit_sm
		$bound or fail('submit_sm before bind');
		my $id = 'perl-' . ++$submits;
		$smpp->submit_sm_resp(seq => $pdu->{seq}, message_id => $id);
		my ($sm, $ud, $concat) = ($pdu->{short_message}, $pdu->{short_message}, '-');
		if ($pdu->{esm_class} & 0x40) { # UDHI: the UDH precedes the user data
			my $udhl = unpack 'C', $sm;
			length($sm) > $udhl or fail("$id: UDH length $udhl beyond short_message");
			my $udh = substr($sm, 1, $udhl);
			$ud = substr($sm, 1 + $udhl);
			my ($iei, $iel, @v) = unpack 'CCC*', $udh;
			if ($iei == 0x00 && $iel == 3) {
				$concat = "$v[0]:$v[1]:$v[2]";
			} elsif ($iei == 0x08 && $iel == 4) {
				$concat = ($v[0] << 8 | $v[1]) . ":$v[2]:$v[3]";
			} else {
				fail("$id: UDH without a concatenation element: " . unpack('H*', $udh));
			}
		}
		printf "SUBMIT id=%s src=%s/%d/%d dst=%s/%d/%d esm=%d coding=%d reg=%d validity=%s concat=%s ud=%s\n",
			$id, $pdu->{source_addr}, $pdu->{source_addr_ton}, $pdu->{source_addr_npi},
			$pdu->{destination_addr}, $pdu->{dest_addr_ton}, $pdu->{dest_addr_npi},
			$pdu->{esm_class}, $pdu->{data_coding}, $pdu->{registered_delivery},
			$pdu->{validity_period} eq '' ? '-' : $pdu->{validity_period}, $concat, unpack('H*', $ud);
		next unless $pdu->{registered_delivery} & 0x03;
		my $text = "id:$id sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 stat:DELIVRD err:000 text:"
			. excerpt($ud, $pdu->{data_coding});
		# TLVs are sent as given: receipted_message_id is a C-octet string,
		# so its NUL is added by hand.
		my @tlv = $submits % 2 ? (receipted_message_id => "$id\0", message_state => pack('C', 2)) : ();
		my $seq = $smpp->deliver_sm(
			source_addr_ton => $pdu->{dest_addr_ton}, source_addr_npi => $pdu->{dest_addr_npi},
			source_addr => $pdu->{destination_addr},
			dest_addr_ton => $pdu->{source_addr_ton}, dest_addr_npi => $pdu->{source_addr_npi},
			destination_addr => $pdu->{source_addr},
			esm_class => 0x04, data_coding => 0, short_message => $text, @tlv);
		$pending{$seq} = $id;
	} elsif ($cmd == 0x80000005) { # deliver_sm_resp
		my $id = delete $pending{$pdu->{seq}};
		defined $id or fail("deliver_sm_resp for unknown seq $pdu->{seq}");
		$pdu->{status} == 0 or fail("deliver_sm for $id refused: status $pdu->{status}");
		if ($id eq 'mo') {
			$mo_acked++;
			print "MO_ACKED seq=$pdu->{seq}\n";
		} else {
			$acked++;
			print "RECEIPT_ACKED id=$id\n";
		}
	} elsif ($cmd == 0x80000015) { # enquire_link_resp
		defined $enquire_seq && $pdu->{seq} == $enquire_seq or fail("enquire_link_resp for seq $pdu->{seq}");
		$pdu->{status} == 0 or fail("enquire_link_resp status $pdu->{status}");
		undef $enquire_seq;
		print "ENQUIRE_LINK_RESP seq=$pdu->{seq}\n";
	} elsif ($cmd == 0x00000015) { # enquire_link
		$smpp->enquire_link_resp(seq => $pdu->{seq});
		$enquires++;
		print "ENQUIRE_LINK seq=$pdu->{seq}\n";
	} elsif ($cmd == 0x00000006) { # unbind
		$smpp->unbind_resp(seq => $pdu->{seq});
		print "UNBOUND\n";
		last;
	} elsif ($cmd == 0x80000000) {
		fail("generic_nack status $pdu->{status} for seq $pdu->{seq}");
	} else {
		fail('unexpected PDU ' . cmd_name($cmd));
	}
}

fail(scalar(keys %pending) . ' deliver_sm unacknowledged at unbind') if %pending;
fail('our enquire_link unanswered at unbind') if defined $enquire_seq;
$submits > 0 or fail('no submit_sm before unbind');

# The client closes the connection once it has the unbind_resp. read_pdu
# warns "premature eof" at the end of the stream, which is what is wanted.
{
	local $SIG{__WARN__} = sub { };
	my $left = $deadline - time;
	fail('client did not close the connection after unbind_resp')
		if $left <= 0 || !IO::Select->new($smpp)->can_read($left);
	my $extra = $smpp->read_pdu();
	fail('PDU ' . cmd_name($extra->{cmd}) . ' after unbind') if $extra;
}
$smpp->close();

print "OK submits=$submits receipts_acked=$acked mo_acked=$mo_acked enquire_links=$enquires\n";
exit 0;
