package scylla

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"
)

// cqlHost returns the CQL server the tests use (SWITCHBOARD_TEST_CQL,
// host:port). Without one the tests skip, except under CI=true, where a
// missing server is a failure.
func cqlHost(t testing.TB) string {
	t.Helper()
	host := os.Getenv("SWITCHBOARD_TEST_CQL")
	if host == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SWITCHBOARD_TEST_CQL is not set: CI needs a CQL server (.ci/test starts one)")
		}
		t.Skip("SWITCHBOARD_TEST_CQL is not set (deploy/local/cassandra/start.sh starts a server)")
	}
	return host
}

// keyspaceSeq numbers the keyspaces one test binary creates; the prefix
// keeps concurrent runs apart.
var (
	keyspaceSeq    atomic.Int64
	keyspacePrefix = fmt.Sprintf("t%d_%d", time.Now().Unix()%1_000_000, os.Getpid()%100_000)
)

// newKeyspaceName returns a keyspace name no test has used.
func newKeyspaceName() string {
	return fmt.Sprintf("%s_%d", keyspacePrefix, keyspaceSeq.Add(1))
}

// freshKeyspace returns a new keyspace name for t and drops the keyspace
// when t ends: every table holds some of the server's heap, and a test
// server has little.
func freshKeyspace(t testing.TB) string {
	ks := newKeyspaceName()
	host := cqlHost(t)
	t.Cleanup(func() { dropKeyspaces(host, func(name string) bool { return name == ks }) })
	return ks
}

// dropKeyspaces drops the keyspaces of this test binary that match.
func dropKeyspaces(host string, match func(string) bool) error {
	c := gocql.NewCluster(host)
	c.Timeout = time.Minute
	session, err := c.CreateSession()
	if err != nil {
		return err
	}
	defer session.Close()
	iter := session.Query(`SELECT keyspace_name FROM system_schema.keyspaces`).Iter()
	var names []string
	var name string
	for iter.Scan(&name) {
		if strings.HasPrefix(name, keyspacePrefix+"_") && match(name) {
			names = append(names, name)
		}
	}
	if err := iter.Close(); err != nil {
		return err
	}
	for _, name := range names {
		if err := session.Query("DROP KEYSPACE IF EXISTS " + name).Exec(); err != nil {
			return err
		}
	}
	return nil
}

// TestMain drops what the tests left (the conformance suite's shared
// keyspace, a test cut short).
func TestMain(m *testing.M) {
	code := m.Run()
	if host := os.Getenv("SWITCHBOARD_TEST_CQL"); host != "" {
		if err := dropKeyspaces(host, func(string) bool { return true }); err != nil {
			fmt.Fprintf(os.Stderr, "drop the test keyspaces: %v\n", err)
		}
	}
	os.Exit(code)
}

// openTest opens a store on keyspace (created if new) of the test server,
// with a TTL that keeps the suite's messages dated in 2025; tune changes
// the options first. The store is closed when the test ends.
func openTest(t testing.TB, keyspace string, tune func(*Options)) *Store {
	t.Helper()
	opts := Options{Hosts: []string{cqlHost(t)}, Keyspace: keyspace, ReplicationFactor: 1, TTL: 10 * 365 * 24 * time.Hour}
	if tune != nil {
		tune(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Open(ctx, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
