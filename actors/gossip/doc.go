// Package gossip is the cluster's membership: a protoactor-go
// cluster.ClusterProvider built on hashicorp/memberlist (SWIM gossip).
//
// Each member is identified by its actor system's id and gossips, in its
// memberlist metadata, the cluster's name and its actor system's host, port
// and kinds. On every change one goroutine hands the live members to
// protoactor's MemberList. A node the others declared dead (paused or cut
// off past the failure timeout) is told so and closes Removed; its owner
// then stops its actors and rejoins under a new actor system.
// docs/architecture.md ("Membership") explains the choice and the rules.
package gossip
