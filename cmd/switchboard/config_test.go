package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/receipt"
)

// writeConfig writes a YAML file into a temporary directory and returns
// its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// baseYAML is a small valid configuration with two carriers and two keys.
const baseYAML = `
carriers:
  - {name: a, host: smsc-a.example:2775, system_id: sb, password: pw}
  - {name: b, host: smsc-b.example:2775}
routes:
  - {prefix: "", carriers: [a]}
  - {prefix: "+44", carriers: [b, a]}
keys:
  - {id: k1, secret: 0123456789abcdef, rate: 10}
  - {id: k2, secret_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, rate: 0.5}
`

func loadOK(t *testing.T, yaml string, environ ...string) *Config {
	t.Helper()
	cfg, err := LoadConfig(writeConfig(t, yaml), environ)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	return cfg
}

func loadErr(t *testing.T, yaml string, environ ...string) error {
	t.Helper()
	_, err := LoadConfig(writeConfig(t, yaml), environ)
	if err == nil {
		t.Fatal("LoadConfig succeeded, want an error")
	}
	if !errors.As(err, new(*ConfigError)) {
		t.Errorf("error %T is not a *ConfigError", err)
	}
	return err
}

func wantContains(t *testing.T, err error, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not contain %q:\n%v", s, err)
		}
	}
}

func TestShippedConfig(t *testing.T) {
	cfg, err := LoadConfig("../../cluster.yaml", nil)
	if err != nil {
		t.Fatalf("cluster.yaml: %v", err)
	}
	if cfg.Node.HTTP != "127.0.0.1:8080" || cfg.Node.DataDir != "./data" {
		t.Errorf("node = %+v", cfg.Node)
	}
	if cfg.Storage.Backend != StorageEmbedded || cfg.Cache.Backend != CacheMemory || cfg.Cluster.Enabled {
		t.Errorf("storage %q, cache %q, cluster %v", cfg.Storage.Backend, cfg.Cache.Backend, cfg.Cluster.Enabled)
	}
	if len(cfg.Carriers) != 1 {
		t.Fatalf("carriers = %+v", cfg.Carriers)
	}
	c := cfg.Carriers[0]
	if c.Name != "sandbox" || !c.Simulator || c.Host != "127.0.0.1:2775" || c.Binds != 2 || c.Window != 64 ||
		c.SystemID != "switchboard" || c.Password != "secret" || c.BindType != BindTransceiver {
		t.Errorf("carrier = %+v", c)
	}
	if len(cfg.Routes) != 1 || cfg.Routes[0].Prefix != "" || !slices.Equal(cfg.Routes[0].Carriers, []string{"sandbox"}) {
		t.Errorf("routes = %+v", cfg.Routes)
	}
	if len(cfg.Keys) != 1 {
		t.Fatalf("keys = %+v", cfg.Keys)
	}
	k := cfg.Keys[0]
	if k.ID != "demo" || k.Rate != 1000 || k.Burst != 2000 || k.Hash() != switchboard.HashSecret("demo-secret-change-me") {
		t.Errorf("key = %+v", k)
	}
	if !cfg.Webhooks.AllowPrivateNetworks {
		t.Error("the development config should allow private networks")
	}
}

func TestDefaults(t *testing.T) {
	cfg := loadOK(t, baseYAML)
	want := Config{
		Node:    NodeConfig{Name: "node-1", HTTP: "127.0.0.1:8080", Admin: "127.0.0.1:8081", DataDir: "./data", DrainPeriod: Duration(5 * time.Second), ShutdownTimeout: Duration(15 * time.Second), MemoryLimit: "300MiB"},
		Log:     LogConfig{Level: "info", Format: "auto"},
		Storage: StorageConfig{Backend: "embedded", Keyspace: "switchboard", ReplicationFactor: 3, Consistency: "quorum", TTL: Duration(720 * time.Hour)},
		Cache:   CacheConfig{Backend: "memory", Addr: "127.0.0.1:6379", CarrierTTL: Duration(72 * time.Hour)},
		Cluster: ClusterConfig{Name: "switchboard", Bind: "127.0.0.1:7946"},
		Webhooks: WebhooksConfig{
			MaxAge: Duration(72 * time.Hour), AllowPrivateNetworks: false, Timeout: Duration(10 * time.Second),
			Concurrency: 64, RetryMin: Duration(5 * time.Second), RetryMax: Duration(30 * time.Minute),
			GoneFor: Duration(time.Hour),
		},
		Limits: LimitsConfig{MaxParts: 10, DefaultValidity: Duration(48 * time.Hour), MaxValidity: Duration(72 * time.Hour), MaxBatch: 1000},
	}
	if r := cfg.Node.ReadyRequiresCarrier; r == nil || !*r {
		t.Errorf("node.ready_requires_carrier = %v, want true", r)
	}
	if a := cfg.Node.AuthFailuresPerMinute; a == nil || *a != 10 {
		t.Errorf("node.auth_failures_per_minute = %v, want 10", a)
	}
	if g := cfg.Node.GCPercent; g == nil || *g != 400 {
		t.Errorf("node.gc_percent = %v, want 400", g)
	}
	cfg.Node.ReadyRequiresCarrier, cfg.Node.AuthFailuresPerMinute, cfg.Node.GCPercent = nil, nil, nil
	if cfg.Node != want.Node || cfg.Log != want.Log || cfg.Cache != want.Cache || cfg.Webhooks != want.Webhooks || cfg.Limits != want.Limits {
		t.Errorf("got  %+v %+v %+v %+v %+v\nwant %+v %+v %+v %+v %+v",
			cfg.Node, cfg.Log, cfg.Cache, cfg.Webhooks, cfg.Limits, want.Node, want.Log, want.Cache, want.Webhooks, want.Limits)
	}
	s := cfg.Storage
	if s.Backend != want.Storage.Backend || s.Keyspace != want.Storage.Keyspace || s.ReplicationFactor != 3 || s.Consistency != "quorum" || s.TTL != want.Storage.TTL {
		t.Errorf("storage = %+v", s)
	}
	if cl := cfg.Cluster; cl.Enabled || cl.Name != "switchboard" || cl.Bind != "127.0.0.1:7946" || cl.Remote != "127.0.0.1:7947" || cl.LeaseTTL.Std() != 2*time.Second {
		t.Errorf("cluster = %+v", cl)
	}
	c := cfg.Carriers[1]
	if c.Binds != 1 || c.Window != 64 || c.BindType != BindTransceiver || c.TPS != 0 || c.IDFormat != "" ||
		c.EnquireLink.Std() != 30*time.Second || c.ResponseTimeout.Std() != 10*time.Second ||
		c.ReconnectMin.Std() != time.Second || c.ReconnectMax.Std() != time.Minute || c.TLS || c.Simulator ||
		c.ReceiptTimeout.Std() != 72*time.Hour || c.MaxAttempts != 10 || c.Statuses() != nil {
		t.Errorf("carrier defaults = %+v", c)
	}
	if k := cfg.Keys[0]; k.Burst != 10 || k.MaxQueued != 1_000_000 {
		t.Errorf("key with rate 10: burst %d, max_queued %d; want 10, 1000000", k.Burst, k.MaxQueued)
	}
	if k := cfg.Keys[1]; k.Burst != 1 {
		t.Errorf("key with rate 0.5: burst %d, want 1", k.Burst)
	}
}

