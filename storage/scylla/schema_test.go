package scylla

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// Several nodes starting at once on a new keyspace: all connect, one
// schema results, at the current version.
func TestSchemaConcurrentStart(t *testing.T) {
	ks := freshKeyspace(t)
	var wg sync.WaitGroup
	stores := make([]*Store, 4)
	for i := range stores {
		wg.Go(func() { stores[i] = openTest(t, ks, nil) })
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	version, ttl, err := stores[0].schemaState(context.Background(), stores[0].session.Load())
	if err != nil || version != schemaVersion || ttl != int(stores[0].opts.TTL/time.Second) {
		t.Fatalf("schema version %d, TTL %d, %v; want %d", version, ttl, err, schemaVersion)
	}
	newTraffic("k", time.Now(), time.Millisecond).accept(t, stores[3], 1)
}

// A keyspace of an older version is migrated at start; one of a newer
// version is refused at once, without retrying.
func TestSchemaVersions(t *testing.T) {
	ks := freshKeyspace(t)
	s := openTest(t, ks, nil)
	session := s.session.Load()
	for _, stmt := range []string{`DROP TABLE %s.fences`, `UPDATE %s.schema_version SET version = 1 WHERE id = 0`} {
		if err := session.Query(s.cql(stmt)).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openTest(t, ks, nil)
	if v, _, err := s.schemaState(context.Background(), s.session.Load()); err != nil || v != schemaVersion {
		t.Fatalf("after migrating: version %d, %v", v, err)
	}
	if _, err := s.RaiseFence(context.Background(), "k", 3); err != nil {
		t.Fatalf("the table version 2 adds: %v", err)
	}

	if err := s.session.Load().Query(s.cql(`UPDATE %s.schema_version SET version = 99 WHERE id = 0`)).Exec(); err != nil {
		t.Fatal(err)
	}
	opts := Options{Hosts: []string{cqlHost(t)}, Keyspace: ks, ReplicationFactor: 1}
	newer, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = newer.WaitReady(ctx)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("WaitReady on a newer schema: %v (context: %v); want it refused at once", err, ctx.Err())
	}
}
