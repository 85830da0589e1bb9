package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gocql/gocql"
)

// The gateway's storage under load: embedded (Pebble in a temporary
// directory), or scylla: a Cassandra (or ScyllaDB) node with Redis as the
// cache, both given (--cql, --redis host:port) or started here with the
// project's scripts (deploy/local: --cql start, --redis start) and stopped
// at the end by the PIDs the scripts record. A scylla run gets a keyspace
// of its own, dropped at the end unless --keep-data.
//
// What the database did is read from the database itself, so it is the
// same whether the gateway runs in this process or as its binary: the
// requests each client connection made (system_views.clients), the
// partition writes and reads per table of the run's keyspace
// (system_views.local_write_latency, local_read_latency,
// local_scan_latency), and the statements executed (system_views.cql_metrics,
// which counts each statement of a batch); the bytes the gateway sent to it
// come from its TCP sockets (ss), and its CPU from /proc/<pid>.

// backend is one storage the load runs on.
type backend struct {
	name     string // "embedded" or "scylla"
	cql      string // host:port
	keyspace string
	redis    string // host:port; "" no cache
	dbPID    int    // the CQL server's process, for its CPU (0: unknown)
	redisPID int
	stats    *cqlStats
}

// benchDriverName is the driver name of the bench's own CQL session, so
// its requests are told from the gateway's in system_views.clients.
const benchDriverName = "switchboard-bench"

// storages parses --storage: a comma-separated list of backends, run one
// after the other on the same rig (same flags, same machine, same run).
func (s *settings) storages() ([]string, error) {
	var out []string
	for _, name := range strings.Split(s.storage, ",") {
		name = strings.TrimSpace(name)
		if name != "embedded" && name != "scylla" {
			return nil, fmt.Errorf("--storage: %q is not embedded or scylla", name)
		}
		out = append(out, name)
	}
	return out, nil
}

// deployDir is where deploy/local's scripts are: --deploy-dir, or
// deploy/local under the git checkout the bench runs in.
func (r *rig) deployDir() string {
	if r.s.deployDir != "" {
		return r.s.deployDir
	}
	if top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output(); err == nil {
		return filepath.Join(strings.TrimSpace(string(top)), "deploy", "local")
	}
	return filepath.Join("deploy", "local")
}

// freePort returns a TCP port on 127.0.0.1 nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// scyllaBackend returns the scylla backend: the servers --cql and --redis
// name, or those it starts (their cleanups stop them), a fresh keyspace
// (dropped at the end unless --keep-data) and a session for the figures.
func (r *rig) scyllaBackend(workDir string) (*backend, error) {
	b := &backend{name: "scylla", cql: r.s.cql, redis: r.s.redis,
		keyspace: fmt.Sprintf("bench_%d", time.Now().UnixNano()%1e12)}
	var err error
	if b.cql == "start" {
		if b.cql, b.dbPID, err = r.startCassandra(filepath.Join(workDir, "cassandra")); err != nil {
			return nil, err
		}
	} else if b.cql == "" {
		return nil, errors.New("--storage scylla needs --cql host:port, or --cql start")
	}
	if b.redis == "start" {
		if b.redis, b.redisPID, err = r.startRedis(filepath.Join(workDir, "redis")); err != nil {
			return nil, err
		}
	}
	if b.dbPID == 0 {
		b.dbPID = listenerPID(b.cql)
	}
	if b.redis != "" && b.redisPID == 0 {
		b.redisPID = listenerPID(b.redis)
	}
	if b.stats, err = openCQLStats(b.cql, b.keyspace); err != nil {
		return nil, err
	}
	r.cl.add(func() {
		if !r.s.keepData {
			if err := b.stats.drop(); err != nil {
				fmt.Fprintf(r.errOut, "drop keyspace %s: %v\n", b.keyspace, err)
			}
		} else {
			fmt.Fprintf(r.out, "keyspace %s kept on %s\n", b.keyspace, b.cql)
		}
		b.stats.close()
	})
	return b, nil
}

