package scylla

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/gocql/gocql"
	sb "github.com/switchboard-sms/switchboard"
)

// The inbox: parts of inbound messages in inbound_parts, spread over
// partShards partitions by carrier, sender, recipient and reference, until
// AcceptInbound stores the message assembled from them. The table is
// small (only parts of messages not yet complete) but sees a delete for
// every part; its gc_grace_seconds is three hours so InboundParts, read at
// start, passes few tombstones.

// AddInboundPart stores one part, replacing a stored part with the same
// carrier, from, to and Concat. A part without a Concat is EINVALID.
func (s *Store) AddInboundPart(ctx context.Context, p sb.InboundPart) error {
	if _, err := s.beginWrite(ctx); err != nil {
		return fmt.Errorf("scylla: add inbound part: %w", err)
	}
	if p.Concat == nil {
		return fmt.Errorf("scylla: add inbound part: %w",
			sb.Errorf(sb.EINVALID, "inbound part without a concatenation reference"))
	}
	c := p.Concat
	shard := partShard(p.Carrier, p.From, p.To, c.Ref)
	st := stmt{
		part: "inbound_parts\x00" + strconv.Itoa(shard),
		cql:  s.cql(`INSERT INTO %s.inbound_parts (shard, carrier, sender, recipient, ref, total, seq, data_coding, payload, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?`),
		args: []any{shard, p.Carrier, p.From, p.To, int(c.Ref), int(c.Total), int(c.Seq), int(p.DataCoding),
			p.Payload, p.ReceivedAt, ttlSeconds(s.opts.TTL), s.clock.next()},
	}
	if err := s.writer.write(ctx, []stmt{st}); err != nil {
		return fmt.Errorf("scylla: add inbound part: %w", err)
	}
	return nil
}

// InboundParts lists every stored part, reading each partition.
func (s *Store) InboundParts(ctx context.Context) ([]sb.InboundPart, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("scylla: inbound parts: %w", err)
	}
	shards := make([]int, partShards)
	for i := range shards {
		shards[i] = i
	}
	var mu sync.Mutex
	var parts []sb.InboundPart
	err = parallel(shards, func(shard int) error {
		iter := session.Query(s.cql(`SELECT carrier, sender, recipient, ref, total, seq, data_coding, payload, received_at FROM %s.inbound_parts WHERE shard = ?`),
			shard).WithContext(ctx).Consistency(s.opts.readConsistency()).Iter()
		for {
			var p sb.InboundPart
			var ref, total, seq, dcs int
			if !iter.Scan(&p.Carrier, &p.From, &p.To, &ref, &total, &seq, &dcs, &p.Payload, &p.ReceivedAt) {
				break
			}
			p.DataCoding = byte(dcs)
			p.Concat = &sb.Concat{Ref: uint16(ref), Total: uint8(total), Seq: uint8(seq)}
			mu.Lock()
			parts = append(parts, p)
			mu.Unlock()
		}
		return iter.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("scylla: inbound parts: %w", s.dbError(err))
	}
	return parts, nil
}

// DeleteInboundParts removes stored parts; parts not stored are skipped.
func (s *Store) DeleteInboundParts(ctx context.Context, parts []sb.InboundPart) error {
	if _, err := s.beginWrite(ctx); err != nil {
		return fmt.Errorf("scylla: delete inbound parts: %w", err)
	}
	if err := s.writer.write(ctx, s.partDeletes(parts, s.clock.next())); err != nil {
		return fmt.Errorf("scylla: delete inbound parts: %w", err)
	}
	return nil
}

// partDeletes are the statements that delete parts (those without a
// Concat were never stored).
func (s *Store) partDeletes(parts []sb.InboundPart, ts int64) []stmt {
	var stmts []stmt
	for _, p := range parts {
		c := p.Concat
		if c == nil {
			continue
		}
		shard := partShard(p.Carrier, p.From, p.To, c.Ref)
		stmts = append(stmts, stmt{
			part: "inbound_parts\x00" + strconv.Itoa(shard),
			cql:  s.cql(`DELETE FROM %s.inbound_parts USING TIMESTAMP ? WHERE shard = ? AND carrier = ? AND sender = ? AND recipient = ? AND ref = ? AND total = ? AND seq = ?`),
			args: []any{ts, shard, p.Carrier, p.From, p.To, int(c.Ref), int(c.Total), int(c.Seq)},
		})
	}
	return stmts
}

// InitSetting stores value under name unless a value is stored there,
// and returns the stored value. A lightweight transaction decides between
// nodes; in this process one call at a time runs it.
func (s *Store) InitSetting(ctx context.Context, name, value string) (string, error) {
	session, err := s.beginWrite(ctx)
	if err != nil {
		return "", fmt.Errorf("scylla: init setting %q: %w", name, err)
	}
	s.settingMu.Lock()
	defer s.settingMu.Unlock()
	stored, err := s.initSetting(ctx, session, name, value)
	if err != nil {
		return "", fmt.Errorf("scylla: init setting %q: %w", name, s.dbError(err))
	}
	return stored, nil
}

func (s *Store) initSetting(ctx context.Context, session *gocql.Session, name, value string) (string, error) {
	var stored string
	// A serial read sees any transaction that committed, or finishes one
	// left half done.
	err := session.Query(s.cql(`SELECT value FROM %s.settings WHERE name = ?`), name).
		WithContext(ctx).Consistency(s.opts.serialConsistency()).Scan(&stored)
	if err == nil {
		return stored, nil
	}
	if !errors.Is(err, gocql.ErrNotFound) {
		return "", err
	}
	existing := map[string]any{}
	applied, err := session.Query(s.cql(`INSERT INTO %s.settings (name, value) VALUES (?, ?) IF NOT EXISTS`), name, value).
		WithContext(ctx).Consistency(s.opts.writeConsistency()).SerialConsistency(s.opts.serialConsistency()).
		MapScanCAS(existing)
	if err != nil {
		return "", err
	}
	if applied {
		return value, nil
	}
	stored, _ = existing["value"].(string)
	return stored, nil
}
