package gossip

import (
	"encoding/json"
	"fmt"
)

// meta is what a member gossips about itself (memberlist's node metadata):
// its cluster, and where and what its actor system serves.
type meta struct {
	Cluster string   `json:"c"`
	Host    string   `json:"h,omitempty"`
	Port    int      `json:"p,omitempty"`
	Kinds   []string `json:"k,omitempty"`
	// Client marks a cluster client: it watches the topology and hosts no
	// grains, so it is never placed in the topology.
	Client bool `json:"cl,omitempty"`
	// Leaving is set by a graceful Shutdown just before it leaves, so that
	// the others move its grains at once and can tell a leave from a death.
	Leaving bool `json:"l,omitempty"`
	// Joining marks a member that is still starting (Config.HoldUntilReady):
	// it is not placed in the topology until it says it is ready.
	Joining bool `json:"j,omitempty"`
}

// placed reports whether a member with this metadata is in the topology.
func (m meta) placed() bool { return !m.Client && !m.Leaving && !m.Joining }

func (m meta) encode(limit int) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("member metadata is %d bytes, above memberlist's %d (too many kinds?)", len(b), limit)
	}
	return b, nil
}

func decodeMeta(b []byte) (meta, error) {
	var m meta
	if len(b) == 0 {
		return m, fmt.Errorf("no metadata")
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("metadata: %w", err)
	}
	return m, nil
}
