package pebble

import (
	"context"
	"fmt"

	pebbledb "github.com/cockroachdb/pebble/v2"
)

// InitSetting stores value under name unless a value is stored there, and
// returns the stored value. The committer runs one request at a time, so
// of two racing calls the second sees the first's value.
func (s *Store) InitSetting(ctx context.Context, name, value string) (string, error) {
	var stored string
	write := func(c *committer, b *pebbledb.Batch) (err error) {
		stored, err = c.initSetting(name, value, b)
		return err
	}
	if err := s.committer.do(ctx, &request{write: write}); err != nil {
		return "", fmt.Errorf("pebble: init setting %q: %w", name, err)
	}
	return stored, nil
}
