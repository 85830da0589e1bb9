package scylla_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"

	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/scylla"
	"github.com/switchboard-sms/switchboard/storage/storagetest"
)

// The suite wants an empty store per test. Creating a keyspace takes
// about two seconds (a schema change per table); truncating the tables of
// one shared keyspace, all at once, a fraction of that.
var (
	sharedOnce     sync.Once
	sharedKeyspace string
	sharedSession  *gocql.Session
	sharedErr      error
)

// emptyStore opens a store on the test binary's shared keyspace, emptied.
func emptyStore(t testing.TB) *scylla.Store {
	t.Helper()
	host := scylla.CQLHost(t)
	sharedOnce.Do(func() {
		sharedKeyspace = scylla.NewKeyspaceName()       // dropped by TestMain
		scylla.OpenTest(t, sharedKeyspace, nil).Close() // creates the schema
		c := gocql.NewCluster(host)
		c.Keyspace = sharedKeyspace
		c.Timeout = 30 * time.Second
		sharedSession, sharedErr = c.CreateSession()
	})
	if sharedErr != nil {
		t.Fatalf("session for truncation: %v", sharedErr)
	}
	if sharedSession == nil {
		t.Fatal("the shared keyspace could not be set up (see the first test's failure)")
	}
	iter := sharedSession.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, sharedKeyspace).Iter()
	var tables []string
	var name string
	for iter.Scan(&name) {
		if !strings.HasPrefix(name, "schema_") {
			tables = append(tables, name)
		}
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("list tables: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(tables))
	for _, table := range tables {
		wg.Go(func() { errs <- sharedSession.Query("TRUNCATE " + table).Exec() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("truncate: %v", err)
		}
	}
	return scylla.OpenTest(t, sharedKeyspace, nil)
}

func TestConformance(t *testing.T) {
	scylla.CQLHost(t)
	storagetest.Run(t, func(t *testing.T) sb.Store { return emptyStore(t) })
}

// TestDurable reopens stores: a directory names one emptied keyspace
// until the test ends.
func TestDurable(t *testing.T) {
	scylla.CQLHost(t)
	var mu sync.Mutex
	opened := map[string]bool{}
	storagetest.RunDurable(t, func(t *testing.T, dir string) sb.Store {
		mu.Lock()
		again := opened[dir]
		opened[dir] = true
		mu.Unlock()
		if again {
			return scylla.OpenTest(t, sharedKeyspace, nil)
		}
		return emptyStore(t)
	})
}
