package main

import (
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linxGnu/gosmpp/data"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/receipt"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/http/callback"
	"github.com/switchboard-sms/switchboard/storage/pebble"
	"github.com/switchboard-sms/switchboard/storage/scylla"
)

// Configuration comes in three tiers, each overriding the one before:
//
//  1. the YAML file (cluster.yaml by default; --config or SWITCHBOARD_CONFIG
//     name another);
//  2. environment variables SWITCHBOARD_<PATH>, where PATH is the setting's
//     YAML path upper-cased and joined with "_" (node.data_dir is
//     SWITCHBOARD_NODE_DATA_DIR, carriers[0].host is
//     SWITCHBOARD_CARRIERS_0_HOST, a list is comma-separated);
//  3. command-line overrides "path=value" (node.http=:8080,
//     carriers[0].host=smsc:2775), applied by loadConfig.
//
// Then defaults fill every setting that is still zero, and Validate checks
// the result. The struct tags are the single source of truth: yaml names
// the setting, default gives its default, help describes it. The
// environment names, the defaults and the --help text are all derived
// from them by reflection, so they cannot drift apart.

// Config is the whole configuration of a node.
type Config struct {
	Node     NodeConfig      `yaml:"node" help:"this process: its name, listen addresses and data"`
	Log      LogConfig       `yaml:"log" help:"logging"`
	Storage  StorageConfig   `yaml:"storage" help:"where messages are kept"`
	Cache    CacheConfig     `yaml:"cache" help:"the shared cache (receipt index, idempotency)"`
	Cluster  ClusterConfig   `yaml:"cluster" help:"gossip clustering of several nodes"`
	Carriers []CarrierConfig `yaml:"carriers" help:"SMPP carriers (SMSCs) messages are sent to"`
	Routes   []RouteConfig   `yaml:"routes" help:"which carriers serve which destinations; the longest matching prefix wins"`
	Keys     []KeyConfig     `yaml:"keys" help:"API keys: who may send, how fast, and where their events go"`
	Webhooks WebhooksConfig  `yaml:"webhooks" help:"delivery of status events to customers' callback URLs"`
	Inbound  InboundConfig   `yaml:"inbound" help:"mobile-originated messages to the keys' numbers"`
	Limits   LimitsConfig    `yaml:"limits" help:"limits on what clients may ask for"`
}

// NodeConfig describes this process.
type NodeConfig struct {
	Name            string   `yaml:"name" default:"node-1" help:"name of this node: the node field of every log line, and in the admin status"`
	HTTP            string   `yaml:"http" default:"127.0.0.1:8080" help:"public API listen address, host:port"`
	Admin           string   `yaml:"admin" default:"127.0.0.1:8081" help:"admin listen address, host:port: /metrics, /healthz, /readyz and the status page, and the admin API under /admin/v1/ (with node.admin_token)"`
	AdminToken      string   `yaml:"admin_token" help:"bearer token of the admin API, at least 16 characters (empty: the admin API is off; the rest of node.admin is served); re-read on SIGHUP"`
	TLSCert         string   `yaml:"tls_cert" help:"PEM certificate (chain) file; with tls_key, node.http and node.admin serve HTTPS; both files are re-read on SIGHUP"`
	TLSKey          string   `yaml:"tls_key" help:"PEM private key file of tls_cert"`
	DataDir         string   `yaml:"data_dir" default:"./data" help:"directory of the embedded store"`
	DrainPeriod     Duration `yaml:"drain_period" default:"5s" help:"how long a stopping node keeps its API answering, new requests with 503 and Retry-After and /readyz with 503, while requests in progress finish (a second SIGINT or SIGTERM ends it at once)"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout" default:"15s" help:"after the drain, how long the node waits for requests still in progress, submits in flight, unbinds and status writes"`
	// Pointers, so that false and 0 can be told from unset.
	ReadyRequiresCarrier  *bool `yaml:"ready_requires_carrier" default:"true" help:"/readyz answers 503 while the first carrier of some route has no bound bind"`
	AuthFailuresPerMinute *int  `yaml:"auth_failures_per_minute" default:"10" help:"failed authentications one client address (IPv6: its /64) may have in a minute; then its API requests get 429 until the minute is over (0: no limit)"`
	// Off by default: it costs about 10 % of the maximum request rate.
	HTTPReleaseIdleBuffers bool `yaml:"http_release_idle_buffers" help:"idle keep-alive connections give their read buffers back (about 10 KiB each) at some CPU per request; for many mostly idle clients"`
	// The garbage collector (gc.go). A pointer, so that 0 can be refused
	// rather than taken for unset.
	GCPercent   *int   `yaml:"gc_percent" default:"400" help:"Go's GOGC: the heap may grow by this percentage of the live heap before a collection (fewer collections, shorter latency tails, more memory); GOGC or GOMEMLIMIT in the environment replace both gc settings"`
	MemoryLimit string `yaml:"memory_limit" default:"300MiB" help:"soft limit of the Go runtime's memory (Go's GOMEMLIMIT), which collects sooner as it nears it; raised to 2.5 times the live heap (plus the runtime's stacks and metadata) when that is more; 0: no limit. Built with cgo, the embedded store's cache and memtables (about 130 MB) come on top; built without (the container image) they are in the Go heap"`
}

// readyRequiresCarrier is node.ready_requires_carrier, true when unset.
func (n NodeConfig) readyRequiresCarrier() bool {
	return n.ReadyRequiresCarrier == nil || *n.ReadyRequiresCarrier
}

// authFailuresPerMinute is node.auth_failures_per_minute as the HTTP
// server takes it: its default when unset, -1 for no limit.
func (n NodeConfig) authFailuresPerMinute() int {
	switch a := n.AuthFailuresPerMinute; {
	case a == nil:
		return 0
	case *a == 0:
		return -1
	default:
		return *a
	}
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string `yaml:"level" default:"info" help:"debug, info, warn or error"`
	Format string `yaml:"format" default:"auto" help:"auto (console on a terminal, else JSON), json or console"`
}

// Storage backends.
const (
	StorageEmbedded = "embedded"
	StorageScylla   = "scylla"
)

// StorageConfig selects the store. The scylla settings are read only when
// backend is scylla.
type StorageConfig struct {
	Backend        string   `yaml:"backend" default:"embedded" help:"embedded (Pebble in node.data_dir) or scylla (ScyllaDB or Cassandra at storage.hosts)"`
	TTL            Duration `yaml:"ttl" default:"720h" help:"how long messages are kept: a message is deleted once the UTC day it was accepted on is older (at least 24h and limits.max_validity)"`
	CarrierIDGrace Duration `yaml:"carrier_id_grace" default:"72h" help:"how long a message's carrier ids still match receipts after it turned final (late and repeated receipts)"`
	// SyncInterval is a pointer so that 0s (sync at once) is told apart
	// from unset (the default).
	SyncInterval      *Duration `yaml:"sync_interval" default:"500us" help:"embedded: least time between two fsyncs of the write-ahead log; writes meanwhile share the next one (0s: each sync at once; at most 100ms)"`
	CompactionRate    string    `yaml:"compaction_rate" default:"8MiB" help:"embedded: what compactions write per second while they keep up, so that a merge's CPU is spread over seconds rather than taken in one burst: a size per second (8MiB); 0: unpaced"`
	MinFree           string    `yaml:"min_free" help:"embedded: free disk space below which new messages are refused (503) while those accepted go on: a size (1GiB, 500MiB) or a percentage of the disk (5%); 0: no limit (default: the smaller of 1GiB and 5%)"`
	Hosts             []string  `yaml:"hosts" help:"scylla: contact points, host or host:port"`
	Keyspace          string    `yaml:"keyspace" default:"switchboard" help:"scylla: keyspace"`
	ReplicationFactor int       `yaml:"replication_factor" default:"3" help:"scylla: replication factor of the keyspace"`
	Consistency       string    `yaml:"consistency" default:"quorum" help:"scylla: write consistency: one, two, three, quorum, all, local_quorum, each_quorum, local_one"`
}

