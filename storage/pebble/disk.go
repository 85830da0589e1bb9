package pebble

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
)

// The disk. Pebble fails a write it cannot make (and the store then fails
// for good, commit.go), so the store stops taking new messages before the
// disk is full: below a free-space threshold (Options.MinFree) Accept,
// AcceptInbound and AddInboundPart fail with EUNAVAILABLE, and Writable
// says why, while status records, finished callbacks and retention go on,
// so what was accepted still reaches its end and space is freed. When
// space returns, intake resumes. The free space is read at most once per
// diskCheckInterval (by Options.Now), on the request that finds the last
// reading stale: a statfs, not one per request.

// diskCheckInterval is how long a free-space reading is trusted.
const diskCheckInterval = time.Second

// Default threshold: the smaller of these.
const (
	defaultMinFreeBytes   = 1 << 30
	defaultMinFreePercent = 5
)

// diskGuard tracks whether the disk under the store is nearly full.
type diskGuard struct {
	fs      vfs.FS
	dir     string
	now     func() time.Time
	log     zerolog.Logger
	bytes   int64   // Options.MinFree
	percent float64 // Options.MinFreePercent

	mu        sync.Mutex // held by the one request that reads the disk
	checkedAt atomic.Int64
	low       atomic.Pointer[error] // nil: enough space (or unknown)
	warned    bool                  // the disk's usage could not be read
}

func newDiskGuard(fs vfs.FS, dir string, o *Options) *diskGuard {
	return &diskGuard{fs: fs, dir: dir, now: o.Now, log: o.Logger, bytes: o.MinFree, percent: o.MinFreePercent}
}

// check returns nil, or EUNAVAILABLE while free space is below the
// threshold.
func (d *diskGuard) check() error {
	if d.bytes < 0 {
		return nil
	}
	now := d.now()
	// A clock stepped back reads again at once, rather than after the step.
	if since := now.UnixNano() - d.checkedAt.Load(); (since >= int64(diskCheckInterval) || since < 0) && d.mu.TryLock() {
		d.refresh(now)
		d.mu.Unlock()
	}
	if err := d.low.Load(); err != nil {
		return *err
	}
	return nil
}

// refresh reads the disk's usage and logs a change of state, once.
func (d *diskGuard) refresh(now time.Time) {
	d.checkedAt.Store(now.UnixNano())
	u, err := d.fs.GetDiskUsage(d.dir)
	if err != nil {
		if !d.warned {
			d.warned = true
			level := d.log.Warn()
			if errors.Is(err, vfs.ErrUnsupported) {
				level = d.log.Debug()
			}
			level.Err(err).Msg("pebble: cannot read free disk space; storage.min_free is not enforced")
		}
		return
	}
	min := d.threshold(u.TotalBytes)
	wasLow := d.low.Load() != nil
	if u.AvailBytes >= min {
		if wasLow {
			d.low.Store(nil)
			d.log.Info().Str("free", formatBytes(u.AvailBytes)).Str("min_free", formatBytes(min)).
				Msg("pebble: disk space is back above storage.min_free; accepting new messages again")
		}
		return
	}
	if !wasLow {
		d.log.Error().Str("free", formatBytes(u.AvailBytes)).Str("min_free", formatBytes(min)).
			Msg("pebble: disk nearly full; refusing new messages until space is freed (messages already accepted go on)")
	}
	err = sb.Errorf(sb.EUNAVAILABLE, "disk nearly full: %s free, below storage.min_free (%s)",
		formatBytes(u.AvailBytes), formatBytes(min))
	d.low.Store(&err)
}

// threshold is the free space below which new messages are refused, on a
// disk of total bytes.
func (d *diskGuard) threshold(total uint64) uint64 {
	switch {
	case d.bytes > 0:
		return uint64(d.bytes)
	case d.percent > 0:
		return uint64(float64(total) * d.percent / 100)
	}
	return min(defaultMinFreeBytes, total*defaultMinFreePercent/100)
}

// formatBytes writes n in the largest binary unit it has at least one of,
// as the configuration writes sizes: 512MiB, 1.5GiB.
func formatBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), ".0") + units[i]
}
