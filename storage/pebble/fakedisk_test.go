package pebble_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// fakeDiskFS is a fake disk for tests: a vfs.FS (an in-memory one, or any
// other) that reports the free space a test sets, and fails the syncs of
// write-ahead log files once a test has allowed some.
type fakeDiskFS struct {
	vfs.FS
	avail, total atomic.Uint64 // reported by GetDiskUsage; total 0: unsupported
	// With limited, syncsLeft is how many WAL syncs still succeed.
	limited   atomic.Bool
	syncsLeft atomic.Int64
	// failDelay holds a failing sync back this long, so a test can look
	// at the store while the failing batch is visible but not synced.
	failDelay time.Duration
	// While gate holds a channel, a WAL sync says so on entered and then
	// waits until that channel is closed.
	gate    atomic.Pointer[chan struct{}]
	entered chan struct{}
}

var errFakeSync = errors.New("fake disk: sync failed")

func newFakeDisk(fs vfs.FS) *fakeDiskFS {
	return &fakeDiskFS{FS: fs, entered: make(chan struct{}, 1)}
}

// failSyncsAfter lets n more WAL syncs succeed and fails every one after.
func (d *fakeDiskFS) failSyncsAfter(n int64) {
	d.syncsLeft.Store(n)
	d.limited.Store(true)
}

func (d *fakeDiskFS) setFree(avail, total uint64) {
	d.avail.Store(avail)
	d.total.Store(total)
}

func (d *fakeDiskFS) GetDiskUsage(string) (vfs.DiskUsage, error) {
	total := d.total.Load()
	if total == 0 {
		return vfs.DiskUsage{}, vfs.ErrUnsupported
	}
	avail := d.avail.Load()
	return vfs.DiskUsage{AvailBytes: avail, TotalBytes: total, UsedBytes: total - avail}, nil
}

func (d *fakeDiskFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := d.FS.Create(name, category)
	return d.wrap(name, f), err
}

func (d *fakeDiskFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := d.FS.OpenReadWrite(name, category, opts...)
	return d.wrap(name, f), err
}

func (d *fakeDiskFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := d.FS.ReuseForWrite(oldname, newname, category)
	return d.wrap(newname, f), err
}

func (d *fakeDiskFS) Unwrap() vfs.FS { return d.FS }

// wrap gives WAL files (*.log) the fake's syncs.
func (d *fakeDiskFS) wrap(name string, f vfs.File) vfs.File {
	if f == nil || !strings.HasSuffix(name, ".log") {
		return f
	}
	return &fakeDiskFile{File: f, d: d}
}

type fakeDiskFile struct {
	vfs.File
	d *fakeDiskFS
}

// sync lets a sync through while syncs are left, else fails it.
func (f *fakeDiskFile) sync(real func() error) error {
	if gate := f.d.gate.Load(); gate != nil {
		select {
		case f.d.entered <- struct{}{}:
		default:
		}
		<-*gate
	}
	if !f.d.limited.Load() || f.d.syncsLeft.Add(-1) >= 0 {
		return real()
	}
	time.Sleep(f.d.failDelay)
	return errFakeSync
}

func (f *fakeDiskFile) Sync() error     { return f.sync(f.File.Sync) }
func (f *fakeDiskFile) SyncData() error { return f.sync(f.File.SyncData) }

func (f *fakeDiskFile) SyncTo(length int64) (bool, error) {
	full := false
	err := f.sync(func() (err error) {
		full, err = f.File.SyncTo(length)
		return err
	})
	return full, err
}