// startCassandra runs deploy/local/cassandra/start.sh on free ports with
// its files in dir, and stops it (stop.sh: by the PID it recorded) at the
// end.
func (r *rig) startCassandra(dir string) (addr string, pid int, err error) {
	cqlPort, err := freePort()
	if err != nil {
		return "", 0, err
	}
	storagePort, err := freePort()
	if err != nil {
		return "", 0, err
	}
	env := append(os.Environ(), fmt.Sprintf("CASS_CQL_PORT=%d", cqlPort), fmt.Sprintf("CASS_STORAGE_PORT=%d", storagePort),
		"CASS_JMX_PORT=", "CASS_WORK="+dir)
	if r.s.cassandraHeap != "" {
		env = append(env, "CASS_HEAP="+r.s.cassandraHeap)
	}
	script := filepath.Join(r.deployDir(), "cassandra")
	stop := func() {
		cmd := exec.Command(filepath.Join(script, "stop.sh"))
		cmd.Env, cmd.Stdout, cmd.Stderr = env, r.out, r.errOut
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(r.errOut, "stop cassandra: %v\n", err)
		}
	}
	r.cl.add(stop)
	fmt.Fprintf(r.out, "starting Cassandra on 127.0.0.1:%d (deploy/local/cassandra/start.sh, files in %s)\n", cqlPort, dir)
	cmd := exec.Command(filepath.Join(script, "start.sh"))
	cmd.Env, cmd.Stdout, cmd.Stderr = env, r.out, r.errOut
	if err := cmd.Run(); err != nil {
		return "", 0, fmt.Errorf("start cassandra: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cassandra.pid"))
	if err != nil {
		return "", 0, fmt.Errorf("start cassandra: %w", err)
	}
	pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	return fmt.Sprintf("127.0.0.1:%d", cqlPort), pid, nil
}

// startRedis runs deploy/local/redis.sh start on a free port with its
// files in dir, and stops it at the end.
func (r *rig) startRedis(dir string) (addr string, pid int, err error) {
	port, err := freePort()
	if err != nil {
		return "", 0, err
	}
	env := append(os.Environ(), fmt.Sprintf("REDIS_PORT=%d", port), "REDIS_WORK="+dir)
	script := filepath.Join(r.deployDir(), "redis.sh")
	r.cl.add(func() {
		cmd := exec.Command(script, "stop")
		cmd.Env, cmd.Stdout, cmd.Stderr = env, r.out, r.errOut
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(r.errOut, "stop redis: %v\n", err)
		}
	})
	cmd := exec.Command(script, "start")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, r.out, r.errOut
	if err := cmd.Run(); err != nil {
		return "", 0, fmt.Errorf("start redis: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "redis.pid"))
	if err != nil {
		return "", 0, fmt.Errorf("start redis: %w", err)
	}
	pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	return fmt.Sprintf("127.0.0.1:%d", port), pid, nil
}

var ssPID = regexp.MustCompile(`pid=(\d+)`)

// listenerPID is the process listening on addr's port on this machine,
// from ss; 0 if it cannot tell (e.g. another user's process).
func listenerPID(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	out, err := exec.Command("ss", "-Hltnp", "sport = :"+port).Output()
	if err != nil {
		return 0
	}
	if m := ssPID.FindSubmatch(out); m != nil {
		pid, _ := strconv.Atoi(string(m[1]))
		return pid
	}
	return 0
}

// cqlStats reads what the database did from its virtual tables.
type cqlStats struct {
	session  *gocql.Session
	addr     string
	keyspace string
}

func openCQLStats(addr, keyspace string) (*cqlStats, error) {
	c := gocql.NewCluster(addr)
	c.DriverName = benchDriverName
	c.Timeout = 30 * time.Second
	c.ConnectTimeout = 10 * time.Second
	c.NumConns = 1
	c.Logger = nopLogger{}
	s, err := c.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("cql %s: %w", addr, err)
	}
	return &cqlStats{session: s, addr: addr, keyspace: keyspace}, nil
}

