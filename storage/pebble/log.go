package pebble

import (
	"fmt"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"
)

// pebbleLogger routes Pebble's log lines to zerolog: its informational
// lines (WAL recovery, format upgrades...) at debug level, so they stay
// quiet in production, and its errors at error level.
type pebbleLogger struct{ log zerolog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug().Str("component", "pebble").Msgf(format, args...)
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error().Str("component", "pebble").Msgf(format, args...)
}

// Fatalf is called when Pebble cannot go on (a failed commit, corruption).
// Pebble expects it not to return; a panic keeps the stack, which Pebble's
// own default (log.Fatalf) loses.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error().Str("component", "pebble").Msg(msg)
	panic("pebble: " + msg)
}

// eventListener reports the few Pebble events an operator acts on: errors in
// background work, a slow disk, write stalls (which stall Accept), and a
// single delete that met more than one version of its key.
func eventListener(log zerolog.Logger) *pebbledb.EventListener {
	return &pebbledb.EventListener{
		BackgroundError: func(err error) {
			log.Error().Err(err).Str("component", "pebble").Msg("background error")
		},
		DiskSlow: func(info pebbledb.DiskSlowInfo) {
			log.Warn().Str("component", "pebble").Msg(info.String())
		},
		WriteStallBegin: func(info pebbledb.WriteStallBeginInfo) {
			log.Warn().Str("component", "pebble").Str("reason", info.Reason).Msg("write stall")
		},
		PossibleAPIMisuse: func(info pebbledb.PossibleAPIMisuseInfo) {
			// A single delete that met two versions of a key means a key
			// this package removes with single deletes was set twice: the
			// older version may come back. That is a bug here, not on disk.
			ev := log.Debug()
			if info.Kind == pebbledb.NondeterministicSingleDelete {
				ev = log.Error()
			}
			if ev == nil {
				return // not logged at this level: spare formatting the key
			}
			ev.Str("component", "pebble").Msg(info.String())
		},
		WriteStallEnd: func() {
			log.Info().Str("component", "pebble").Msg("write stall ended")
		},
	}
}
