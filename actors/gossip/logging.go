package gossip

import (
	"strings"

	"github.com/rs/zerolog"
)

// logWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// zerolog events at the matching level.
type logWriter struct{ log zerolog.Logger }

var logLevels = []struct {
	prefix string
	level  zerolog.Level
}{
	{"[DEBUG] ", zerolog.DebugLevel},
	{"[INFO] ", zerolog.InfoLevel},
	{"[WARN] ", zerolog.WarnLevel},
	{"[ERR] ", zerolog.ErrorLevel},
	{"[ERROR] ", zerolog.ErrorLevel},
}

func (w logWriter) Write(b []byte) (int, error) {
	line := strings.TrimSpace(string(b))
	level := zerolog.InfoLevel
	for _, l := range logLevels {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			line, level = rest, l.level
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	w.log.WithLevel(level).Msg(line)
	return len(b), nil
}
