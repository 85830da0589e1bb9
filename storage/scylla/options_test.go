package scylla

import (
	"strings"
	"testing"

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