func TestEmptyFileAndNoFile(t *testing.T) {
	for _, path := range []string{writeConfig(t, "# nothing\n"), ""} {
		cfg, err := LoadConfig(path, nil)
		if err != nil {
			t.Fatalf("LoadConfig(%q): %v", path, err)
		}
		if cfg.Node.HTTP != "127.0.0.1:8080" || len(cfg.Carriers) != 0 {
			t.Errorf("LoadConfig(%q) = %+v", path, cfg)
		}
	}
}

func TestMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestUnknownKey(t *testing.T) {
	err := loadErr(t, "node:\n  name: x\n  htp: 127.0.0.1:1\ncarrier: []\n")
	wantContains(t, err, `line 3: unknown key "htp" in node`, `line 4: unknown key "carrier" in the top level`)

	err = loadErr(t, "carriers:\n  - name: a\n    hots: x:1\n")
	wantContains(t, err, `line 3: unknown key "hots" in carriers[0]`)
}

// Values of the wrong kind are reported in the configuration's words, with
// the line and the setting, never in the YAML library's (Go types, !!seq).
func TestYAMLTypeErrors(t *testing.T) {
	err := loadErr(t, `node:
  http: [127.0.0.1:8080]
  shutdown_timeout: 15
  ready_requires_carrier: maybe
limits:
  max_parts: many
carriers:
  - name: a
    host: smsc:2775
    binds: {n: 2}
    tps: fast
  - just a string
routes:
  - {prefix: "", carriers: a}
keys: {id: k}
webhooks: [x]
`)
	wantContains(t, err,
		`line 2: node.http: want a string, got a list`,
		`line 3: node.shutdown_timeout: want a duration like 30s, 5m or 72h, got "15"`,
		`line 4: node.ready_requires_carrier: want true or false, got "maybe"`,
		`line 6: limits.max_parts: want a whole number, got "many"`,
		`line 10: carriers[0].binds: want a whole number, got a mapping (name: value)`,
		`line 11: carriers[0].tps: want a number, got "fast"`,
		`line 12: carriers[1]: want a mapping of settings (name: value), got "just a string"`,
		`line 14: routes[0].carriers: want a list of strings, got "a"`,
		`line 15: keys: want a list, got a mapping (name: value)`,
		`line 16: webhooks: want a mapping of settings (name: value), got a list`,
	)
	for _, lib := range []string{"unmarshal", "!!", "main.", "yaml:"} {
		if strings.Contains(err.Error(), lib) {
			t.Errorf("the YAML library's words (%q) in: %v", lib, err)
		}
	}
	wantContains(t, loadErr(t, "node: [\n"), "not valid YAML: line 1: did not find expected node content")
	wantContains(t, loadErr(t, "- a\n"), "line 1: the file: want a mapping of settings (name: value), got a list")
	// Empty values are no values: defaults apply.
	if cfg := loadOK(t, "node:\n  http:\nlog:\n"); cfg.Node.HTTP != "127.0.0.1:8080" {
		t.Errorf("node.http = %q, want the default", cfg.Node.HTTP)
	}
}