type nopLogger struct{}

func (nopLogger) Print(...any)          {}
func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

func (c *cqlStats) close() { c.session.Close() }

// drop drops the run's keyspace.
func (c *cqlStats) drop() error {
	return c.session.Query("DROP KEYSPACE IF EXISTS " + c.keyspace).Exec()
}

// dbSnapshot is what the database had done at one moment.
type dbSnapshot struct {
	requests   int64            // requests of the gateway's connections
	statements int64            // statements executed (each of a batch counts), every client
	writes     map[string]int64 // partition writes by table, in the run's keyspace
	reads      map[string]int64 // partition reads and scans by table, in the run's keyspace
	sent, recv int64            // bytes the gateway's process sent to and received from the CQL port
	ok         bool
}

// snapshot reads the counters; gwPID is the gateway's process (this one
// for the in-process node), whose sockets to the database are summed.
func (c *cqlStats) snapshot(gwPID int) dbSnapshot {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := dbSnapshot{writes: map[string]int64{}, reads: map[string]int64{}, ok: true}
	iter := c.session.Query(`SELECT driver_name, request_count FROM system_views.clients`).WithContext(ctx).Iter()
	var driver string
	var n int64
	for iter.Scan(&driver, &n) {
		if driver != benchDriverName {
			s.requests += n
		}
	}
	if iter.Close() != nil {
		s.ok = false
	}
	iter = c.session.Query(`SELECT name, value FROM system_views.cql_metrics`).WithContext(ctx).Iter()
	var name string
	var v float64
	for iter.Scan(&name, &v) {
		if name == "prepared_statements_executed" || name == "regular_statements_executed" {
			s.statements += int64(v)
		}
	}
	if iter.Close() != nil {
		s.ok = false
	}
	iter = c.session.Query(`SELECT table_name, count FROM system_views.local_write_latency WHERE keyspace_name = ?`, c.keyspace).
		WithContext(ctx).Iter()
	for iter.Scan(&name, &n) {
		if n > 0 {
			s.writes[name] = n
		}
	}
	if iter.Close() != nil {
		s.ok = false
	}
	for _, t := range []string{"local_read_latency", "local_scan_latency"} {
		iter = c.session.Query(`SELECT table_name, count FROM system_views.`+t+` WHERE keyspace_name = ?`, c.keyspace).
			WithContext(ctx).Iter()
		for iter.Scan(&name, &n) {
			if n > 0 {
				s.reads[name] += n
			}
		}
		if iter.Close() != nil {
			s.ok = false
		}
	}
	s.sent, s.recv = socketBytes(gwPID, c.addr)
	return s
}

var (
	ssSent = regexp.MustCompile(`bytes_sent:(\d+)`)
	ssRecv = regexp.MustCompile(`bytes_received:(\d+)`)
)

// socketBytes sums the bytes pid's open TCP connections to addr sent and
// received (ss -tinp: bytes_sent, bytes_received), protocol framing
// included.
func socketBytes(pid int, addr string) (sent, recv int64) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, 0
	}
	out, err := exec.Command("ss", "-Htinp", "state", "established", "dst", host+":"+port).Output()
	if err != nil {
		return 0, 0
	}
	return parseSocketBytes(out, pid)
}

// parseSocketBytes reads ss -Htinp's output: each socket is a line naming
// its process (users:(("name",pid=N,fd=M))), then an indented line of
// tcp_info with bytes_sent and bytes_received.
func parseSocketBytes(out []byte, pid int) (sent, recv int64) {
	mine := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			m := ssPID.FindStringSubmatch(line)
			mine = m != nil && m[1] == strconv.Itoa(pid)
			continue
		}
		if !mine {
			continue
		}
		if m := ssSent.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			sent += v
		}
		if m := ssRecv.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			recv += v
		}
	}
	return sent, recv
}

