package scylla

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/gocql/gocql"
)

// The schema, versioned. schemaVersion is the version this binary writes;
// migrations[i] takes a keyspace from version i to i+1. Every statement is
// idempotent (IF NOT EXISTS, or an ALTER that sets a value), so a
// migration cut short by a crash is simply run again.
//
// Migrations run under a lease in schema_lock (a lightweight transaction
// with a TTL), so when several nodes start at once one migrates and the
// others wait for the version it writes; Cassandra before 5.1 can end up
// with two definitions of one table when two nodes create it at the same
// moment. A binary refuses a keyspace whose version is newer than its own.
//
// Table options that follow the configuration (the TTL, and the
// compaction window sized to it) are applied after the migrations, under
// the same lease, whenever the stored TTL differs from the configured one.
const schemaVersion = 2

// ttlTables are the tables written with the message TTL: they compact in
// time windows sized to it, and expire whole SSTables.
var ttlTables = []string{"messages", "message_days", "message_ids", "carrier_ids", "queue_buckets"}

var migrations = [][]string{
	// Version 1.
	{
		// The message log: one partition per API key, UTC day and bucket
		// (the first characters of the ULID: about 33 seconds), newest
		// first. data is the message (codec.go).
		`CREATE TABLE IF NOT EXISTS messages (
			key text, day text, bucket text, id text,
			status text, data blob,
			PRIMARY KEY ((key, day, bucket), id)
		) WITH CLUSTERING ORDER BY (id DESC)`,
		// The buckets of a key's day that hold messages, for listings.
		`CREATE TABLE IF NOT EXISTS message_days (
			key text, day text, bucket text,
			PRIMARY KEY ((key, day), bucket)
		) WITH CLUSTERING ORDER BY (bucket DESC)`,
		// Where a message is: its ID's slice (bucket and a shard of the
		// ID's hash) leads to its key and day.
		`CREATE TABLE IF NOT EXISTS message_ids (
			slice text, id text, key text, day text,
			PRIMARY KEY ((slice), id)
		)`,
		// A carrier's message id → our message and part.
		`CREATE TABLE IF NOT EXISTS carrier_ids (
			carrier text, carrier_id text, message_id text, part int, key text, day text,
			PRIMARY KEY ((carrier, carrier_id))
		)`,
		// Receipts that arrived before their message's submit was
		// recorded, until the Record that indexes the id applies them.
		`CREATE TABLE IF NOT EXISTS parked_receipts (
			carrier text, carrier_id text, seq text, data blob,
			PRIMARY KEY ((carrier, carrier_id), seq)
		)`,
		// Idempotency-Key records, each kept for the idempotency window.
		`CREATE TABLE IF NOT EXISTS idempotency (
			key text, idem_key text, message_id text, request_hash blob, created_at timestamp,
			PRIMARY KEY ((key, idem_key))
		)`,
		// The queues (queue.go): pending messages per key, callbacks per
		// endpoint, receipt deadlines; their marks and buckets.
		`CREATE TABLE IF NOT EXISTS pending (
			owner text, bucket text, id text, day text,
			PRIMARY KEY ((owner, bucket), id)
		) WITH compaction = {'class': 'LeveledCompactionStrategy'} AND gc_grace_seconds = 10800`,
		`CREATE TABLE IF NOT EXISTS outbox (
			owner text, bucket text, id text,
			type text, key text, url text, message_id text, created_at timestamp, data blob,
			PRIMARY KEY ((owner, bucket), id)
		) WITH compaction = {'class': 'LeveledCompactionStrategy'} AND gc_grace_seconds = 10800`,
		`CREATE TABLE IF NOT EXISTS receipt_due (
			owner text, bucket text, id text, key text, day text,
			PRIMARY KEY ((owner, bucket), id)
		) WITH compaction = {'class': 'LeveledCompactionStrategy'} AND gc_grace_seconds = 10800`,
		`CREATE TABLE IF NOT EXISTS queue_marks (
			kind text, owner text, mark text, stragglers frozen<list<text>>, seen timestamp,
			PRIMARY KEY ((kind), owner)
		)`,
		`CREATE TABLE IF NOT EXISTS queue_buckets (
			kind text, owner text, bucket text,
			PRIMARY KEY ((kind, owner), bucket)
		)`,
		// Parts of inbound messages until they are assembled.
		`CREATE TABLE IF NOT EXISTS inbound_parts (
			shard int, carrier text, sender text, recipient text, ref int, total int, seq int,
			data_coding int, payload blob, received_at timestamp,
			PRIMARY KEY ((shard), carrier, sender, recipient, ref, total, seq)
		) WITH gc_grace_seconds = 10800`,
		`CREATE TABLE IF NOT EXISTS settings (name text PRIMARY KEY, value text)`,
		// Write probes while the cluster looks unhealthy (health.go).
		`CREATE TABLE IF NOT EXISTS health (node text PRIMARY KEY, at timestamp)`,
	},
	// Version 2: fencing tokens (fence.go).
	{
		`CREATE TABLE IF NOT EXISTS fences (key text PRIMARY KEY, fence bigint)`,
	},
}

