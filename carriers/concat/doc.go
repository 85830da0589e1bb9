// Package concat reassembles inbound (mobile-originated) concatenated SMS
// from the parts carriers deliver one deliver_sm at a time.
//
// The carrier layer (carriers/smpp) reports each part as a
// switchboard.InboundPart whose Concat comes from a UDH with an 8-bit or a
// 16-bit reference or from the SAR TLVs; by then the three look the same, so
// this package never needs to know which one a sender used.
//
// # Grouping
//
// A Reassembler groups parts by carrier, from, to, reference and total,
// the identity the Inbox contract in the root package gives a stored part.
// Two senders may use the same reference at once, and one sender several
// references; neither mixes parts. Within a group the first part with a
// sequence number is kept and later ones with it and the same user data
// are reported as duplicates, because an SMSC that did not see our
// deliver_sm_resp sends a part again. A part with a sequence number the
// group holds with other user data is a new message whose sender reused
// the reference while the group waited for a part: the group is given up
// as partial (Displace, or Added.Evicted) and the part starts a new one.
// A new message whose first parts fill only the group's gaps cannot be
// told from those gaps arriving late, and joins it.
// A group is complete when every sequence number from 1 to the total is
// present; it then leaves the reassembler.
//
// A group that stays incomplete leaves it as a partial message: when its
// first part (the one with the earliest ReceivedAt) is older than the
// timeout (Expire), or to make room (Add reports it in Added.Evicted):
// when Limits.Groups groups are pending and a part of a new group
// arrives, the oldest group is given up first; when the parts held cost
// more than Limits.Bytes, the oldest groups are given up until they do
// not, the group the part joined among them if it is the oldest. Nothing
// leaves silently: every part Add accepts
// without calling it a duplicate comes back in exactly one Assembled's
// Parts.
//
// Ages come from the parts' ReceivedAt, never from the clock, so parts
// read back from storage after a restart can be fed to Add again and
// expire when they would have without the restart.
//
// SMPP delivers at least once, so a part can arrive again after its
// message completed (the SMSC lost our acknowledgement). For the timeout
// after completion the reassembler remembers a finished message's
// payloads: a part with its key, sequence number and identical payload is
// a duplicate. A part with the same reference but other text starts a new
// message, since senders reuse references.
//
// # Decoding
//
// The parts' payloads are joined in sequence order and then decoded, so an
// escape pair or a UTF-16 surrogate pair that a sender cut between two
// parts decodes as the one character it is. Decode describes the codings.
package concat