// dbFigures are what the database did for the run's messages, from just
// before the load to the end of the drain, per message accepted.
type dbFigures struct {
	Messages           int64              `json:"messages"`
	RequestsPerMsg     float64            `json:"requests_per_msg"`   // round trips from the gateway
	StatementsPerMsg   float64            `json:"statements_per_msg"` // every statement, each of a batch counted
	WritesPerMsg       float64            `json:"partition_writes_per_msg"`
	WritesByTable      map[string]float64 `json:"partition_writes_per_msg_by_table"`
	ReadsPerMsg        float64            `json:"partition_reads_per_msg"`
	ReadsByTable       map[string]float64 `json:"partition_reads_per_msg_by_table"`
	BytesSentPerMsg    float64            `json:"bytes_to_db_per_msg"`
	BytesRecvPerMsg    float64            `json:"bytes_from_db_per_msg"`
	DatabaseCPU        float64            `json:"database_cpu_cores"` // in the measured window
	RedisCPU           float64            `json:"redis_cpu_cores,omitempty"`
	Keyspace           string             `json:"keyspace"`
	CountersIncomplete bool               `json:"counters_incomplete,omitempty"`

	perMsgRate float64 // messages accepted per second in the window, for CPU per message
}

func (f *dbFigures) fill(a, b dbSnapshot, msgs int64) {
	f.Messages = msgs
	if msgs <= 0 {
		return
	}
	per := func(v int64) float64 { return float64(v) / float64(msgs) }
	f.RequestsPerMsg = per(b.requests - a.requests)
	f.StatementsPerMsg = per(b.statements - a.statements)
	f.BytesSentPerMsg = per(b.sent - a.sent)
	f.BytesRecvPerMsg = per(b.recv - a.recv)
	byTable := func(a, b map[string]int64) (map[string]float64, float64) {
		out := map[string]float64{}
		var all int64
		for t, n := range b {
			if d := n - a[t]; d > 0 {
				out[t] = per(d)
				all += d
			}
		}
		return out, per(all)
	}
	f.WritesByTable, f.WritesPerMsg = byTable(a.writes, b.writes)
	f.ReadsByTable, f.ReadsPerMsg = byTable(a.reads, b.reads)
	f.CountersIncomplete = !a.ok || !b.ok
}

func (f *dbFigures) print(w io.Writer) {
	byTable := func(m map[string]float64) string {
		var tables []string
		for t, v := range m {
			tables = append(tables, fmt.Sprintf("%s %.2f", t, v))
		}
		slices.Sort(tables)
		return strings.Join(tables, ", ")
	}
	fmt.Fprintf(w, "%-15s %.2f requests, %.2f statements, %.2f partition writes, %.2f partition reads; %.0f bytes sent to it, %.0f received (per message, %d messages, keyspace %s)\n",
		"database", f.RequestsPerMsg, f.StatementsPerMsg, f.WritesPerMsg, f.ReadsPerMsg, f.BytesSentPerMsg, f.BytesRecvPerMsg, f.Messages, f.Keyspace)
	fmt.Fprintf(w, "%-15s %s\n", "writes by table", byTable(f.WritesByTable))
	fmt.Fprintf(w, "%-15s %s\n", "reads by table", byTable(f.ReadsByTable))
	cpu := fmt.Sprintf("%.2f cores in window", f.DatabaseCPU)
	if f.perMsgRate > 0 {
		cpu += fmt.Sprintf(" (%.0f µs per message accepted in it)", 1e6*f.DatabaseCPU/f.perMsgRate)
	}
	if f.RedisCPU > 0 {
		cpu += fmt.Sprintf("; redis %.2f cores", f.RedisCPU)
	}
	fmt.Fprintf(w, "%-15s %s\n", "database cpu", cpu)
	if f.CountersIncomplete {
		fmt.Fprintln(w, "note: a read of the database's counters failed; the figures above are incomplete")
	}
}
