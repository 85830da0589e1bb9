package redis

import (
	"os"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// The driver logs each failed dial; the tests stop Redis on purpose.
func TestMain(m *testing.M) {
	goredis.SetLogger(DriverLogger{Log: zerolog.Nop()})
	os.Exit(m.Run())
}
