package scylla

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gocql/gocql"
	sb "github.com/switchboard-sms/switchboard"
)

// Settings are written with lightweight transactions only, as InitSetting
// writes them: Cassandra does not order plain writes against a
// transaction's on the same row. They are few and rarely written (the
// admin API's keys, carriers and routes; generated secrets), so the
// transactions' cost does not matter.

// PutSetting stores value under name, replacing any value: an insert if
// there is none, else an update, each a transaction; a delete racing in
// between makes it try again.
func (s *Store) PutSetting(ctx context.Context, name, value string) error {
	if name == "" {
		return sb.Errorf(sb.EINVALID, "a setting needs a name")
	}
	session, err := s.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("scylla: put setting %q: %w", name, err)
	}
	for ctx.Err() == nil {
		applied, err := s.cas(ctx, session, `INSERT INTO %s.settings (name, value) VALUES (?, ?) IF NOT EXISTS`, name, value)
		if err == nil && !applied {
			applied, err = s.cas(ctx, session, `UPDATE %s.settings SET value = ? WHERE name = ? IF EXISTS`, value, name)
		}
		if err != nil {
			return fmt.Errorf("scylla: put setting %q: %w", name, s.dbError(err))
		}
		if applied {
			return nil
		}
	}
	return ctx.Err()
}

// DeleteSetting removes name, if it has a value.
func (s *Store) DeleteSetting(ctx context.Context, name string) error {
	session, err := s.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("scylla: delete setting %q: %w", name, err)
	}
	if _, err := s.cas(ctx, session, `DELETE FROM %s.settings WHERE name = ? IF EXISTS`, name); err != nil {
		return fmt.Errorf("scylla: delete setting %q: %w", name, s.dbError(err))
	}
	return nil
}

// cas runs one lightweight transaction and reports whether it applied.
func (s *Store) cas(ctx context.Context, session *gocql.Session, cql string, args ...any) (bool, error) {
	return session.Query(s.cql(cql), args...).WithContext(ctx).Consistency(s.opts.writeConsistency()).
		SerialConsistency(s.opts.serialConsistency()).MapScanCAS(map[string]any{})
}

// ListSettings lists the settings whose names start with prefix, in name
// order. The table is small (a row per setting), so it is read whole.
func (s *Store) ListSettings(ctx context.Context, prefix string) ([]sb.Setting, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("scylla: list settings: %w", err)
	}
	iter := session.Query(s.cql(`SELECT name, value FROM %s.settings`)).
		WithContext(ctx).Consistency(s.opts.readConsistency()).PageSize(500).Iter()
	var out []sb.Setting
	var name, value string
	for iter.Scan(&name, &value) {
		if strings.HasPrefix(name, prefix) {
			out = append(out, sb.Setting{Name: name, Value: value})
		}
	}
	if err := iter.Close(); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, fmt.Errorf("scylla: list settings: %w", s.dbError(err))
	}
	slices.SortFunc(out, func(a, b sb.Setting) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