// Cache backends.
const (
	CacheMemory = "memory"
	CacheRedis  = "redis"
)

// CacheConfig selects the cache. The redis settings are read only when
// backend is redis.
type CacheConfig struct {
	Backend  string `yaml:"backend" default:"memory" help:"memory (in this process) or redis (a cache of carrier message ids and idempotency records in front of the store, shared by nodes)"`
	Addr     string `yaml:"addr" default:"127.0.0.1:6379" help:"redis: host:port"`
	Password string `yaml:"password" help:"redis: password (empty: none)"`
	DB       int    `yaml:"db" help:"redis: database number"`
	// A receipt is resolved by the store after this; it sizes Redis's
	// memory (about 200 bytes per message part).
	CarrierTTL Duration `yaml:"carrier_ttl" default:"72h" help:"redis: how long a carrier message id is kept for receipts to find their message (at most storage.ttl)"`
}

// ClusterConfig is gossip clustering: nodes that share a Scylla store and
// a Redis cache, and spread keys and binds among themselves
// (docs/operations.md).
type ClusterConfig struct {
	Enabled  bool     `yaml:"enabled" help:"join a cluster of nodes sharing storage.backend scylla and cache.backend redis"`
	Name     string   `yaml:"name" default:"switchboard" help:"cluster name; nodes join only a cluster of the same name"`
	Bind     string   `yaml:"bind" default:"127.0.0.1:7946" help:"gossip (membership) listen address, IP:port, TCP and UDP"`
	Remote   string   `yaml:"remote" default:"127.0.0.1:7947" help:"host:port at which the other nodes reach this node's actors (gRPC), listened on and told to the others: this node's own address, not 0.0.0.0 (loopback only when cluster.bind is too)"`
	Seeds    []string `yaml:"seeds" help:"host:port of nodes' gossip addresses to join through"`
	LeaseTTL Duration `yaml:"lease_ttl" default:"2s" help:"how long a key's or a bind's lease lasts unrenewed: how long the keys and binds of a node that died wait before others take them"`
}

// Bind types of a carrier.
const (
	BindTransceiver         = "transceiver"
	BindTransmitterReceiver = "transmitter_receiver"
)

// CarrierConfig is one SMPP carrier, reached over one or more binds.
type CarrierConfig struct {
	Name            string   `yaml:"name" help:"unique name, used in routes, logs and metrics ([A-Za-z0-9_-], at most 64)"`
	Host            string   `yaml:"host" help:"the SMSC's host:port"`
	SystemID        string   `yaml:"system_id" help:"SMPP system_id (at most 15 bytes)"`
	Password        string   `yaml:"password" help:"SMPP password (at most 8 bytes)"`
	SystemType      string   `yaml:"system_type" help:"SMPP system_type (at most 12 bytes, usually empty)"`
	AddressRange    string   `yaml:"address_range" help:"SMPP address_range of the bind (at most 40 bytes, usually empty)"`
	Simulator       bool     `yaml:"simulator" help:"run the built-in SMSC simulator on host and bind to it (development)"`
	Binds           int      `yaml:"binds" default:"1" help:"number of SMPP connections (1 to 64)"`
	BindType        string   `yaml:"bind_type" default:"transceiver" help:"transceiver, or transmitter_receiver (two connections per bind)"`
	Window          int      `yaml:"window" default:"64" help:"submits in flight per bind (1 to 10000)"`
	TPS             float64  `yaml:"tps" help:"submits per second, shared by all the carrier's binds, up to 10 ms worth back to back (0: unlimited)"`
	IDFormat        string   `yaml:"id_format" help:"how the carrier writes message ids: \"\" (as is), hex, decimal or hex_resp_decimal_receipt"`
	EnquireLink     Duration `yaml:"enquire_link" default:"30s" help:"interval of enquire_link keep-alives"`
	ResponseTimeout Duration `yaml:"response_timeout" default:"10s" help:"how long to wait for a submit_sm_resp"`
	TLS             bool     `yaml:"tls" help:"connect with TLS"`
	TLSSkipVerify   bool     `yaml:"tls_skip_verify" help:"with tls: accept any server certificate (testing only)"`
	ReconnectMin    Duration `yaml:"reconnect_min" default:"1s" help:"first wait before reconnecting a lost bind"`
	ReconnectMax    Duration `yaml:"reconnect_max" default:"60s" help:"longest wait between reconnects (backoff doubles up to it)"`
	ReceiptTimeout  Duration `yaml:"receipt_timeout" default:"72h" help:"how long a submitted message waits for its delivery receipt before it ends unknown; unmatched receipts are kept as long"`
	MaxAttempts     int      `yaml:"max_attempts" default:"10" help:"how many times the carrier may refuse (retriably), time out or lose one message before it fails with the last error"`
	// RetriableStatuses and PermanentStatuses override SMPP 3.4's reading
	// of submit_sm_resp statuses for this carrier.
	RetriableStatuses []string `yaml:"retriable_statuses" help:"submit_sm_resp command_status values to retry (0x… hex, decimal or ESME_ name), beyond the SMPP 3.4 defaults"`
	PermanentStatuses []string `yaml:"permanent_statuses" help:"submit_sm_resp command_status values that fail the message at once, overriding the defaults"`
}

// RouteConfig sends destinations starting with Prefix to Carriers, tried in
// order.
type RouteConfig struct {
	Prefix   string   `yaml:"prefix" help:"destination prefix: \"\" (every destination), digits, or \"+\" and digits"`
	Carriers []string `yaml:"carriers" help:"carrier names in failover order"`
}

// KeyConfig is one API key. Exactly one of Secret and SecretSHA256 is set.
type KeyConfig struct {
	ID           string  `yaml:"id" help:"unique key id ([A-Za-z0-9_-], at most 64)"`
	Secret       string  `yaml:"secret" help:"bearer secret, at least 16 characters (or give secret_sha256)"`
	SecretSHA256 string  `yaml:"secret_sha256" help:"SHA-256 of the secret as 64 hex digits, instead of secret"`
	Rate         float64 `yaml:"rate" help:"messages per second (above 0)"`
	Burst        int     `yaml:"burst" help:"most messages at once (default max(1, rate))"`
	MaxQueued    int     `yaml:"max_queued" default:"1000000" help:"most messages accepted and not yet submitted"`
	CallbackURL  string  `yaml:"callback_url" help:"http(s) URL that receives status events (empty: none)"`
	// CallbackStatuses names the statuses that produce a callback.
	CallbackStatuses []string `yaml:"callback_statuses" help:"statuses that produce a callback (default: submitted and every final status)"`
	CallbackBatch    int      `yaml:"callback_batch" default:"1" help:"most events in one webhook request: 1 posts each event alone as a JSON object, above 1 a JSON array of the events ready at the moment (up to 1000)"`
	WebhookSecret    string   `yaml:"webhook_secret" help:"secret that signs this key's webhook requests (empty: one is generated and kept in the store)"`
	InboundURL       string   `yaml:"inbound_url" help:"http(s) URL that receives inbound messages to the key's numbers (empty: stored only)"`
	Numbers          []string `yaml:"numbers" help:"phone numbers (+ and 8-15 digits) whose inbound messages belong to this key"`
}

