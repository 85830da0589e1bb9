// Package switchboard holds the domain of the Switchboard SMS gateway: the
// message, its statuses and events, carrier receipts and inbound messages,
// the error type with machine codes, and the interfaces storage backends
// implement. It imports the standard library only; every dependency lives in
// a sub-package named after it (carriers/smpp, storage/pebble, http, ...).
package switchboard
