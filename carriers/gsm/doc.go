// Package gsm encodes SMS text for carriers and cuts it into parts, following
// 3GPP TS 23.038 (alphabets) and TS 23.040 (concatenated short messages).
//
// # Choosing the encoding
//
// A short message has one data coding for all of its text, so Split sends a
// text in the GSM 7-bit default alphabet (GSM7) only when every rune is in the
// default table or in its extension table; a single other rune makes the
// whole text UCS2. Extension characters (form feed ^ { } \ [ ~ ] | €) are sent
// as the escape septet 0x1B and a code, and so cost two septets each.
//
// Code 0x09 is the capital Ç, as in the spec; a small ç is not in the
// alphabet, because sending it as 0x09 would show the reader a capital.
// National language shift tables (TS 23.038 §6.2.1.2.4) are not used: they
// need a UDH element per part and are missing on many handsets.
//
// UCS2 is written as UTF-16BE: a rune above U+FFFF (most emoji) takes a
// surrogate pair, which is what handsets send and display even though the
// spec's name promises only the Basic Multilingual Plane.
//
// # Lengths
//
// A short message carries 140 octets of user data: 160 septets, or 70 UTF-16
// code units. A longer text is sent as concatenated parts, each led by the
// 6-octet UDH of AppendConcatUDH, which leaves 153 septets (the UDH and one
// fill bit take 7 septet positions) or 67 units. Parts are filled greedily,
// but an escape pair or a surrogate pair is never cut between two parts: the
// part ends one unit short instead, because a receiver decodes each part on
// its own and would show the halves as two wrong characters. That is why a
// text's number of parts is not simply its length divided by 153 or 67, and
// why Count walks the text instead of dividing.
//
// # Representation
//
// GSM7 data is unpacked, one septet per octet, the form SMPP carries with
// data_coding 0. Pack7 and Unpack7 convert to and from the packed form of
// TP-User-Data. When the last octet of packed data has 7 spare bits, Pack7
// fills them with CR, as TS 23.038 §6.1.2.3.1 requires, so that a receiver
// that ignores the length does not show a trailing '@'.
//
// # Decoding
//
// Decoding handles what carriers deliver, so it is lenient where the spec
// tells a receiver how to display odd input, and strict only where the data
// cannot be the coding it claims:
//
//   - 0x1B and a code missing from the extension table decode as the default
//     table's character for that code, the fallback TS 23.038 prescribes;
//     0x1B 0x1B, reserved for a future table, decodes as a space.
//   - A lone 0x1B at the very end is dropped. It is a shift, not a
//     character, and the usual cause is a sender that cut an escape pair
//     between parts: decode the joined septets of all parts to recover it.
//   - A septet above 0x7F is an error: the data is not unpacked GSM7.
//   - UCS2 of odd length is an error; an unpaired surrogate decodes as
//     U+FFFD.
//   - data_coding 0x03 (Latin-1) and 0x01 (IA5, the ASCII of ITU-T T.50)
//     decode as ISO-8859-1, octet n becoming U+00nn. IA5 is 7-bit, but some
//     SMSCs send Latin-1 under that coding, and ISO-8859-1 reads both without
//     loss.
//
// # Errors
//
// Split and SplitInto return *switchboard.Error with code EINVALIDBODY or
// ETOOLONG, because their input is a client's message. The other functions
// return plain errors, which switchboard.ErrorCode reads as EINTERNAL: they
// mean bad data from a carrier or a bug in the caller, not a client mistake.
package gsm
