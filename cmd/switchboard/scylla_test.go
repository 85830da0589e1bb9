package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// testCQL returns the CQL server of SWITCHBOARD_TEST_CQL; without one the
// test skips, except under CI=true, where it fails.
func testCQL(t *testing.T) string {
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

// storage.backend: scylla runs a node that delivers, on a keyspace it
// creates, and a restarted node finds what the first stored.
func TestGatewayOnScylla(t *testing.T) {
	host := testCQL(t)
	keyspace := fmt.Sprintf("gw_%d_%d", time.Now().UnixNano()%1e9, os.Getpid()%1e5)
	t.Cleanup(func() {
		c := gocql.NewCluster(host)
		c.Timeout = time.Minute
		if s, err := c.CreateSession(); err == nil {
			s.Query("DROP KEYSPACE IF EXISTS " + keyspace).Exec()
			s.Close()
		}
	})
	sim := testSim(t, smsc.Config{})
	yaml := fmt.Sprintf("storage: {backend: scylla, hosts: [%q], keyspace: %s, replication_factor: 1}\ncarriers:", host, keyspace) +
		carrierYAML("a", sim.Addr(), 1) + "routes:\n  - {prefix: \"\", carriers: [a]}\n" + keyYAML(1000, 1000, 1000)
	dir := t.TempDir()
	g, _ := openTestGateway(t, dir, yaml)
	r := send(t, g, "+447700900123", "Hello from Cassandra")
	if r.status != 202 {
		stopTestGateway(t, g)
		t.Fatalf("POST: %d %v", r.status, r.body)
	}
	id := r.body["id"].(string)
	waitStatus(t, g, id, "delivered")
	stopTestGateway(t, g)

	g, _ = openTestGateway(t, dir, yaml)
	defer stopTestGateway(t, g)
	waitStatus(t, g, id, "delivered")
}
