package pebble

import (
	"context"
	"fmt"

	pebbledb "github.com/cockroachdb/pebble/v2"
	sb "github.com/switchboard-sms/switchboard"
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

// PutSetting stores value under name, replacing what was there.
func (s *Store) PutSetting(ctx context.Context, name, value string) error {
	if name == "" {
		return sb.Errorf(sb.EINVALID, "a setting needs a name")
	}
	write := func(c *committer, b *pebbledb.Batch) error {
		return c.putSetting(name, &value, b)
	}
	if err := s.committer.do(ctx, &request{write: write}); err != nil {
		return fmt.Errorf("pebble: put setting %q: %w", name, err)
	}
	return nil
}

// DeleteSetting removes name, if it has a value.
func (s *Store) DeleteSetting(ctx context.Context, name string) error {
	write := func(c *committer, b *pebbledb.Batch) error {
		return c.putSetting(name, nil, b)
	}
	if err := s.committer.do(ctx, &request{write: write}); err != nil {
		return fmt.Errorf("pebble: delete setting %q: %w", name, err)
	}
	return nil
}

// ListSettings lists the settings whose names start with prefix, in name
// order: a range scan of the settings' prefix.
func (s *Store) ListSettings(ctx context.Context, prefix string) ([]sb.Setting, error) {
	out, err := s.listSettings(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("pebble: list settings %q: %w", prefix, err)
	}
	return out, nil
}

func (s *Store) listSettings(ctx context.Context, prefix string) ([]sb.Setting, error) {
	if err := s.beginRead(ctx); err != nil {
		return nil, err
	}
	defer s.rw.RUnlock()
	base := len(settingKey(nil, ""))
	lower := settingKey(nil, prefix)
	it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: lower, UpperBound: successor(lower)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []sb.Setting
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		value, err := decodeSetting(v)
		if err != nil {
			return nil, fmt.Errorf("setting %q: %w", it.Key()[base:], err)
		}
		out = append(out, sb.Setting{Name: string(it.Key()[base:]), Value: value})
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	return out, s.committer.waitSynced(ctx)
}

// putSetting writes (value set) or deletes (value nil) one setting and
// keeps the round's overlay in step, so an InitSetting later in the round
// sees it.
func (c *committer) putSetting(name string, value *string, b *pebbledb.Batch) error {
	c.key = settingKey(c.key[:0], name)
	var err error
	if value == nil {
		err = b.Delete(c.key, nil)
	} else {
		c.val = appendSetting(c.val[:0], *value)
		err = b.Set(c.key, c.val, nil)
	}
	if err != nil {
		return c.writeFailed(err)
	}
	c.overlay.settings[name] = value
	return nil
}