// WebhooksConfig governs status event delivery.
type WebhooksConfig struct {
	MaxAge               Duration `yaml:"max_age" default:"72h" help:"how long an event is retried before it is given up on (recorded on its message)"`
	AllowPrivateNetworks bool     `yaml:"allow_private_networks" help:"allow callback URLs on loopback and private addresses"`
	Timeout              Duration `yaml:"timeout" default:"10s" help:"time limit of one callback request"`
	Concurrency          int      `yaml:"concurrency" default:"64" help:"most requests in flight to one endpoint (scheme, host and port)"`
	RetryMin             Duration `yaml:"retry_min" default:"5s" help:"backoff ceiling of a callback's first retry (full jitter, doubling)"`
	RetryMax             Duration `yaml:"retry_max" default:"30m" help:"cap of the backoff between retries"`
	GoneFor              Duration `yaml:"gone_for" default:"1h" help:"how long a URL that answered 410 Gone is not called (its events are given up meanwhile)"`
}

// InboundConfig governs mobile-originated messages.
type InboundConfig struct {
	ReassemblyTimeout Duration `yaml:"reassembly_timeout" default:"5m" help:"how long the parts of a long inbound message are waited for before it is delivered as partial"`
}

// LimitsConfig bounds requests.
type LimitsConfig struct {
	MaxParts        int      `yaml:"max_parts" default:"10" help:"most SMS segments one message may need (1 to 255)"`
	DefaultValidity Duration `yaml:"default_validity" default:"48h" help:"validity of a message that does not give one"`
	MaxValidity     Duration `yaml:"max_validity" default:"72h" help:"longest validity a message may ask for"`
	MaxBatch        int      `yaml:"max_batch" default:"1000" help:"most messages in one batch request"`
}

// Duration is a time.Duration written as a Go duration string ("30s",
// "1h30m") in YAML and in the environment.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads a duration string. A bad value is reported as a
// yaml.TypeError, so the decoder goes on and lists every problem.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration like 30s, 5m or 72h", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

func parseDuration(s string) (time.Duration, error) {
	return time.ParseDuration(strings.TrimSpace(s))
}

// Hash returns the SHA-256 of the key's secret: computed from secret, or
// decoded from secret_sha256. Call it on a validated key; a malformed
// secret_sha256 hashes to zero.
func (k KeyConfig) Hash() [32]byte {
	if k.Secret != "" {
		return switchboard.HashSecret(k.Secret)
	}
	var h [32]byte
	if b, err := hex.DecodeString(k.SecretSHA256); err == nil && len(b) == len(h) {
		copy(h[:], b)
	}
	return h
}

// Key returns the domain form of the key. Call it on a validated key.
func (k KeyConfig) Key() switchboard.Key {
	statuses, _ := k.statusSet()
	return switchboard.Key{
		ID:               k.ID,
		SecretHash:       k.Hash(),
		Rate:             k.Rate,
		Burst:            k.Burst,
		MaxQueued:        k.MaxQueued,
		CallbackURL:      k.CallbackURL,
		CallbackStatuses: statuses,
		CallbackBatch:    k.CallbackBatch,
		WebhookSecret:    k.WebhookSecret,
		InboundURL:       k.InboundURL,
		Numbers:          k.Numbers,
	}
}

// statusSet returns callback_statuses as a set, zero when empty (the
// default applies).
func (k KeyConfig) statusSet() (switchboard.StatusSet, bool) {
	ss := make([]switchboard.Status, len(k.CallbackStatuses))
	for i, s := range k.CallbackStatuses {
		ss[i] = switchboard.Status(strings.TrimSpace(s))
	}
	return switchboard.NewStatusSet(ss...)
}

// ParsedIDFormat returns the carrier's id format. Call it on a validated
// carrier; an invalid format reads as receipt.IDAsIs.
func (c CarrierConfig) ParsedIDFormat() receipt.IDFormat {
	f, _ := receipt.ParseIDFormat(c.IDFormat)
	return f
}

// ConfigError lists the problems found in a configuration, one per line.
// Every error LoadConfig returns is one; callers treat it as a usage error
// (exit status 2).
type ConfigError struct {
	Source string // the file read, "" if none
	Err    error  // the problems, usually an errors.Join
}

func (e *ConfigError) Error() string {
	problems := flattenErrors(e.Err)
	var b strings.Builder
	b.WriteString("invalid configuration")
	if e.Source != "" {
		fmt.Fprintf(&b, " in %s", e.Source)
	}
	if len(problems) == 1 {
		b.WriteString(": ")
		b.WriteString(problems[0].Error())
		return b.String()
	}
	fmt.Fprintf(&b, " (%d problems):", len(problems))
	for _, p := range problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// flattenErrors lists the leaves of a tree of joined errors.
func flattenErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrors(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

const (
	envPrefix = "SWITCHBOARD_"
	// envConfigFile names the configuration file; it is not a setting.
	envConfigFile = "SWITCHBOARD_CONFIG"
	// envTestPrefix begins the test suites' variables, which are not
	// settings either (no section is named test).
	envTestPrefix = "SWITCHBOARD_TEST_"
	// defaultConfigFile is read when neither --config nor
	// SWITCHBOARD_CONFIG names a file.
	defaultConfigFile = "cluster.yaml"
)

// configPath returns the file to read: flagValue if set (--config), else
// SWITCHBOARD_CONFIG from environ, else cluster.yaml.
func configPath(flagValue string, environ []string) string {
	if flagValue != "" {
		return flagValue
	}
	for i := len(environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(environ[i], envConfigFile+"="); ok && v != "" {
			return v
		}
	}
	return defaultConfigFile
}

// LoadConfig reads the YAML file at path (none if path is ""), applies the
// SWITCHBOARD_* variables of environ (in os.Environ form), fills defaults
// and validates. Every error is a *ConfigError listing all the problems
// found; callers wrap it in usageError so the process exits with status 2.
func LoadConfig(path string, environ []string) (*Config, error) {
	return loadConfig(path, environ, nil)
}

// loadConfig is LoadConfig with a third tier: overrides of the form
// "path=value" (node.http=:8080, carriers[0].host=smsc:2775), typically
// from repeated --set flags, applied after the environment.
func loadConfig(path string, environ, overrides []string) (*Config, error) {
	cfg := new(Config)
	var errs []error
	if path != "" {
		if err := cfg.decodeFile(path); err != nil {
			// The environment and the overrides are applied to the file
			// decoded: over a file that did not decode, each setting of a
			// list would be reported out of range.
			return nil, &ConfigError{Source: path, Err: err}
		}
	}
	if err := cfg.applyEnv(environ); err != nil {
		errs = append(errs, err)
	}
	for _, o := range overrides {
		p, v, ok := strings.Cut(o, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("override %q: want path=value, like node.http=127.0.0.1:8080", o))
			continue
		}
		if err := cfg.Set(strings.TrimSpace(p), v); err != nil {
			// Set's error names the path; the value is left out, as it
			// may be a secret.
			errs = append(errs, fmt.Errorf("--set: %w", err))
		}
	}
	if len(errs) > 0 {
		return nil, &ConfigError{Source: path, Err: errors.Join(errs...)}
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, &ConfigError{Source: path, Err: err}
	}
	return cfg, nil
}

// ---- reflection over the struct tags ----

var (
	configType   = reflect.TypeFor[Config]()
	durationType = reflect.TypeFor[Duration]()
)

// isLeaf reports whether t holds one setting: a scalar, a duration, or a
// list of strings; or a pointer to a scalar or duration, for a setting
// whose zero value (false, 0) is a value and not its default (nil: unset).
func isLeaf(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Float64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	case reflect.Pointer:
		return t.Elem().Kind() != reflect.Pointer && t.Elem().Kind() != reflect.Slice && isLeaf(t.Elem())
	}
	return false
}