// migrate brings the keyspace to schemaVersion and the TTL options to the
// configured TTL, creating the keyspace if needed.
func (s *Store) migrate(ctx context.Context, session *gocql.Session) error {
	ks := s.opts.Keyspace
	create := fmt.Sprintf(`CREATE KEYSPACE IF NOT EXISTS %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': %d}`,
		ks, s.opts.ReplicationFactor)
	if err := s.ddl(ctx, session, create); err != nil {
		return err
	}
	if err := s.checkReplication(ctx, session); err != nil {
		return err
	}
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS %s.schema_version (id int PRIMARY KEY, version int, ttl int, updated_at timestamp)`,
		`CREATE TABLE IF NOT EXISTS %s.schema_lock (id int PRIMARY KEY, owner text)`,
	} {
		if err := s.ddl(ctx, session, fmt.Sprintf(stmt, ks)); err != nil {
			return err
		}
	}
	ttl := int(s.opts.TTL / time.Second)
	for {
		version, storedTTL, err := s.schemaState(ctx, session)
		if err != nil {
			return err
		}
		if version > schemaVersion {
			return permanent(fmt.Errorf("keyspace %s has schema version %d; this binary knows up to %d: run a newer one",
				ks, version, schemaVersion))
		}
		if version == schemaVersion && storedTTL == ttl {
			return nil
		}
		locked, err := s.lockSchema(ctx, session)
		if err != nil {
			return err
		}
		if !locked {
			// Another node migrates; wait for it.
			if err := sleep(ctx, 500*time.Millisecond+rand.N(500*time.Millisecond)); err != nil {
				return err
			}
			continue
		}
		err = s.migrateLocked(ctx, session, ttl)
		if uerr := s.unlockSchema(session); err == nil && uerr != nil {
			s.log.Warn().Err(uerr).Msg("scylla: release the schema lock (it expires by itself)")
		}
		if err != nil {
			return err
		}
	}
}

// schemaLease is how long a migrating node holds the lock at most; the
// others take it over after that.
const schemaLease = 120 * time.Second

func (s *Store) lockSchema(ctx context.Context, session *gocql.Session) (bool, error) {
	var owner string
	applied, err := session.Query(fmt.Sprintf(`INSERT INTO %s.schema_lock (id, owner) VALUES (0, ?) IF NOT EXISTS USING TTL %d`,
		s.opts.Keyspace, int(schemaLease/time.Second)), s.instance).
		WithContext(ctx).Consistency(s.opts.writeConsistency()).SerialConsistency(s.opts.serialConsistency()).
		ScanCAS(nil, &owner)
	if err != nil {
		return false, fmt.Errorf("take the schema lock: %w", err)
	}
	return applied || owner == s.instance, nil
}

func (s *Store) unlockSchema(session *gocql.Session) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	_, err := session.Query(fmt.Sprintf(`DELETE FROM %s.schema_lock WHERE id = 0 IF owner = ?`, s.opts.Keyspace), s.instance).
		WithContext(ctx).Consistency(s.opts.writeConsistency()).SerialConsistency(s.opts.serialConsistency()).
		ScanCAS(nil)
	return err
}

// schemaState reads the stored schema version (0: none) and TTL.
func (s *Store) schemaState(ctx context.Context, session *gocql.Session) (version, ttl int, err error) {
	err = session.Query(fmt.Sprintf(`SELECT version, ttl FROM %s.schema_version WHERE id = 0`, s.opts.Keyspace)).
		WithContext(ctx).Consistency(s.opts.readConsistency()).Scan(&version, &ttl)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read the schema version: %w", err)
	}
	return version, ttl, nil
}

// migrateLocked runs the migrations the keyspace lacks, then sets the TTL
// options, recording each step; the caller holds the schema lock.
func (s *Store) migrateLocked(ctx context.Context, session *gocql.Session, ttl int) error {
	version, storedTTL, err := s.schemaState(ctx, session)
	if err != nil {
		return err
	}
	for ; version < schemaVersion; version++ {
		for _, stmt := range migrations[version] {
			if err := s.ddl(ctx, session, qualify(stmt, s.opts.Keyspace)); err != nil {
				return fmt.Errorf("migrate to schema version %d: %w", version+1, err)
			}
		}
		// The TTL options are (re)applied below for the new tables.
		storedTTL = -1
		if err := s.recordSchema(ctx, session, version+1, storedTTL); err != nil {
			return err
		}
		s.log.Info().Str("keyspace", s.opts.Keyspace).Int("version", version+1).Msg("scylla: schema migrated")
	}
	if storedTTL == ttl {
		return nil
	}
	for _, table := range ttlTables {
		if err := s.ddl(ctx, session, fmt.Sprintf(`ALTER TABLE %s.%s WITH default_time_to_live = %d AND compaction = %s`,
			s.opts.Keyspace, table, ttl, windowCompaction(s.opts.TTL))); err != nil {
			return fmt.Errorf("set the TTL of %s: %w", table, err)
		}
	}
	if err := s.ddl(ctx, session, fmt.Sprintf(`ALTER TABLE %s.idempotency WITH default_time_to_live = %d AND compaction = %s`,
		s.opts.Keyspace, int(idempotencyTTLMax/time.Second), windowCompaction(idempotencyTTLMax))); err != nil {
		return fmt.Errorf("set the TTL of idempotency: %w", err)
	}
	if err := s.recordSchema(ctx, session, schemaVersion, ttl); err != nil {
		return err
	}
	s.log.Info().Str("keyspace", s.opts.Keyspace).Dur("ttl", s.opts.TTL).Msg("scylla: table TTLs set")
	return nil
}

func (s *Store) recordSchema(ctx context.Context, session *gocql.Session, version, ttl int) error {
	err := session.Query(fmt.Sprintf(`INSERT INTO %s.schema_version (id, version, ttl, updated_at) VALUES (0, ?, ?, ?)`,
		s.opts.Keyspace), version, ttl, s.now()).
		WithContext(ctx).Consistency(s.opts.writeConsistency()).Exec()
	if err != nil {
		return fmt.Errorf("record schema version %d: %w", version, err)
	}
	return nil
}

// windowCompaction is TimeWindowCompactionStrategy with about 30 windows
// per TTL, a window at least an hour: whole SSTables then expire
// together, and a read of recent rows touches few of them.
func windowCompaction(ttl time.Duration) string {
	hours := max(int((ttl/30+time.Hour/2)/time.Hour), 1)
	return fmt.Sprintf(`{'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', 'compaction_window_size': %d}`, hours)
}

// ddl runs one schema statement and waits until every node agrees on the
// schema.
func (s *Store) ddl(ctx context.Context, session *gocql.Session, stmt string) error {
	if err := session.Query(stmt).WithContext(ctx).Exec(); err != nil {
		return fmt.Errorf("%s: %w", firstLine(stmt), err)
	}
	if err := session.AwaitSchemaAgreement(ctx); err != nil {
		return fmt.Errorf("%s: schema agreement: %w", firstLine(stmt), err)
	}
	return nil
}

// qualify names the keyspace in a CREATE TABLE statement.
func qualify(stmt, ks string) string {
	return strings.Replace(stmt, "IF NOT EXISTS ", "IF NOT EXISTS "+ks+".", 1)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkReplication refuses a keyspace that keeps more replicas than
// storage.replication_factor says, where the read level is worked out
// from it (consistency one, local_one, two or three: readConsistency):
// reads would then miss writes that returned. A keyspace made by an
// operator is used as it is, so the setting must match it.
func (s *Store) checkReplication(ctx context.Context, session *gocql.Session) error {
	switch s.opts.Consistency {
	case "one", "local_one", "two", "three":
	default:
		return nil // read levels that do not depend on the factor
	}
	repl, err := s.replication(ctx, session)
	if err != nil {
		return fmt.Errorf("read the replication of keyspace %s: %w", s.opts.Keyspace, err)
	}
	if rf := replicas(repl); rf > s.opts.ReplicationFactor {
		return permanent(fmt.Errorf("keyspace %s keeps %d replicas (%v) and storage.replication_factor says %d: reads at consistency %s are worked out from it and would miss writes; set it to %d",
			s.opts.Keyspace, rf, repl, s.opts.ReplicationFactor, s.opts.Consistency, rf))
	}
	return nil
}

// replication reads the keyspace's replication as system_schema has it
// ("class" and a factor per data centre, or "replication_factor").
func (s *Store) replication(ctx context.Context, session *gocql.Session) (map[string]string, error) {
	var repl map[string]string
	err := session.Query(`SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?`, s.opts.Keyspace).
		WithContext(ctx).Consistency(gocql.One).Scan(&repl)
	return repl, err
}

// replicas is how many replicas of a partition a keyspace with
// replication repl keeps: every data centre's together, an upper bound of
// any one's (unknown: 0).
func replicas(repl map[string]string) int {
	n := 0
	for k, v := range repl {
		if k == "class" {
			continue
		}
		if rf, err := strconv.Atoi(v); err == nil {
			n += rf
		}
	}
	return n
}