func TestSecondDocument(t *testing.T) {
	err := loadErr(t, "node: {name: a}\n---\nnode: {name: b}\n")
	wantContains(t, err, "second YAML document")
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"node.name", func(c *Config) { c.Node.Name = " " }, "node.name: is empty"},
		{"node.http", func(c *Config) { c.Node.HTTP = "localhost" }, `node.http: "localhost" is not host:port`},
		{"node.http port", func(c *Config) { c.Node.HTTP = "127.0.0.1:http" }, `node.http: "127.0.0.1:http" is not host:port`},
		{"node.admin", func(c *Config) { c.Node.Admin = "x:99999" }, `node.admin: "x:99999" is not host:port`},
		{"node.admin same", func(c *Config) { c.Node.Admin = c.Node.HTTP }, "node.admin: "},
		{"node.data_dir", func(c *Config) { c.Node.DataDir = "" }, "node.data_dir: is empty"},
		{"node.admin_token", func(c *Config) { c.Node.AdminToken = "short" }, "node.admin_token: 5 characters, at least 16 needed"},
		{"node.tls_key alone", func(c *Config) { c.Node.TLSKey = "key.pem" }, "node.tls_cert: and node.tls_key go together"},
		{"node.tls files", func(c *Config) { c.Node.TLSCert, c.Node.TLSKey = "/nonexistent/cert.pem", "/nonexistent/key.pem" }, "node.tls_cert: open /nonexistent/cert.pem"},
		{"node.shutdown_timeout", func(c *Config) { c.Node.ShutdownTimeout = -1 }, "node.shutdown_timeout: "},
		{"node.drain_period", func(c *Config) { c.Node.DrainPeriod = -1 }, "node.drain_period: -1ns is not above 0"},
		{"log.level", func(c *Config) { c.Log.Level = "verbose" }, `log.level: "verbose"`},
		{"log.format", func(c *Config) { c.Log.Format = "xml" }, `log.format: "xml"`},
		{"storage.backend", func(c *Config) { c.Storage.Backend = "postgres" }, `storage.backend: "postgres" is not embedded or scylla`},
		{"scylla host", func(c *Config) { c.Storage.Backend = "scylla"; c.Storage.Hosts = []string{"db1", "db 2"} }, `storage.hosts[1]: "db 2" is not a host or host:port`},
		{"scylla hosts", func(c *Config) { c.Storage.Backend = "scylla" }, "storage.hosts: is empty"},
		{"scylla host ports mixed", func(c *Config) { c.Storage.Backend = "scylla"; c.Storage.Hosts = []string{"db1:9042", "db2"} }, `storage.hosts[1]: "db2" has no port and "db1:9042" has one`},
		{"scylla host ports differ", func(c *Config) { c.Storage.Backend = "scylla"; c.Storage.Hosts = []string{"db1:9042", "db2:9043"} }, `storage.hosts[1]: "db2:9043" has another port than "db1:9042"`},
		{"scylla host port", func(c *Config) { c.Storage.Backend = "scylla"; c.Storage.Hosts = []string{"db1:x"} }, `storage.hosts[0]: "db1:x" is not a host or host:port`},
		{"scylla consistency", func(c *Config) { c.Storage.Backend = "scylla"; c.Storage.Consistency = "most" }, `storage.consistency: "most"`},
		{"scylla keyspace", func(c *Config) { c.Storage.Backend = "scylla"; c.Storage.Keyspace = "1x" }, `storage.keyspace: "1x"`},
		{"scylla rf", func(c *Config) { c.Storage.Backend = "scylla"; c.Storage.ReplicationFactor = 0 }, "storage.replication_factor: 0"},
		{"cache.backend", func(c *Config) { c.Cache.Backend = "memcached" }, `cache.backend: "memcached"`},
		{"redis db", func(c *Config) { c.Cache.Backend = "redis"; c.Cache.DB = -1 }, "cache.db: -1 is negative"},
		{"redis carrier_ttl", func(c *Config) { c.Cache.Backend = "redis"; c.Cache.CarrierTTL = 0 }, "cache.carrier_ttl: 0s is not above 0"},
		{"redis addr", func(c *Config) { c.Cache.Backend = "redis"; c.Cache.Addr = "redis" }, `cache.addr: "redis" is not host:port`},
		{"cluster embedded", func(c *Config) { c.Cluster.Enabled = true }, `cluster.enabled: a cluster shares its storage: it needs storage.backend: scylla, not "embedded"`},
		{"cluster memory", func(c *Config) { c.Cluster.Enabled = true }, `cluster.enabled: a cluster's leases live in Redis: it needs cache.backend: redis, not "memory"`},
		{"cluster remote", func(c *Config) { c.Cluster.Enabled = true; c.Cluster.Remote = "n1" }, `cluster.remote: "n1" is not host:port`},
		{"cluster remote no host", func(c *Config) { c.Cluster.Enabled = true; c.Cluster.Remote = ":7947" }, `cluster.remote: ":7947" is not host:port`},
		{"cluster remote unspecified", func(c *Config) { c.Cluster.Enabled = true; c.Cluster.Remote = "0.0.0.0:7947" },
			`cluster.remote: "0.0.0.0:7947": the other nodes reach this node here, so the host must be this node's own address, not 0.0.0.0`},
		{"cluster remote loopback", func(c *Config) {
			c.Cluster.Enabled, c.Cluster.Bind, c.Cluster.Remote = true, "10.0.0.5:7946", "127.0.0.1:7947"
		}, `cluster.remote: "127.0.0.1:7947" is a loopback address, but cluster.bind gossips on 10.0.0.5`},
		{"cluster bind name", func(c *Config) { c.Cluster.Enabled = true; c.Cluster.Bind = "gossip.internal:7946" },
			`cluster.bind: "gossip.internal:7946": the host must be an IP address`},
		{"cluster lease_ttl", func(c *Config) { c.Cluster.Enabled = true; c.Cluster.LeaseTTL = Duration(time.Millisecond) }, "cluster.lease_ttl: 1ms is not between 300ms and 1m"},
		{"cluster seeds", func(c *Config) { c.Cluster.Enabled = true; c.Cluster.Seeds = []string{"n2"} }, `cluster.seeds[0]: "n2" is not host:port`},
		{"carrier name empty", func(c *Config) { c.Carriers[1].Name = "" }, "carriers[1].name: is empty"},
		{"carrier name chars", func(c *Config) { c.Carriers[1].Name = "b,c" }, `carriers[1].name: "b,c"`},
		{"carrier name dup", func(c *Config) { c.Carriers[1].Name = "a" }, `carriers[1].name: "a" is used by an earlier carrier`},
		{"carrier host", func(c *Config) { c.Carriers[1].Host = "x" }, `carriers[1].host: "x" is not host:port`},
		{"carrier host empty", func(c *Config) { c.Carriers[1].Host = "" }, `carriers[1].host: "" is not host:port`},
		{"carrier host no host", func(c *Config) { c.Carriers[1].Host = ":2775" }, `carriers[1].host: ":2775" is not host:port`},
		{"system_id", func(c *Config) { c.Carriers[0].SystemID = "sixteen-bytes-id" }, "carriers[0].system_id: 16 bytes"},
		{"password", func(c *Config) { c.Carriers[0].Password = "ninebytes" }, "carriers[0].password: 9 bytes"},
		{"password not echoed", func(c *Config) { c.Carriers[0].Password = "hunter2hunter2" }, "carriers[0].password: 14 bytes, at most 8"},
		{"system_type", func(c *Config) { c.Carriers[0].SystemType = "thirteen-byte" }, "carriers[0].system_type: 13 bytes"},
		{"binds low", func(c *Config) { c.Carriers[0].Binds = -1 }, "carriers[0].binds: -1 is not in 1..64"},
		{"binds high", func(c *Config) { c.Carriers[0].Binds = 65 }, "carriers[0].binds: 65 is not in 1..64"},
		{"window low", func(c *Config) { c.Carriers[0].Window = -5 }, "carriers[0].window: -5 is not in 1..10000"},
		{"window high", func(c *Config) { c.Carriers[0].Window = 10001 }, "carriers[0].window: 10001"},
		{"tps", func(c *Config) { c.Carriers[0].TPS = -1 }, "carriers[0].tps: -1"},
		{"bind_type", func(c *Config) { c.Carriers[0].BindType = "receiver" }, `carriers[0].bind_type: "receiver"`},
		{"id_format", func(c *Config) { c.Carriers[0].IDFormat = "base64" }, `carriers[0].id_format: "base64"`},
		{"enquire_link", func(c *Config) { c.Carriers[0].EnquireLink = -1 }, "carriers[0].enquire_link: "},
		{"enquire_link tiny", func(c *Config) { c.Carriers[0].EnquireLink = 1 }, "carriers[0].enquire_link: 1ns is below 100ms"},
		{"response_timeout", func(c *Config) { c.Carriers[0].ResponseTimeout = -1 }, "carriers[0].response_timeout: "},
		{"response_timeout tiny", func(c *Config) { c.Carriers[0].ResponseTimeout = Duration(time.Millisecond) }, "carriers[0].response_timeout: 1ms is below 100ms"},
		{"response_timeout huge", func(c *Config) { c.Carriers[0].ResponseTimeout = Duration(time.Hour) }, "carriers[0].response_timeout: 1h0m0s is above 5m0s"},
		{"reconnect", func(c *Config) { c.Carriers[0].ReconnectMax = Duration(time.Millisecond) }, "carriers[0].reconnect_max: 1ms is below reconnect_min 1s"},
		{"tls_skip_verify", func(c *Config) { c.Carriers[0].TLSSkipVerify = true }, "carriers[0].tls_skip_verify: is set but tls is not"},
		{"receipt_timeout", func(c *Config) { c.Carriers[0].ReceiptTimeout = 0 }, "carriers[0].receipt_timeout: 0s is not above 0"},
		{"max_attempts", func(c *Config) { c.Carriers[0].MaxAttempts = 0 }, "carriers[0].max_attempts: 0 is not in 1..1000"},
		{"retriable_statuses", func(c *Config) { c.Carriers[0].RetriableStatuses = []string{"0x58", "ESME_NOPE"} }, `carriers[0].retriable_statuses[1]: "ESME_NOPE" is not a command_status`},
		{"status both ways", func(c *Config) {
			c.Carriers[0].RetriableStatuses = []string{"0x45"}
			c.Carriers[0].PermanentStatuses = []string{"ESME_RSUBMITFAIL"}
		}, "carriers[0].permanent_statuses[0]: ESME_RSUBMITFAIL is listed in retriable_statuses too"},
		{"no routes", func(c *Config) { c.Routes = nil }, "routes: is empty"},
		{"max_validity under a second", func(c *Config) {
			c.Limits.DefaultValidity, c.Limits.MaxValidity = Duration(100*time.Millisecond), Duration(500*time.Millisecond)
		}, "limits.max_validity: 500ms is below 1s"},
		{"route prefix", func(c *Config) { c.Routes[1].Prefix = "44a" }, `routes[1].prefix: "44a"`},
		{"route prefix plus", func(c *Config) { c.Routes[1].Prefix = "+" }, `routes[1].prefix: "+"`},
		{"route prefix long", func(c *Config) { c.Routes[1].Prefix = "1234567890123456" }, "routes[1].prefix: "},
		{"route prefix dup", func(c *Config) { c.Routes[1].Prefix = "" }, `routes[1].prefix: "" is the prefix of routes[0] too`},
		{"route prefix dup plus", func(c *Config) {
			c.Routes[0].Prefix = "44"
		}, `routes[1].prefix: "+44" is the prefix of routes[0] too`},
		{"route carriers empty", func(c *Config) { c.Routes[1].Carriers = nil }, "routes[1].carriers: is empty"},
		{"route carrier unknown", func(c *Config) { c.Routes[1].Carriers = []string{"b", "zz"} }, `routes[1].carriers[1]: "zz" is not a configured carrier`},
		{"route carrier twice", func(c *Config) { c.Routes[1].Carriers = []string{"b", "b"} }, `routes[1].carriers[1]: "b" is listed twice`},
		{"key id empty", func(c *Config) { c.Keys[1].ID = "" }, "keys[1].id: is empty"},
		{"key id chars", func(c *Config) { c.Keys[1].ID = "k 2" }, `keys[1].id: "k 2"`},
		{"key id long", func(c *Config) { c.Keys[1].ID = strings.Repeat("k", 65) }, "keys[1].id: "},
		{"key id dup", func(c *Config) { c.Keys[1].ID = "k1" }, `keys[1].id: "k1" is used by an earlier key`},
		{"secret none", func(c *Config) { c.Keys[1].SecretSHA256 = "" }, "keys[1].secret: is empty"},
		{"secret both", func(c *Config) { c.Keys[1].Secret = "0123456789abcdefXX" }, "keys[1].secret: and secret_sha256 are both set"},
		{"secret short", func(c *Config) { c.Keys[0].Secret = "short" }, "keys[0].secret: 5 characters, at least 16"},
		{"secret runes", func(c *Config) { c.Keys[0].Secret = strings.Repeat("é", 15) }, "keys[0].secret: 15 characters"},
		{"secret_sha256 bad", func(c *Config) { c.Keys[1].SecretSHA256 = "abc" }, "keys[1].secret_sha256: is not 64 hex digits"},
		{"secret dup", func(c *Config) {
			h := sha256.Sum256([]byte(c.Keys[0].Secret))
			c.Keys[1].SecretSHA256 = hex.EncodeToString(h[:])
		}, "keys[1].secret: is the same secret as keys[0]'s"},
		{"rate zero", func(c *Config) { c.Keys[0].Rate = 0 }, "keys[0].rate: 0 is not a number above 0"},
		{"burst", func(c *Config) { c.Keys[0].Burst = -1 }, "keys[0].burst: -1 is below 1"},
		{"max_queued", func(c *Config) { c.Keys[0].MaxQueued = -1 }, "keys[0].max_queued: -1 is below 1"},
		{"sync_interval negative", func(c *Config) { c.Storage.SyncInterval = durationPtr(-1) }, "storage.sync_interval: -1ns is not between 0s and 100ms"},
		{"sync_interval long", func(c *Config) { c.Storage.SyncInterval = durationPtr(time.Second) }, "storage.sync_interval: 1s is not between 0s and 100ms"},
		{"min_free unit", func(c *Config) { c.Storage.MinFree = "1 GiBs" }, `storage.min_free: "1 GiBs" is not a size like 1GiB or 500MiB, a percentage like 5%, or 0`},
		{"min_free bare number", func(c *Config) { c.Storage.MinFree = "500" }, `storage.min_free: "500" is not a size`},
		{"min_free percent", func(c *Config) { c.Storage.MinFree = "100%" }, `storage.min_free: "100%" is not a percentage above 0% and below 100%`},
		{"compaction_rate unit", func(c *Config) { c.Storage.CompactionRate = "8MiB/s" }, `storage.compaction_rate: "8MiB/s" is not a size like 300MiB or 1GiB, or 0`},
		{"compaction_rate low", func(c *Config) { c.Storage.CompactionRate = "512KiB" }, `storage.compaction_rate: "512KiB" is below 1MiB a second`},
		{"ttl short", func(c *Config) {
			c.Limits.DefaultValidity, c.Limits.MaxValidity, c.Storage.TTL = Duration(time.Hour), Duration(time.Hour), Duration(12*time.Hour)
		}, "storage.ttl: 12h0m0s is below 24h0m0s"},
		{"ttl below validity", func(c *Config) { c.Storage.TTL = Duration(48 * time.Hour) }, "storage.ttl: 48h0m0s is below 72h0m0s: messages must be kept at least a day and at least limits.max_validity"},
		{"carrier_id_grace", func(c *Config) { c.Storage.CarrierIDGrace = -1 }, "storage.carrier_id_grace: -1ns is not above 0"},
		{"callback_batch zero", func(c *Config) { c.Keys[0].CallbackBatch = 0 }, "keys[0].callback_batch: 0 is not between 1 and 1000"},
		{"callback_batch huge", func(c *Config) { c.Keys[0].CallbackBatch = 1001 }, "keys[0].callback_batch: 1001 is not between 1 and 1000"},
		{"callback_url scheme", func(c *Config) { c.Keys[0].CallbackURL = "ftp://x.example/" }, `keys[0].callback_url: "ftp://x.example/": callback URL must be http or https`},
		{"callback_url relative", func(c *Config) { c.Keys[0].CallbackURL = "/hook" }, `keys[0].callback_url: "/hook"`},
		{"callback_url private", func(c *Config) { c.Keys[0].CallbackURL = "http://127.0.0.1:9000/hook" }, "keys[0].callback_url: \"http://127.0.0.1:9000/hook\": callback URL host 127.0.0.1 is a loopback address; set webhooks.allow_private_networks"},
		{"callback_url localhost", func(c *Config) { c.Keys[0].CallbackURL = "http://localhost/hook" }, "keys[0].callback_url: "},
		{"callback_statuses", func(c *Config) { c.Keys[0].CallbackStatuses = []string{"delivered", "accepted"} },
			`keys[0].callback_statuses: ["delivered" "accepted"]: each must be one of queued`},
		{"inbound_url private", func(c *Config) { c.Keys[0].InboundURL = "http://10.0.0.1/in" }, `keys[0].inbound_url: "http://10.0.0.1/in": callback URL host 10.0.0.1 is a private address`},
		{"numbers form", func(c *Config) { c.Keys[0].Numbers = []string{"447700900999"} }, `keys[0].numbers[0]: "447700900999" is not + and 8-15 digits`},
		{"numbers dup", func(c *Config) {
			c.Keys[0].Numbers = []string{"+447700900999"}
			c.Keys[1].Numbers = []string{"+447700900999"}
		}, `keys[1].numbers[0]: +447700900999 is already a number of key "k1"`},
		{"webhooks.max_age", func(c *Config) { c.Webhooks.MaxAge = -1 }, "webhooks.max_age: "},
		{"webhooks.gone_for", func(c *Config) { c.Webhooks.GoneFor = 0 }, "webhooks.gone_for: 0s is not above 0"},
		{"webhooks.retry_max", func(c *Config) { c.Webhooks.RetryMax = Duration(time.Second) }, "webhooks.retry_max: 1s is below retry_min 5s"},
		{"webhooks.concurrency", func(c *Config) { c.Webhooks.Concurrency = 0 }, "webhooks.concurrency: 0 is below 1"},
		{"limits.max_parts", func(c *Config) { c.Limits.MaxParts = 256 }, "limits.max_parts: 256 is not in 1..255"},
		{"limits.default_validity", func(c *Config) { c.Limits.DefaultValidity = -1 }, "limits.default_validity: "},
		{"limits.max_validity", func(c *Config) { c.Limits.MaxValidity = Duration(time.Hour) }, "limits.max_validity: 1h0m0s is below default_validity 48h0m0s"},
		{"limits.max_batch", func(c *Config) { c.Limits.MaxBatch = -1 }, "limits.max_batch: -1 is below 1"},
	}
	if err := loadOK(t, baseYAML).Validate(); err != nil {
		t.Fatalf("base config: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadOK(t, baseYAML)
			tt.mutate(cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			wantContains(t, err, tt.want)
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
}

// storage.backend: scylla with its settings is a valid configuration.
func TestValidateScylla(t *testing.T) {
	cfg := loadOK(t, baseYAML+"storage: {backend: scylla, hosts: [\"127.0.0.1:9042\", \"db2:9042\"], keyspace: sb_1, replication_factor: 1, consistency: local_quorum, ttl: 240h}\n")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if s := cfg.Storage; s.Backend != StorageScylla || len(s.Hosts) != 2 || s.Keyspace != "sb_1" || s.ReplicationFactor != 1 {
		t.Fatalf("storage = %+v", s)
	}
	// A TTL longer than a CQL database keeps a row is refused by name.
	err := loadErr(t, baseYAML+"storage: {backend: scylla, hosts: [db1], keyspace: sb_1, ttl: 200000h}\n")
	wantContains(t, err, "storage.ttl: 200000h0m0s is above")
}

func TestValidateRedisCache(t *testing.T) {
	cfg := loadOK(t, baseYAML+"cache: {backend: redis, addr: \"cache.internal:6380\", password: pw, db: 2}\n")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if c := cfg.Cache; c.Backend != CacheRedis || c.Addr != "cache.internal:6380" || c.Password != "pw" || c.DB != 2 ||
		c.CarrierTTL.Std() != 72*time.Hour {
		t.Fatalf("cache settings %+v", c)
	}
	if got := carrierTTL(cfg.Cache.CarrierTTL, Duration(24*time.Hour)); got != 24*time.Hour {
		t.Errorf("carrier ids kept %v with storage.ttl 24h, want 24h", got)
	}
	if got := carrierTTL(cfg.Cache.CarrierTTL, Duration(720*time.Hour)); got != 72*time.Hour {
		t.Errorf("carrier ids kept %v with storage.ttl 720h, want 72h", got)
	}
}

func TestValidateAllowsPrivateCallbacksWhenAsked(t *testing.T) {
	cfg := loadOK(t, baseYAML+"webhooks: {allow_private_networks: true}\n")
	cfg.Keys[0].CallbackURL = "http://127.0.0.1:9000/hook"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Keys[0].CallbackURL = "https://hooks.example.com/sms"
	cfg.Webhooks.AllowPrivateNetworks = false
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	err := loadErr(t, `
node: {http: nowhere}
carriers:
  - {name: a, host: "x"}
  - {name: a, host: "y:1", binds: 100}
keys:
  - {id: k, secret: short, rate: 0}
`)
	wantContains(t, err,
		"invalid configuration in ",
		"problems):",
		"\n  node.http: ",
		"\n  carriers[0].host: ",
		"\n  carriers[1].name: ",
		"\n  carriers[1].binds: ",
		"\n  routes: is empty",
		"\n  keys[0].secret: ",
		"\n  keys[0].rate: ",
	)
}

func TestSecretSHA256(t *testing.T) {
	secret := "a-long-enough-secret"
	sum := sha256.Sum256([]byte(secret))
	for _, enc := range []string{hex.EncodeToString(sum[:]), strings.ToUpper(hex.EncodeToString(sum[:]))} {
		cfg := loadOK(t, "keys:\n  - {id: k, rate: 1, secret_sha256: "+enc+"}\n")
		k := cfg.Keys[0]
		if k.Hash() != sum || k.Hash() != switchboard.HashSecret(secret) {
			t.Errorf("Hash() from %s = %x, want %x", enc, k.Hash(), sum)
		}
		key := k.Key()
		if !key.Matches(secret) || key.Matches("something-else-entirely") {
			t.Error("the domain key does not match its secret")
		}
		if key.ID != "k" || key.Rate != 1 || key.Burst != 1 || key.MaxQueued != 1_000_000 {
			t.Errorf("Key() = %+v", key)
		}
	}
	k := KeyConfig{Secret: secret}
	if k.Hash() != sum {
		t.Error("Hash() from secret")
	}
}

func TestEnvOverrides(t *testing.T) {
	cfg := loadOK(t, baseYAML,
		"PATH=/usr/bin",
		"SWITCHBOARD_CONFIG=/elsewhere.yaml",
		"SWITCHBOARD_TEST_CQL=127.0.0.1:9042",                // the tests', not a setting
		"SWITCHBOARD_NODE_HTTP=0.0.0.0:9090",                 // scalar
		"SWITCHBOARD_NODE_DATA_DIR=/var/lib/switchboard",     // name with "_"
		"SWITCHBOARD_NODE_SHUTDOWN_TIMEOUT=1m30s",            // duration
		"SWITCHBOARD_LOG_LEVEL=debug",                        //
		"SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true",   // bool
		"SWITCHBOARD_CARRIERS_1_HOST=10.0.0.7:2776",          // list item
		"SWITCHBOARD_CARRIERS_0_TPS=12.5",                    // number
		"SWITCHBOARD_CARRIERS_0_BINDS=4",                     // integer
		"SWITCHBOARD_CARRIERS_0_TLS=1",                       // bool, prefix of the next
		"SWITCHBOARD_CARRIERS_0_TLS_SKIP_VERIFY=true",        //
		"SWITCHBOARD_ROUTES_0_CARRIERS=b, a",                 // comma list
		"SWITCHBOARD_KEYS_0_RATE=300",                        // burst default follows
		"SWITCHBOARD_KEYS_1_SECRET_SHA256=",                  // prefix of SECRET
		"SWITCHBOARD_KEYS_1_SECRET=another-long-secret",      //
		"SWITCHBOARD_KEYS_1_CALLBACK_URL=http://10.1.1.1/cb", // allowed by the bool above
	)
	if cfg.Node.HTTP != "0.0.0.0:9090" || cfg.Node.DataDir != "/var/lib/switchboard" || cfg.Node.ShutdownTimeout.Std() != 90*time.Second {
		t.Errorf("node = %+v", cfg.Node)
	}
	if cfg.Log.Level != "debug" || !cfg.Webhooks.AllowPrivateNetworks {
		t.Errorf("log %+v, webhooks %+v", cfg.Log, cfg.Webhooks)
	}
	if c := cfg.Carriers[1]; c.Host != "10.0.0.7:2776" {
		t.Errorf("carriers[1].host = %q", c.Host)
	}
	if c := cfg.Carriers[0]; c.TPS != 12.5 || c.Binds != 4 || !c.TLS || !c.TLSSkipVerify || c.Host != "smsc-a.example:2775" {
		t.Errorf("carriers[0] = %+v", c)
	}
	if got := cfg.Routes[0].Carriers; !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("routes[0].carriers = %q", got)
	}
	if k := cfg.Keys[0]; k.Rate != 300 || k.Burst != 300 {
		t.Errorf("keys[0]: rate %v burst %d, want 300 300", k.Rate, k.Burst)
	}
	if k := cfg.Keys[1]; k.Hash() != switchboard.HashSecret("another-long-secret") || k.CallbackURL != "http://10.1.1.1/cb" {
		t.Errorf("keys[1] = %+v", k)
	}
}

func TestEnvErrors(t *testing.T) {
	err := loadErr(t, baseYAML,
		"SWITCHBOARD_NODE_HTPP=x:1",
		"SWITCHBOARD_CARRIERS_2_HOST=x:1",
		"SWITCHBOARD_CARRIERS_0_BINDS=two",
		"SWITCHBOARD_NODE=x",
		"SWITCHBOARD_ROUTES_X_PREFIX=1",
		"SWITCHBOARD_WEBHOOKS_MAX_AGE=3d",
		"SWITCHBOARD_CARRIERS_0_TLS=maybe",
	)
	wantContains(t, err,
		"SWITCHBOARD_NODE_HTPP: unknown variable",
		"SWITCHBOARD_CARRIERS_2_HOST: carriers[2]: index out of range: the configuration has 2",
		`SWITCHBOARD_CARRIERS_0_BINDS: carriers[0].binds: "two" is not an integer`,
		"SWITCHBOARD_NODE: unknown variable",
		"SWITCHBOARD_ROUTES_X_PREFIX: unknown variable",
		`SWITCHBOARD_WEBHOOKS_MAX_AGE: webhooks.max_age: "3d" is not a duration`,
		`SWITCHBOARD_CARRIERS_0_TLS: carriers[0].tls: "maybe" is not a boolean`,
	)
	// An index into an empty list is out of range too.
	err = loadErr(t, "", "SWITCHBOARD_KEYS_0_ID=k")
	wantContains(t, err, "SWITCHBOARD_KEYS_0_ID: keys[0]: index out of range: the configuration has 0")
	// A file that does not decode is reported alone: applied to nothing,
	// every variable into one of its lists would be out of range.
	err = loadErr(t, strings.Replace(baseYAML, "system_id: sb,", "system_id: sb, binds: two,", 1), "SWITCHBOARD_CARRIERS_0_HOST=x:1")
	wantContains(t, err, "binds")
	if strings.Contains(err.Error(), "out of range") {
		t.Errorf("a file that did not decode: %v, want its own errors alone", err)
	}
}

// The test suites' variables (the servers CI runs) are not settings, and
// a node started with them in its environment ignores them.
func TestEnvTestVariablesIgnored(t *testing.T) {
	cfg, err := LoadConfig("", []string{"SWITCHBOARD_TEST_REDIS=127.0.0.1:6379", "SWITCHBOARD_TEST_CQL=127.0.0.1:9042",
		"SWITCHBOARD_NODE_NAME=edge-8"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.Name != "edge-8" {
		t.Errorf("node %+v", cfg.Node)
	}
}

func TestEnvAlone(t *testing.T) {
	cfg, err := LoadConfig("", []string{"SWITCHBOARD_NODE_NAME=edge-7", "SWITCHBOARD_LOG_FORMAT=json"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.Name != "edge-7" || cfg.Log.Format != "json" {
		t.Errorf("node %+v log %+v", cfg.Node, cfg.Log)
	}
}

func TestEnvEmptyValueTakesDefault(t *testing.T) {
	cfg := loadOK(t, "node: {http: 127.0.0.1:1}\n", "SWITCHBOARD_NODE_HTTP=")
	if cfg.Node.HTTP != "127.0.0.1:8080" {
		t.Errorf("node.http = %q, want the default", cfg.Node.HTTP)
	}
}

// An empty value in the file is the default too, whatever the setting's
// kind, as an empty variable is.
func TestFileEmptyValueTakesDefault(t *testing.T) {
	cfg := loadOK(t, baseYAML+"node: {drain_period: \"\", http: ''}\nstorage: {sync_interval: \"\"}\n")
	if cfg.Node.DrainPeriod.Std() != 5*time.Second || cfg.Node.HTTP != "127.0.0.1:8080" || cfg.Storage.syncInterval() != 500*time.Microsecond {
		t.Errorf("node.drain_period %v, node.http %q, storage.sync_interval %v: want the defaults", cfg.Node.DrainPeriod, cfg.Node.HTTP, cfg.Storage.SyncInterval)
	}
}

// A boolean whose default is true can still be set to false, in every
// tier, and an empty value restores the default.
func TestBoolDefaultTrue(t *testing.T) {
	for _, c := range []struct {
		yaml string
		env  []string
		want bool
	}{
		{"", nil, true},
		{"node: {ready_requires_carrier: false}\n", nil, false},
		{"node: {ready_requires_carrier: true}\n", nil, true},
		{"", []string{"SWITCHBOARD_NODE_READY_REQUIRES_CARRIER=false"}, false},
		{"node: {ready_requires_carrier: false}\n", []string{"SWITCHBOARD_NODE_READY_REQUIRES_CARRIER="}, true},
		{"node: {ready_requires_carrier: false}\n", []string{"SWITCHBOARD_NODE_READY_REQUIRES_CARRIER=1"}, true},
	} {
		cfg := loadOK(t, c.yaml, c.env...)
		if got := cfg.Node.ReadyRequiresCarrier; got == nil || *got != c.want {
			t.Errorf("%q %q: %v, want %v", c.yaml, c.env, got, c.want)
		}
	}
	cfg := loadOK(t, "")
	if err := cfg.Set("node.ready_requires_carrier", "false"); err != nil || *cfg.Node.ReadyRequiresCarrier {
		t.Errorf("--set false: %v, %v", err, *cfg.Node.ReadyRequiresCarrier)
	}
	// An integer whose 0 means something: 0 stays 0, unset is the default.
	for yaml, want := range map[string]int{"": 10, "node: {auth_failures_per_minute: 0}\n": -1, "node: {auth_failures_per_minute: 3}\n": 3} {
		if got := loadOK(t, yaml).Node.authFailuresPerMinute(); got != want {
			t.Errorf("%q: %d for the HTTP server, want %d", yaml, got, want)
		}
	}
	wantContains(t, loadErr(t, "node: {auth_failures_per_minute: -1}\n"), "node.auth_failures_per_minute: -1 is negative")
	err := loadErr(t, "", "SWITCHBOARD_NODE_READY_REQUIRES_CARRIER=maybe")
	wantContains(t, err, `SWITCHBOARD_NODE_READY_REQUIRES_CARRIER: node.ready_requires_carrier: "maybe" is not a boolean`)
}

func TestOverrides(t *testing.T) {
	path := writeConfig(t, baseYAML)
	cfg, err := loadConfig(path, []string{"SWITCHBOARD_NODE_HTTP=127.0.0.1:1"}, []string{
		"node.http=127.0.0.1:2",
		"carriers[1].window=7",
		"carriers.0.id_format=HEX",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.HTTP != "127.0.0.1:2" {
		t.Errorf("node.http = %q: flags should win over the environment", cfg.Node.HTTP)
	}
	if cfg.Carriers[1].Window != 7 || cfg.Carriers[0].ParsedIDFormat() != receipt.IDHex {
		t.Errorf("carriers = %+v", cfg.Carriers)
	}
	_, err = loadConfig(path, nil, []string{"node.htp=x", "carriers[5].host=x:1", "nonsense", "node=x", "node.http.port=1"})
	if err == nil {
		t.Fatal("bad overrides accepted")
	}
	wantContains(t, err, `--set: node.htp: no such setting`, "carriers[5]: index out of range",
		`"nonsense": want path=value`, "node: is a section", "node.http.port: no such setting")
	// The value of an override is not repeated: it may be a secret.
	_, err = loadConfig(path, nil, []string{"keys[9].secret=TopSecretValue123"})
	if err == nil || strings.Contains(err.Error(), "TopSecretValue123") {
		t.Fatalf("an override's error repeats its value: %v", err)
	}
}

func TestConfigPath(t *testing.T) {
	env := []string{"HOME=/root", "SWITCHBOARD_CONFIG=/etc/sb.yaml"}
	for _, tt := range []struct {
		flag string
		env  []string
		want string
	}{
		{"", nil, "cluster.yaml"},
		{"", env, "/etc/sb.yaml"},
		{"my.yaml", env, "my.yaml"},
		{"", []string{"SWITCHBOARD_CONFIG="}, "cluster.yaml"},
	} {
		if got := configPath(tt.flag, tt.env); got != tt.want {
			t.Errorf("configPath(%q, %q) = %q, want %q", tt.flag, tt.env, got, tt.want)
		}
	}
}

// TestEveryOption checks the reflection that the environment, the defaults
// and --help share: every setting has help, its variable resolves back to
// it, its default parses, and no two settings share a variable.
func TestEveryOption(t *testing.T) {
	seen := map[string]string{}
	cfg := loadOK(t, baseYAML) // has list items at index 0
	for _, o := range configOptions() {
		if o.Help == "" {
			t.Errorf("%s has no help tag", o.Path)
		}
		if o.section != nil {
			continue
		}
		if prev, dup := seen[o.Env]; dup {
			t.Errorf("%s and %s share %s", prev, o.Path, o.Env)
		}
		seen[o.Env] = o.Path
		name := strings.ReplaceAll(strings.TrimPrefix(o.Env, envPrefix), "<n>", "0")
		segs, ok := envPath(configType, name)
		want := strings.ReplaceAll(o.Path, "[n]", ".0")
		if !ok || strings.Join(segs, ".") != want {
			t.Errorf("%s resolves to %q, %v; want %s", o.Env, segs, ok, want)
		}
		if o.Default != "" {
			if err := cfg.Set(strings.ReplaceAll(o.Path, "[n]", "[0]"), o.Default); err != nil {
				t.Errorf("%s: default: %v", o.Path, err)
			}
		}
	}
	if len(seen) < 50 {
		t.Errorf("only %d settings found", len(seen))
	}
}

func TestConfigHelp(t *testing.T) {
	help := configHelp()
	for _, o := range configOptions() {
		if !strings.Contains(help, o.Path) || (o.section == nil && !strings.Contains(help, o.Env)) {
			t.Errorf("--help does not list %s / %s", o.Path, o.Env)
		}
	}
	for _, s := range []string{
		"SWITCHBOARD_NODE_HTTP", "(default 127.0.0.1:8080)", "SWITCHBOARD_CARRIERS_<n>_HOST",
		"SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE_NETWORKS", "SWITCHBOARD_CONFIG",
	} {
		if !strings.Contains(help, s) {
			t.Errorf("--help does not mention %s", s)
		}
	}
}

// TestDocsListEveryOption keeps docs/configuration.md in step with the
// code: it must name every setting and its variable.
func TestDocsListEveryOption(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range configOptions() {
		if o.section != nil {
			continue
		}
		if !strings.Contains(string(doc), "`"+o.Path+"`") {
			t.Errorf("docs/configuration.md does not list `%s`", o.Path)
		}
		if !strings.Contains(string(doc), "`"+o.Env+"`") {
			t.Errorf("docs/configuration.md does not list `%s`", o.Env)
		}
		if o.Default != "" && !strings.Contains(string(doc), "`"+o.Path+"` | `"+o.Env+"` | "+o.Type+" | `"+o.Default+"`") {
			t.Errorf("docs/configuration.md: row of %s should read `%s` | `%s` | %s | `%s`", o.Path, o.Path, o.Env, o.Type, o.Default)
		}
	}
}

func durationPtr(d time.Duration) *Duration { v := Duration(d); return &v }

// storage.sync_interval: 0s means every write's fsync at once (no interval
// in the store), which unset (the default 500us) and an empty variable do
// not; the other storage settings reach the store as set.
func TestStorageOptions(t *testing.T) {
	for _, tt := range []struct {
		yaml    string
		environ []string
		want    time.Duration
	}{
		{"", nil, 500 * time.Microsecond},
		{"storage: {sync_interval: 0s}", nil, -1},
		{"storage: {sync_interval: 2ms}", nil, 2 * time.Millisecond},
		{"", []string{"SWITCHBOARD_STORAGE_SYNC_INTERVAL=0s"}, -1},
		{"storage: {sync_interval: 0s}", []string{"SWITCHBOARD_STORAGE_SYNC_INTERVAL="}, 500 * time.Microsecond},
	} {
		cfg := loadOK(t, baseYAML+tt.yaml+"\n", tt.environ...)
		if got := cfg.Storage.pebbleOptions(zerolog.Nop()).SyncInterval; got != tt.want {
			t.Errorf("%q %q: the store's SyncInterval = %v, want %v", tt.yaml, tt.environ, got, tt.want)
		}
	}
	cfg := loadOK(t, baseYAML+"storage: {ttl: 240h, carrier_id_grace: 24h, min_free: 5%}\n")
	o := cfg.Storage.pebbleOptions(zerolog.Nop())
	if o.TTL != 240*time.Hour || o.CarrierIDGrace != 24*time.Hour || o.MinFree != 0 || o.MinFreePercent != 5 {
		t.Errorf("store options %+v", o)
	}
	// storage.compaction_rate: 0 is unpaced (negative in the store, where
	// 0 would be its default).
	for _, tt := range []struct {
		yaml string
		want int64
	}{
		{"", 8 << 20},
		{"storage: {compaction_rate: 32MiB}", 32 << 20},
		{"storage: {compaction_rate: 0}", -1},
	} {
		cfg := loadOK(t, baseYAML+tt.yaml+"\n")
		if got := cfg.Storage.pebbleOptions(zerolog.Nop()).CompactionRate; got != tt.want {
			t.Errorf("%q: the store's CompactionRate = %d, want %d", tt.yaml, got, tt.want)
		}
	}
}

func TestParseMinFree(t *testing.T) {
	for _, tt := range []struct {
		in      string
		bytes   int64
		percent float64
	}{
		{"", 0, 0},
		{"0", -1, 0},
		{"5%", 0, 5},
		{" 2.5 % ", 0, 2.5},
		{"1GiB", 1 << 30, 0},
		{"500MiB", 500 << 20, 0},
		{"1.5gib", 3 << 29, 0},
		{"2GB", 2e9, 0},
		{"100 KiB", 100 << 10, 0},
		{"4096B", 4096, 0},
	} {
		b, p, err := parseMinFree(tt.in)
		if err != nil || b != tt.bytes || p != tt.percent {
			t.Errorf("parseMinFree(%q) = %d, %v, %v; want %d, %v", tt.in, b, p, err, tt.bytes, tt.percent)
		}
	}
	for _, bad := range []string{"GiB", "-1GiB", "0%", "101%", "1 GiB GiB", "1e3MB", "x%", "1PiB0"} {
		if _, _, err := parseMinFree(bad); err == nil {
			t.Errorf("parseMinFree(%q) succeeded", bad)
		}
	}
}

func TestDuration(t *testing.T) {
	cfg := loadOK(t, "node: {shutdown_timeout: 1h2m3s}\n")
	if cfg.Node.ShutdownTimeout.Std() != time.Hour+2*time.Minute+3*time.Second || cfg.Node.ShutdownTimeout.String() != "1h2m3s" {
		t.Errorf("shutdown_timeout = %v", cfg.Node.ShutdownTimeout)
	}
	v, err := Duration(90 * time.Second).MarshalYAML()
	if err != nil || v != "1m30s" {
		t.Errorf("MarshalYAML = %v, %v", v, err)
	}
}

// A carrier's status overrides reach its binds' table.
func TestCarrierStatusOverrides(t *testing.T) {
	c := CarrierConfig{RetriableStatuses: []string{"ESME_RSUBMITFAIL"}, PermanentStatuses: []string{"0x58"}}
	table := c.Statuses()
	if !table.Retriable(data.ESME_RSUBMITFAIL) || table.Retriable(data.ESME_RTHROTTLED) || !table.Retriable(data.ESME_RSYSERR) {
		t.Fatalf("table %v: want 0x45 retriable, 0x58 permanent, the rest as SMPP 3.4 says", table)
	}
}

// The file merged with the admin API's items is checked without reading
// the files it names again: while a certificate is being replaced (its
// files briefly missing), another node's revocation is still applied.
// Before, the merge failed, and the sync skipped the change for good.
func TestMergeDoesNotReadTheTLSFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, cert, key, 1)
	cfg := loadOK(t, fmt.Sprintf("node: {tls_cert: %s, tls_key: %s}\n", cert, key))
	if err := os.Remove(cert); err != nil {
		t.Fatal(err)
	}
	c := newCatalog(cfg, zerolog.Nop())
	stored := &storedKey{Key: KeyConfig{ID: "api1", SecretSHA256: strings.Repeat("ab", 32), Rate: 10, Burst: 10}, RevokedAt: time.Now()}
	if _, err := c.merge(storedItems{keys: []*storedKey{stored}}); err != nil {
		t.Fatalf("merging a revocation while the certificate is missing: %v", err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "node.tls_cert") {
		t.Fatalf("loading the file with the certificate missing: %v, want a node.tls_cert error", err)
	}
}

// A callback URL refused for carrying credentials is named in the error
// without its password.
func TestCallbackURLErrorHidesItsPassword(t *testing.T) {
	err := loadErr(t, baseYAML, "SWITCHBOARD_KEYS_0_CALLBACK_URL=https://user:S3cretPass@hooks.example.com/x")
	wantContains(t, err, "keys[0].callback_url", "must not carry credentials")
	if strings.Contains(err.Error(), "S3cretPass") {
		t.Fatalf("the error repeats the password: %v", err)
	}
}