func isSection(t reflect.Type) bool { return t.Kind() == reflect.Struct }

func isList(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// fieldByYAML returns the field of struct value v whose YAML name is name.
func fieldByYAML(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// configOption is one setting (or, with section set, a section heading) as
// listed by --help and the documentation.
type configOption struct {
	Path    string // YAML path: node.http, carriers[n].host
	Env     string // SWITCHBOARD_NODE_HTTP, SWITCHBOARD_CARRIERS_<n>_HOST
	Type    string // string, integer, number, boolean, duration, list
	Default string
	Help    string
	section reflect.Type // set for a section heading
}

// configOptions lists every section and setting in declaration order.
func configOptions() []configOption {
	var out []configOption
	var walk func(t reflect.Type, path, env string)
	walk = func(t reflect.Type, path, env string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			p, e := name, env+"_"+strings.ToUpper(name)
			if path != "" {
				p = path + "." + name
			}
			o := configOption{Path: p, Env: e, Default: f.Tag.Get("default"), Help: f.Tag.Get("help")}
			switch {
			case isLeaf(f.Type):
				o.Type = leafType(f.Type)
				if o.Default == "" && o.Type == "boolean" {
					o.Default = "false"
				}
				out = append(out, o)
			case isList(f.Type):
				o.Path += "[n]"
				o.section = f.Type.Elem()
				out = append(out, o)
				walk(f.Type.Elem(), o.Path, e+"_<n>")
			case isSection(f.Type):
				o.section = f.Type
				out = append(out, o)
				walk(f.Type, p, e)
			}
		}
	}
	walk(configType, "", strings.TrimSuffix(envPrefix, "_"))
	return out
}

func leafType(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() == reflect.Int:
		return "integer"
	case t.Kind() == reflect.Float64:
		return "number"
	case t.Kind() == reflect.Slice:
		return "list"
	}
	return t.String()
}

// setLeaf parses s into the setting v. An empty s sets the zero value
// (a pointer setting: unset), which the defaults then fill: in every tier,
// empty means the default.
func setLeaf(v reflect.Value, s string) error {
	if strings.TrimSpace(s) == "" {
		v.SetZero()
		return nil
	}
	switch {
	case v.Kind() == reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := setLeaf(p.Elem(), s); err != nil {
			return err
		}
		v.Set(p)
	case v.Type() == durationType:
		d, err := parseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 30s, 5m or 72h", s)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a boolean (true or false)", s)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Slice:
		var list []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("cannot set a %s", v.Type())
	}
	return nil
}

// Set sets one setting by its YAML path, with list items by index:
// "node.http", "carriers[0].host" (or "carriers.0.host"). The value is
// written as in the environment: a duration string, true/false, a
// comma-separated list. An index past the end of a list is an error: Set
// changes settings, it does not add list items. Set does not fill defaults
// or validate.
func (c *Config) Set(path, value string) error {
	segs := strings.Split(strings.NewReplacer("[", ".", "]", "").Replace(path), ".")
	return setPath(reflect.ValueOf(c).Elem(), segs, value)
}

func setPath(v reflect.Value, segs []string, value string) error {
	at := ""
	for _, seg := range segs {
		switch {
		case isList(v.Type()):
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 {
				return fmt.Errorf("%s: %q is not a list index", at, seg)
			}
			if i >= v.Len() {
				return fmt.Errorf("%s[%d]: index out of range: the configuration has %d (items can be changed here, not added)", at, i, v.Len())
			}
			v, at = v.Index(i), fmt.Sprintf("%s[%d]", at, i)
		case isSection(v.Type()):
			f, ok := fieldByYAML(v, seg)
			if !ok {
				if at == "" {
					return fmt.Errorf("%q: no such setting", seg)
				}
				return fmt.Errorf("%s.%s: no such setting", at, seg)
			}
			if at != "" {
				at += "."
			}
			v, at = f, at+seg
		default:
			return fmt.Errorf("%s.%s: no such setting (%s is a %s)", at, seg, at, leafType(v.Type()))
		}
	}
	if !isLeaf(v.Type()) {
		return fmt.Errorf("%s: is a section or list, not a single setting", at)
	}
	if err := setLeaf(v, value); err != nil {
		return fmt.Errorf("%s: %w", at, err)
	}
	return nil
}

// envPath resolves the part of a variable's name after SWITCHBOARD_ to the
// path of a setting in t, e.g. CARRIERS_0_TLS_SKIP_VERIFY to [carriers 0
// tls_skip_verify]. YAML names contain "_" too, so it tries every field
// whose name is a prefix and keeps the one that resolves to a setting.
func envPath(t reflect.Type, name string) ([]string, bool) {
	switch {
	case isList(t):
		idx, rest, _ := strings.Cut(name, "_")
		if idx == "" || strings.Trim(idx, "0123456789") != "" {
			return nil, false
		}
		if sub, ok := envPath(t.Elem(), rest); ok {
			return append([]string{idx}, sub...), true
		}
	case isSection(t):
		for i := range t.NumField() {
			f := t.Field(i)
			yn := yamlName(f)
			up := strings.ToUpper(yn)
			if name == up && isLeaf(f.Type) {
				return []string{yn}, true
			}
			if rest, ok := strings.CutPrefix(name, up+"_"); ok {
				if sub, ok := envPath(f.Type, rest); ok {
					return append([]string{yn}, sub...), true
				}
			}
		}
	}
	return nil, false
}

// applyEnv applies every SWITCHBOARD_* variable of environ except
// SWITCHBOARD_CONFIG and the test suites' SWITCHBOARD_TEST_* (the servers
// CI runs, such as SWITCHBOARD_TEST_REDIS, are in the environment of every
// node a test starts). A variable that names no setting is an error, so a
// typo is not silently ignored.
func (c *Config) applyEnv(environ []string) error {
	var errs []error
	v := reflect.ValueOf(c).Elem()
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, envPrefix)
		if !ok || name == envConfigFile || strings.HasPrefix(name, envTestPrefix) {
			continue
		}
		segs, ok := envPath(configType, rest)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown variable: no setting has this name (--help lists them)", name))
			continue
		}
		if err := setPath(v, segs, value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// setDefaults fills every setting that is zero and has a default tag, in
// sections and in every list item, then the defaults that depend on other
// settings (a key's burst).
func (c *Config) setDefaults() {
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f, fv := t.Field(i), v.Field(i)
			switch {
			case isLeaf(f.Type):
				if def, ok := f.Tag.Lookup("default"); ok && fv.IsZero() {
					if err := setLeaf(fv, def); err != nil {
						panic(fmt.Sprintf("config: bad default tag on %s.%s: %v", t, f.Name, err))
					}
				}
			case isList(f.Type):
				for j := range fv.Len() {
					fill(fv.Index(j))
				}
			case isSection(f.Type):
				fill(fv)
			}
		}
	}
	fill(reflect.ValueOf(c).Elem())
	for i := range c.Keys {
		k := &c.Keys[i]
		if k.Burst == 0 && k.Rate > 0 && !math.IsInf(k.Rate, 0) {
			k.Burst = int(min(max(1, k.Rate), math.MaxInt32))
		}
	}
}

