package pebble_test

import (
	"testing"

	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/pebble"
	"github.com/switchboard-sms/switchboard/storage/storagetest"
)

func open(t *testing.T, dir string) sb.Store {
	t.Helper()
	s, err := pebble.Open(dir, pebble.Options{MemTableSize: 4 << 20, CacheSize: 8 << 20})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) sb.Store { return open(t, t.TempDir()) })
}

func TestDurable(t *testing.T) {
	storagetest.RunDurable(t, open)
}
