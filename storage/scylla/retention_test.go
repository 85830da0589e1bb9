package scylla_test

import (
	"context"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/scylla"
	"github.com/switchboard-sms/switchboard/storage/storagetest"
)

// Retention on Cassandra is the rows' own TTLs: what is past its time was
// written with the least TTL Cassandra takes, a second, so applying
// retention is waiting that second out.
func TestRetention(t *testing.T) {
	scylla.CQLHost(t)
	storagetest.RunRetention(t, func(t *testing.T, r storagetest.Retention) (sb.Store, func(context.Context) error) {
		s := scylla.OpenTest(t, scylla.FreshKeyspace(t), func(o *scylla.Options) { o.TTL, o.CarrierIDGrace = r.TTL, r.CarrierIDGrace })
		return s, func(ctx context.Context) error {
			select {
			case <-time.After(1100 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
}