// ---- validation ----

// problems collects validation errors, each prefixed with the setting's
// path.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	prefixRE   = regexp.MustCompile(`^\+?[0-9]{1,15}$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	keyspaceRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,47}$`)
)

// Validate checks the configuration, with defaults already filled, and
// returns every problem found (joined with errors.Join), each naming the
// setting: `carriers[1].host: "x" is not host:port`. It returns nil if
// there is none.
func (c *Config) Validate() error { return c.validate(checks{needRoutes: true, readFiles: true}) }

// checks says what validate checks beyond the settings' values.
type checks struct {
	// needRoutes refuses carriers without a route. A file that configures
	// carriers and no route is a mistake, but the admin API adds a carrier
	// before the route that names it, so the file merged with the API's
	// items is checked without it (messages to a destination no route
	// covers are refused with no_route meanwhile).
	needRoutes bool
	// readFiles reads the files settings name (the TLS pair). The file's
	// part of a merged configuration was checked when it was loaded: a
	// certificate being replaced must not make a sync of the admin API's
	// items fail (and skip them) meanwhile.
	readFiles bool
}

// validate is Validate, with the given checks.
func (c *Config) validate(with checks) error {
	var p problems
	c.validateNode(&p, with.readFiles)
	c.validateLog(&p)
	c.validateStorage(&p)
	c.validateCache(&p)
	c.validateCluster(&p)
	carriers := c.validateCarriers(&p)
	if with.needRoutes && len(c.Carriers) > 0 && len(c.Routes) == 0 {
		p.add("routes", "is empty; with carriers configured at least one route is needed (prefix \"\" matches every destination)")
	}
	c.validateRoutes(&p, carriers)
	c.validateKeys(&p)
	c.validateWebhooks(&p)
	c.validateLimits(&p)
	return errors.Join(p...)
}

func (c *Config) validateNode(p *problems, readFiles bool) {
	n := c.Node
	if strings.TrimSpace(n.Name) == "" {
		p.add("node.name", "is empty")
	}
	if err := checkListen(n.HTTP); err != nil {
		p.add("node.http", "%v", err)
	}
	if err := checkListen(n.Admin); err != nil {
		p.add("node.admin", "%v", err)
	}
	if n.HTTP != "" && n.HTTP == n.Admin && !strings.HasSuffix(n.HTTP, ":0") {
		p.add("node.admin", "%q is also node.http; they need different ports", n.Admin)
	}
	if strings.TrimSpace(n.DataDir) == "" {
		p.add("node.data_dir", "is empty")
	}
	if t := n.AdminToken; t != "" && utf8.RuneCountInString(t) < 16 {
		p.add("node.admin_token", "%d characters, at least 16 needed", utf8.RuneCountInString(t))
	}
	switch {
	case (n.TLSCert == "") != (n.TLSKey == ""):
		p.add("node.tls_cert", "and node.tls_key go together: set both or neither")
	case n.TLSCert != "" && readFiles:
		if _, err := tls.LoadX509KeyPair(n.TLSCert, n.TLSKey); err != nil {
			p.add("node.tls_cert", "%v", err)
		}
	}
	if n.ShutdownTimeout <= 0 {
		p.add("node.shutdown_timeout", "%v is not above 0", n.ShutdownTimeout)
	}
	if a := n.AuthFailuresPerMinute; a != nil && *a < 0 {
		p.add("node.auth_failures_per_minute", "%d is negative (0: no limit)", *a)
	}
	if n.DrainPeriod <= 0 {
		p.add("node.drain_period", "%v is not above 0 (for a quick stop, use a short one like 100ms, or send the signal twice)", n.DrainPeriod)
	}
	if g := n.GCPercent; g != nil && *g <= 0 {
		p.add("node.gc_percent", "%d is not above 0 (GOGC=off in the environment turns the percentage off)", *g)
	}
	if _, err := parseSizeOrNone(n.MemoryLimit); err != nil {
		p.add("node.memory_limit", "%v", err)
	}
}

// parseSizeOrNone reads a setting that is a size (300MiB, 1GiB), or 0 or
// empty for none (0 bytes): node.memory_limit, storage.compaction_rate.
func parseSizeOrNone(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "0" {
		return 0, nil
	}
	n, err := parseSize(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size like 300MiB or 1GiB, or 0", v)
	}
	return n, nil
}

func (c *Config) validateLog(p *problems) {
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		p.add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if !slices.Contains([]string{"auto", "json", "console"}, c.Log.Format) {
		p.add("log.format", "%q is not auto, json or console", c.Log.Format)
	}
}

// The least carrier timings accepted: below them keep-alives flood the
// carrier, and answers in a carrier's usual tens to hundreds of
// milliseconds would be taken as lost. (Production values are tens of
// seconds; tests of dead peers use a fraction of one.)
const (
	minEnquireLink     = Duration(100 * time.Millisecond)
	minResponseTimeout = Duration(100 * time.Millisecond)
)

// maxResponseTimeout bounds a carrier's response_timeout: a submit is
// answered in seconds, and a receipt read long before the answer to its
// submit (switchboard.ReceiptLead) is taken for an earlier message's.
const maxResponseTimeout = Duration(5 * time.Minute)

// minCompactionRate bounds storage.compaction_rate from below (1MiB).
const minCompactionRate = 1 << 20

// maxSyncInterval bounds storage.sync_interval: every accepted message
// may wait this long for its fsync.
const maxSyncInterval = 100 * time.Millisecond

