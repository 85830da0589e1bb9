package memory_test

import (
	"testing"

	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/memory"
	"github.com/switchboard-sms/switchboard/storage/storagetest"
)

func TestLeases(t *testing.T) {
	storagetest.RunLeases(t,
		func(t *testing.T) sb.Leases { return memory.NewLeases() },
		// A restarted process starts with no leases at all.
		func(t *testing.T, _ sb.Leases) sb.Leases { return memory.NewLeases() })
}
