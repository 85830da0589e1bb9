package actors

import (
	"context"
	"log/slog"

	"github.com/rs/zerolog"
)

// slogToZerolog forwards protoactor's slog records to our zerolog logger,
// so the process writes one log format. protoactor's info-level chatter
// (actor system started, dead letters of stopped futures) is kept at debug.
type slogToZerolog struct {
	log   zerolog.Logger
	attrs []slog.Attr
}

func (h *slogToZerolog) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.GetLevel() <= zerologLevel(l)
}

func (h *slogToZerolog) Handle(_ context.Context, r slog.Record) error {
	ev := h.log.WithLevel(zerologLevel(r.Level)).Str("component", "protoactor")
	add := func(a slog.Attr) bool {
		ev = ev.Str(a.Key, a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	ev.Msg(r.Message)
	return nil
}

func (h *slogToZerolog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &slogToZerolog{log: h.log, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...)}
}

func (h *slogToZerolog) WithGroup(string) slog.Handler { return h }

func zerologLevel(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		return zerolog.ErrorLevel
	case l >= slog.LevelWarn:
		return zerolog.WarnLevel
	default:
		return zerolog.DebugLevel
	}
}