func (c *Config) validateStorage(p *problems) {
	s := c.Storage
	switch s.Backend {
	case StorageEmbedded:
		if d := s.syncInterval(); d < 0 || d > maxSyncInterval {
			p.add("storage.sync_interval", "%v is not between 0s and %v", d, maxSyncInterval)
		}
		if _, _, err := parseMinFree(s.MinFree); err != nil {
			p.add("storage.min_free", "%v", err)
		}
		if rate, err := parseSizeOrNone(s.CompactionRate); err != nil {
			p.add("storage.compaction_rate", "%v", err)
		} else if rate != 0 && rate < minCompactionRate {
			p.add("storage.compaction_rate", "%q is below 1MiB a second: compactions would fall behind at any real rate (0 for unpaced)", s.CompactionRate)
		}
	case StorageScylla:
		if len(s.Hosts) == 0 {
			p.add("storage.hosts", "is empty; scylla needs at least one contact point")
		}
		for _, h := range scylla.CheckHosts(s.Hosts) {
			p.add(fmt.Sprintf("storage.hosts[%d]", h.Index), "%s", h.Problem)
		}
		if !keyspaceRE.MatchString(s.Keyspace) {
			p.add("storage.keyspace", "%q is not a keyspace name (a letter, then letters, digits and _; at most 48)", s.Keyspace)
		}
		if s.ReplicationFactor < 1 {
			p.add("storage.replication_factor", "%d is below 1", s.ReplicationFactor)
		}
		if s.TTL.Std() > scylla.MaxTTL {
			p.add("storage.ttl", "%v is above %v: a CQL database keeps a row at most 20 years", s.TTL, scylla.MaxTTL)
		}
		levels := scylla.Consistencies()
		if !slices.Contains(levels, s.Consistency) {
			p.add("storage.consistency", "%q is not one of %s", s.Consistency, strings.Join(levels, ", "))
		}
	default:
		p.add("storage.backend", "%q is not embedded or scylla", s.Backend)
	}
	// A message must be able to end before it is deleted, and outlive
	// its idempotency record.
	if minTTL := max(switchboard.IdempotencyWindow, c.Limits.MaxValidity.Std()); s.TTL.Std() < minTTL {
		p.add("storage.ttl", "%v is below %v: messages must be kept at least a day and at least limits.max_validity", s.TTL, minTTL)
	}
	if s.CarrierIDGrace <= 0 {
		p.add("storage.carrier_id_grace", "%v is not above 0", s.CarrierIDGrace)
	}
}

// syncInterval returns storage.sync_interval (0 if unset, which defaults
// fill).
func (s StorageConfig) syncInterval() time.Duration {
	if s.SyncInterval == nil {
		return 0
	}
	return s.SyncInterval.Std()
}

// pebbleOptions is what the embedded store takes from the configuration.
func (s StorageConfig) pebbleOptions(log zerolog.Logger) pebble.Options {
	o := pebble.Options{Logger: log, TTL: s.TTL.Std(), CarrierIDGrace: s.CarrierIDGrace.Std()}
	// In the store, 0 means its default and a negative interval none.
	if o.SyncInterval = s.syncInterval(); o.SyncInterval == 0 {
		o.SyncInterval = -1
	}
	o.MinFree, o.MinFreePercent, _ = parseMinFree(s.MinFree)
	// In the store, 0 means its default and a negative rate unpaced.
	if o.CompactionRate, _ = parseSizeOrNone(s.CompactionRate); o.CompactionRate == 0 {
		o.CompactionRate = -1
	}
	return o
}

// scyllaOptions is what the ScyllaDB store takes from the configuration;
// nil when the backend is not scylla.
func (s StorageConfig) scyllaOptions(log zerolog.Logger) *scylla.Options {
	if s.Backend != StorageScylla {
		return nil
	}
	return &scylla.Options{
		Hosts: s.Hosts, Keyspace: s.Keyspace, ReplicationFactor: s.ReplicationFactor, Consistency: s.Consistency,
		TTL: s.TTL.Std(), CarrierIDGrace: s.CarrierIDGrace.Std(), Logger: log,
	}
}

// parseMinFree reads storage.min_free: "" (the store's default), "0" (no
// limit: bytes -1), a size with a unit (500MiB, 1GiB, 2GB) or a percentage
// of the disk (5%).
func parseMinFree(v string) (bytes int64, percent float64, err error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return 0, 0, nil
	case v == "0":
		return -1, 0, nil
	case strings.HasSuffix(v, "%"):
		f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(v, "%")), 64)
		if err != nil || !(f > 0 && f < 100) {
			return 0, 0, fmt.Errorf("%q is not a percentage above 0%% and below 100%%", v)
		}
		return 0, f, nil
	}
	n, err := parseSize(v)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not a size like 1GiB or 500MiB, a percentage like 5%%, or 0", v)
	}
	return n, 0, nil
}

// sizeUnits are the units parseSize knows, binary and decimal.
var sizeUnits = map[string]float64{
	"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
}

// parseSize reads a positive size: a number and a unit (1GiB, 1.5 GB).
func parseSize(v string) (int64, error) {
	i := strings.IndexFunc(v, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return 0, errors.New("no number and unit")
	}
	n, err := strconv.ParseFloat(v[:i], 64)
	unit, ok := sizeUnits[strings.ToLower(strings.TrimSpace(v[i:]))]
	if err != nil || !ok || n <= 0 || n*unit >= math.MaxInt64 {
		return 0, errors.New("not a size")
	}
	return int64(n * unit), nil
}

func (c *Config) validateCache(p *problems) {
	r := c.Cache
	switch r.Backend {
	case CacheMemory:
	case CacheRedis:
		if err := checkDial(r.Addr); err != nil {
			p.add("cache.addr", "%v", err)
		}
		if r.DB < 0 {
			p.add("cache.db", "%d is negative", r.DB)
		}
		if r.CarrierTTL <= 0 {
			p.add("cache.carrier_ttl", "%v is not above 0", r.CarrierTTL)
		}
	default:
		p.add("cache.backend", "%q is not memory or redis", r.Backend)
	}
}

func (c *Config) validateCluster(p *problems) {
	cl := c.Cluster
	if !cl.Enabled {
		return
	}
	if c.Storage.Backend != StorageScylla {
		p.add("cluster.enabled", "a cluster shares its storage: it needs storage.backend: scylla, not %q", c.Storage.Backend)
	}
	if c.Cache.Backend != CacheRedis {
		p.add("cluster.enabled", "a cluster's leases live in Redis: it needs cache.backend: redis, not %q", c.Cache.Backend)
	}
	if strings.TrimSpace(cl.Name) == "" {
		p.add("cluster.name", "is empty")
	}
	bindHost, err := checkGossipBind(cl.Bind)
	if err != nil {
		p.add("cluster.bind", "%v", err)
	}
	if err := checkRemote(cl.Remote, bindHost); err != nil {
		p.add("cluster.remote", "%v", err)
	}
	for i, s := range cl.Seeds {
		if err := checkDial(s); err != nil {
			p.add(fmt.Sprintf("cluster.seeds[%d]", i), "%v", err)
		}
	}
	if cl.LeaseTTL < Duration(300*time.Millisecond) || cl.LeaseTTL > Duration(time.Minute) {
		p.add("cluster.lease_ttl", "%v is not between 300ms and 1m", cl.LeaseTTL)
	}
}

