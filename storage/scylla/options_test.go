package scylla

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
)

// Reads overlap writes: read replicas plus write replicas exceed the
// replication factor.
func TestReadConsistency(t *testing.T) {
	tests := []struct {
		write string
		rf    int
		want  gocql.Consistency
	}{
		{"quorum", 3, gocql.Quorum},
		{"local_quorum", 3, gocql.LocalQuorum},
		{"each_quorum", 3, gocql.LocalQuorum},
		{"all", 3, gocql.One},
		{"one", 1, gocql.One},
		{"one", 3, gocql.All},
		{"local_one", 3, gocql.All},
		{"two", 3, gocql.Quorum},
		{"two", 5, gocql.All},
		{"three", 5, gocql.Quorum},
		{"three", 3, gocql.One},
	}
	for _, tt := range tests {
		o := Options{Consistency: tt.write, ReplicationFactor: tt.rf}
		if got := o.readConsistency(); got != tt.want {
			t.Errorf("writes at %s with %d replicas: reads at %v, want %v", tt.write, tt.rf, got, tt.want)
		}
	}
}

// Every problem with the options is reported at once.
func TestOptionsValidate(t *testing.T) {
	o := Options{Hosts: []string{"a b"}, Keyspace: "1x", ReplicationFactor: -1, Consistency: "most"}
	o.setDefaults()
	err := o.validate()
	if err == nil {
		t.Fatal("bad options validated")
	}
	for _, want := range []string{`host "a b"`, `keyspace "1x"`, "replication factor -1", `consistency "most"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %s", err, want)
		}
	}
	if _, err := New(Options{Keyspace: "sb"}); err == nil || !strings.Contains(err.Error(), "no hosts") {
		t.Errorf("New without hosts: %v", err)
	}
}

// A keyspace that keeps more replicas than storage.replication_factor
// says is refused where the read level is worked out from the factor
// (reads at ONE against three replicas written at ONE miss writes), at
// once and with the factor to set. (One server cannot serve three
// replicas' reads, so the factor set is not tried here.)
func TestKeyspaceWithMoreReplicasThanConfiguredIsRefused(t *testing.T) {
	host := cqlHost(t)
	ks := freshKeyspace(t)
	c := gocql.NewCluster(host)
	c.Timeout = time.Minute
	session, err := c.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	if err := session.Query(fmt.Sprintf(`CREATE KEYSPACE %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}`, ks)).Exec(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = Open(ctx, Options{Hosts: []string{host}, Keyspace: ks, ReplicationFactor: 1, Consistency: "one"})
	if err == nil || !strings.Contains(err.Error(), "keeps 3 replicas") || !strings.Contains(err.Error(), "set it to 3") {
		t.Fatalf("Open at consistency one, replication_factor 1, on a keyspace of 3 replicas: %v, want it refused", err)
	}
}

func TestReplicas(t *testing.T) {
	for _, tc := range []struct {
		repl map[string]string
		want int
	}{
		{map[string]string{"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "3"}, 3},
		{map[string]string{"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "3", "dc2": "2"}, 5},
		{map[string]string{"class": "LocalStrategy"}, 0},
	} {
		if got := replicas(tc.repl); got != tc.want {
			t.Errorf("replicas(%v) = %d, want %d", tc.repl, got, tc.want)
		}
	}
}

// Contact points: a host or host:port each, and one port for all or none:
// the driver refuses anything else when it connects, which a node would
// take for a database not up yet and retry for ever.
func TestCheckHosts(t *testing.T) {
	for _, tc := range []struct {
		hosts []string
		bad   []int // indexes reported
	}{
		{[]string{"db1", "db2"}, nil},
		{[]string{"db1:9042", "db2:9042", "[::1]:9042"}, nil},
		{[]string{"db1:9042", "db2"}, []int{1}},
		{[]string{"db1", "db2", "db3:9042"}, []int{0, 1}},
		{[]string{"db1:9042", "db2:9043"}, []int{1}},
		{[]string{"db1:x"}, []int{0}},
		{[]string{"db1:99999"}, []int{0}},
		{[]string{":9042"}, []int{0}},
		{[]string{"db 1"}, []int{0}},
	} {
		var got []int
		for _, p := range CheckHosts(tc.hosts) {
			got = append(got, p.Index)
		}
		if !slices.Equal(got, tc.bad) {
			t.Errorf("CheckHosts(%q) reports %v, want %v: %+v", tc.hosts, got, tc.bad, CheckHosts(tc.hosts))
		}
	}
}