// validateCarriers checks the carriers and returns the set of their names.
func (c *Config) validateCarriers(p *problems) map[string]bool {
	names := map[string]bool{}
	for i, cr := range c.Carriers {
		at := fmt.Sprintf("carriers[%d]", i)
		switch {
		case cr.Name == "":
			p.add(at+".name", "is empty")
		case !nameRE.MatchString(cr.Name):
			p.add(at+".name", "%q has characters other than A-Z a-z 0-9 _ - or is longer than 64", cr.Name)
		case names[cr.Name]:
			p.add(at+".name", "%q is used by an earlier carrier", cr.Name)
		}
		names[cr.Name] = true
		// A simulator listens on host, so port 0 (any free port) is fine.
		check := checkDial
		if cr.Simulator {
			check = checkListen
		}
		if err := check(cr.Host); err != nil {
			p.add(at+".host", "%v", err)
		}
		if len(cr.SystemID) > 15 {
			p.add(at+".system_id", "%d bytes, at most 15 allowed", len(cr.SystemID))
		}
		if len(cr.Password) > 8 {
			p.add(at+".password", "%d bytes, at most 8 allowed (SMPP 3.4)", len(cr.Password))
		}
		if len(cr.SystemType) > 12 {
			p.add(at+".system_type", "%d bytes, at most 12 allowed", len(cr.SystemType))
		}
		if len(cr.AddressRange) > 40 {
			p.add(at+".address_range", "%d bytes, at most 40 allowed", len(cr.AddressRange))
		}
		if cr.Binds < 1 || cr.Binds > 64 {
			p.add(at+".binds", "%d is not in 1..64", cr.Binds)
		}
		if cr.BindType != BindTransceiver && cr.BindType != BindTransmitterReceiver {
			p.add(at+".bind_type", "%q is not %s or %s", cr.BindType, BindTransceiver, BindTransmitterReceiver)
		}
		if cr.Window < 1 || cr.Window > 10000 {
			p.add(at+".window", "%d is not in 1..10000", cr.Window)
		}
		if !(cr.TPS >= 0) || math.IsInf(cr.TPS, 0) {
			p.add(at+".tps", "%v is not a number ≥ 0 (0 means unlimited)", cr.TPS)
		}
		if _, err := receipt.ParseIDFormat(cr.IDFormat); err != nil {
			p.add(at+".id_format", "%q is not \"\", hex, decimal or hex_resp_decimal_receipt", cr.IDFormat)
		}
		if cr.EnquireLink < minEnquireLink {
			p.add(at+".enquire_link", "%v is below %v: keep-alives that often flood the carrier (30s to 60s is usual)", cr.EnquireLink, minEnquireLink)
		}
		if cr.ResponseTimeout < minResponseTimeout {
			p.add(at+".response_timeout", "%v is below %v: answers slower than that would be taken as lost and every part sent again", cr.ResponseTimeout, minResponseTimeout)
		}
		if cr.ResponseTimeout > maxResponseTimeout {
			p.add(at+".response_timeout", "%v is above %v: carriers answer in seconds, and a receipt that came long before its submit's answer would be taken for another message's", cr.ResponseTimeout, maxResponseTimeout)
		}
		if cr.ReconnectMin <= 0 {
			p.add(at+".reconnect_min", "%v is not above 0", cr.ReconnectMin)
		}
		if cr.ReconnectMax < cr.ReconnectMin {
			p.add(at+".reconnect_max", "%v is below reconnect_min %v", cr.ReconnectMax, cr.ReconnectMin)
		}
		if cr.TLSSkipVerify && !cr.TLS {
			p.add(at+".tls_skip_verify", "is set but tls is not")
		}
		if cr.ReceiptTimeout <= 0 {
			p.add(at+".receipt_timeout", "%v is not above 0", cr.ReceiptTimeout)
		}
		if cr.MaxAttempts < 1 || cr.MaxAttempts > 1000 {
			p.add(at+".max_attempts", "%d is not in 1..1000", cr.MaxAttempts)
		}
		cr.validateStatuses(p, at)
	}
	return names
}

// validateStatuses checks the status overrides: each a command_status, and
// none both retriable and permanent.
func (cr CarrierConfig) validateStatuses(p *problems, at string) {
	retriable := map[data.CommandStatusType]bool{}
	for j, s := range cr.RetriableStatuses {
		v, err := smpp.ParseStatus(s)
		if err != nil {
			p.add(fmt.Sprintf("%s.retriable_statuses[%d]", at, j), "%v", err)
			continue
		}
		retriable[v] = true
	}
	for j, s := range cr.PermanentStatuses {
		v, err := smpp.ParseStatus(s)
		if err != nil {
			p.add(fmt.Sprintf("%s.permanent_statuses[%d]", at, j), "%v", err)
			continue
		}
		if retriable[v] {
			p.add(fmt.Sprintf("%s.permanent_statuses[%d]", at, j), "%s is listed in retriable_statuses too", v)
		}
	}
}

// Statuses returns the carrier's overrides of which submit refusals are
// retriable. Call it on a validated carrier.
func (cr CarrierConfig) Statuses() smpp.Statuses {
	if len(cr.RetriableStatuses)+len(cr.PermanentStatuses) == 0 {
		return nil
	}
	t := smpp.Statuses{}
	for _, list := range []struct {
		names     []string
		retriable bool
	}{{cr.RetriableStatuses, true}, {cr.PermanentStatuses, false}} {
		for _, s := range list.names {
			if v, err := smpp.ParseStatus(s); err == nil {
				t[v] = list.retriable
			}
		}
	}
	return t
}

func (c *Config) validateRoutes(p *problems, carriers map[string]bool) {
	seen := map[string]int{} // prefix without "+" → index of its route
	for i, r := range c.Routes {
		at := fmt.Sprintf("routes[%d]", i)
		if r.Prefix != "" && !prefixRE.MatchString(r.Prefix) {
			p.add(at+".prefix", "%q is not \"\", digits, or \"+\" and digits (at most 15)", r.Prefix)
		} else {
			key := strings.TrimPrefix(r.Prefix, "+")
			if j, dup := seen[key]; dup {
				p.add(at+".prefix", "%q is the prefix of routes[%d] too", r.Prefix, j)
			} else {
				seen[key] = i
			}
		}
		if len(r.Carriers) == 0 {
			p.add(at+".carriers", "is empty")
		}
		for j, name := range r.Carriers {
			switch {
			case !carriers[name]:
				p.add(fmt.Sprintf("%s.carriers[%d]", at, j), "%q is not a configured carrier", name)
			case slices.Index(r.Carriers, name) < j:
				p.add(fmt.Sprintf("%s.carriers[%d]", at, j), "%q is listed twice", name)
			}
		}
	}
}

func (c *Config) validateKeys(p *problems) {
	ids := map[string]bool{}
	numbers := map[string]string{}
	hashes := map[[32]byte]int{}
	for i, k := range c.Keys {
		at := fmt.Sprintf("keys[%d]", i)
		switch {
		case k.ID == "":
			p.add(at+".id", "is empty")
		case !nameRE.MatchString(k.ID):
			p.add(at+".id", "%q has characters other than A-Z a-z 0-9 _ - or is longer than 64", k.ID)
		case ids[k.ID]:
			p.add(at+".id", "%q is used by an earlier key", k.ID)
		}
		ids[k.ID] = true
		secretOK := false
		switch {
		case k.Secret == "" && k.SecretSHA256 == "":
			p.add(at+".secret", "is empty; set secret or secret_sha256")
		case k.Secret != "" && k.SecretSHA256 != "":
			p.add(at+".secret", "and secret_sha256 are both set; set one")
		case k.Secret != "":
			if n := utf8.RuneCountInString(k.Secret); n < 16 {
				p.add(at+".secret", "%d characters, at least 16 needed", n)
			} else {
				secretOK = true
			}
		default:
			if !sha256RE.MatchString(k.SecretSHA256) {
				p.add(at+".secret_sha256", "is not 64 hex digits (the SHA-256 of the secret)")
			} else {
				secretOK = true
			}
		}
		if secretOK {
			h := k.Hash()
			if j, dup := hashes[h]; dup {
				p.add(at+".secret", "is the same secret as keys[%d]'s", j)
			} else {
				hashes[h] = i
			}
		}
		if !(k.Rate > 0) || math.IsInf(k.Rate, 0) {
			p.add(at+".rate", "%v is not a number above 0", k.Rate)
		}
		if k.Burst < 1 {
			p.add(at+".burst", "%d is below 1", k.Burst)
		}
		if k.MaxQueued < 1 {
			p.add(at+".max_queued", "%d is below 1", k.MaxQueued)
		}
		c.validateKeyEvents(p, at, k, numbers)
	}
}

// maxCallbackBatch bounds a webhook request's body: 1000 events of
// about 500 bytes each.
const maxCallbackBatch = 1000

// validateKeyEvents checks where a key's events and inbound messages go;
// numbers maps each number (as digits) to the key that claimed it first.
func (c *Config) validateKeyEvents(p *problems, at string, k KeyConfig, numbers map[string]string) {
	for _, f := range []struct{ field, url string }{{".callback_url", k.CallbackURL}, {".inbound_url", k.InboundURL}} {
		if f.url == "" {
			continue
		}
		if err := checkCallbackURL(f.url, c.Webhooks.AllowPrivateNetworks); err != nil {
			p.add(at+f.field, "%v", err)
		}
	}
	if k.CallbackBatch < 1 || k.CallbackBatch > maxCallbackBatch {
		p.add(at+".callback_batch", "%d is not between 1 and %d", k.CallbackBatch, maxCallbackBatch)
	}
	if _, ok := k.statusSet(); !ok {
		p.add(at+".callback_statuses", "%q: each must be one of queued, submitted, delivered, undeliverable, expired, rejected, failed, unknown, canceled", k.CallbackStatuses)
	}
	for j, n := range k.Numbers {
		if !switchboard.ValidMSISDN(n) {
			p.add(fmt.Sprintf("%s.numbers[%d]", at, j), "%q is not + and 8-15 digits", n)
			continue
		}
		d := switchboard.NumberDigits(n)
		if owner, dup := numbers[d]; dup {
			p.add(fmt.Sprintf("%s.numbers[%d]", at, j), "%s is already a number of key %q", n, owner)
			continue
		}
		numbers[d] = k.ID
	}
}

func (c *Config) validateWebhooks(p *problems) {
	w := c.Webhooks
	for _, f := range []struct {
		field string
		d     Duration
	}{{"max_age", w.MaxAge}, {"timeout", w.Timeout}, {"retry_min", w.RetryMin}, {"retry_max", w.RetryMax}, {"gone_for", w.GoneFor}} {
		if f.d <= 0 {
			p.add("webhooks."+f.field, "%v is not above 0", f.d)
		}
	}
	if w.RetryMax < w.RetryMin {
		p.add("webhooks.retry_max", "%v is below retry_min %v", w.RetryMax, w.RetryMin)
	}
	if w.Concurrency < 1 {
		p.add("webhooks.concurrency", "%d is below 1", w.Concurrency)
	}
	if c.Inbound.ReassemblyTimeout <= 0 {
		p.add("inbound.reassembly_timeout", "%v is not above 0", c.Inbound.ReassemblyTimeout)
	}
}

func (c *Config) validateLimits(p *problems) {
	l := c.Limits
	if l.MaxParts < 1 || l.MaxParts > 255 {
		p.add("limits.max_parts", "%d is not in 1..255", l.MaxParts)
	}
	if l.DefaultValidity <= 0 {
		p.add("limits.default_validity", "%v is not above 0", l.DefaultValidity)
	}
	switch {
	case l.MaxValidity < Duration(time.Second):
		p.add("limits.max_validity", "%v is below 1s (a message's validity is given in whole seconds)", l.MaxValidity)
	case l.MaxValidity < l.DefaultValidity:
		p.add("limits.max_validity", "%v is below default_validity %v", l.MaxValidity, l.DefaultValidity)
	}
	if l.MaxBatch < 1 {
		p.add("limits.max_batch", "%d is below 1", l.MaxBatch)
	}
}

// checkListen accepts a listen address: host:port with a numeric port
// (0 picks a free one) and an optional host (":8080" is every interface).
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || !validPort(port, 0) {
		return fmt.Errorf("%q is not host:port", addr)
	}
	return nil
}

// checkGossipBind accepts the gossip address: an IP address and a port
// (the membership library takes no host name), and returns its IP.
func checkGossipBind(addr string) (net.IP, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !validPort(port, 0) {
		return nil, fmt.Errorf("%q is not host:port", addr)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("%q: the host must be an IP address", addr)
	}
	return ip, nil
}

// checkRemote accepts the actors' address, which the node both listens on
// and tells the other nodes: each node finds what it owns by comparing it
// with the members' addresses, so a host every node could share (empty,
// 0.0.0.0, ::) would make every node own everything, or nothing. A
// loopback host only suits a cluster on one machine, one gossiping on
// loopback too.
func checkRemote(addr string, gossip net.IP) error {
	if err := checkDial(addr); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	switch {
	case ip != nil && ip.IsUnspecified():
		return fmt.Errorf("%q: the other nodes reach this node here, so the host must be this node's own address, not %s", addr, host)
	case (ip != nil && ip.IsLoopback() || host == "localhost") && gossip != nil && !gossip.IsLoopback():
		return fmt.Errorf("%q is a loopback address, but cluster.bind gossips on %s: the other nodes could not reach this one", addr, gossip)
	}
	return nil
}

// checkDial accepts an address to connect to: host:port with both parts.
func checkDial(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || !validPort(port, 1) {
		return fmt.Errorf("%q is not host:port", addr)
	}
	return nil
}

func validPort(s string, lowest int) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= lowest && n <= 65535 && strings.Trim(s, "0123456789") == ""
}

// checkCallbackURL applies the webhook client's own URL policy, so a
// callback URL the config accepts is one the client will call.
func checkCallbackURL(raw string, allowPrivate bool) error {
	if err := callback.CheckURL(raw, allowPrivate); err != nil {
		return fmt.Errorf("%q: %s", redactedURL(raw), switchboard.ErrorMessage(err))
	}
	return nil
}

// redactedURL is raw with the password of its user info masked, so an
// error about it repeats no secret.
func redactedURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	if scheme, rest, ok := strings.Cut(raw, "://"); ok {
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			return scheme + "://xxxxx@" + rest[at+1:]
		}
	}
	return raw
}

// ---- help ----

// configHelp describes every setting for --help: its YAML path, its
// environment variable, its type and default, and what it does. It is
// generated from the struct tags.
func configHelp() string {
	var b strings.Builder
	b.WriteString(`Configuration:
  Settings come from the YAML file (--config, else $SWITCHBOARD_CONFIG, else
  ./cluster.yaml), then from SWITCHBOARD_* environment variables, then from
  command-line flags; each tier overrides the one before. Settings left empty
  take the defaults below. A variable's name is the setting's path
  upper-cased with "_" between parts; list items go by index from 0
  (SWITCHBOARD_CARRIERS_0_HOST), lists of names are comma-separated
  (SWITCHBOARD_ROUTES_0_CARRIERS=a,b), durations are like 30s, 5m, 72h.
  Variables change existing list items, they cannot add one. An unknown
  SWITCHBOARD_* variable is an error.
`)
	for _, o := range configOptions() {
		if o.section != nil {
			fmt.Fprintf(&b, "\n%s: %s\n", o.Path, o.Help)
			continue
		}
		fmt.Fprintf(&b, "  %-34s %s\n", o.Path, o.Env)
		desc := o.Help
		if o.Default != "" {
			desc += " (default " + o.Default + ")"
		}
		fmt.Fprintf(&b, "      %s: %s\n", o.Type, desc)
	}
	return b.String()
}
