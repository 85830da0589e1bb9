package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/labstack/echo"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-sms/switchboard/actors/gossip"
)

// A member process: one protoactor cluster member with one grain kind,
// "echo", whose grains answer with the id of the actor system they live in.
// The driver reads and drives it over HTTP on 127.0.0.1 (the control port).

const (
	clusterName = "bench"
	grainKind   = "echo"
	// autoRefresh is the automanaged provider's polling interval, set to
	// the gossip provider's probe interval so both look as often.
	autoRefresh = 250 * time.Millisecond
)

type memberFlags struct {
	provider string
	name     string
	control  string
	gossip   string
	seeds    string
	auto     string
	hosts    string
}

// member is the process's state across generations: a generation is one
// actor system; a gossip member that was removed starts the next one.
type member struct {
	f   memberFlags
	log zerolog.Logger
	ctx context.Context

	mu     sync.Mutex
	gen    int
	c      *cluster.Cluster
	active map[string]int // grain identity → generation it lives in
	events []event
}

// event is one thing the driver times: a topology handed to protoactor, a
// removal, a rejoin.
type event struct {
	T       int64    `json:"t"` // unix ns
	Gen     int      `json:"gen"`
	Kind    string   `json:"kind"`
	ID      string   `json:"id"`
	Members []string `json:"members,omitempty"`
}

// memberState is GET /state's answer.
type memberState struct {
	Name    string   `json:"name"`
	Gen     int      `json:"gen"`
	ID      string   `json:"id"`
	Members []string `json:"members"`
	Blocked []string `json:"blocked"`
	Active  []string `json:"active"`
	Events  []event  `json:"events"`
}

func runMember(args []string) error {
	var f memberFlags
	fs := flag.NewFlagSet("member", flag.ContinueOnError)
	fs.StringVar(&f.provider, "provider", "gossip", "gossip or automanaged")
	fs.StringVar(&f.name, "name", "n1", "name in logs")
	fs.StringVar(&f.control, "control", "", "control HTTP address, 127.0.0.1:port")
	fs.StringVar(&f.gossip, "gossip", "", "gossip bind address (gossip provider)")
	fs.StringVar(&f.seeds, "seeds", "", "comma-separated gossip seeds")
	fs.StringVar(&f.auto, "auto", "", "automanaged health address, 127.0.0.1:port")
	fs.StringVar(&f.hosts, "hosts", "", "comma-separated automanaged health addresses of all members")
	if err := fs.Parse(args); err != nil {
		return err
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano // this process's logs are read for timings
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &member{
		f:      f,
		log:    zerolog.New(os.Stderr).With().Timestamp().Str("node", f.name).Logger(),
		ctx:    ctx,
		active: make(map[string]int),
	}
	ln, err := net.Listen("tcp", f.control)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	srv := &http.Server{Handler: m.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	if err := m.startGeneration(); err != nil {
		return err
	}
	<-ctx.Done()
	return srv.Close()
}

// startGeneration starts a new actor system and cluster member.
func (m *member) startGeneration() error {
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}))
	m.mu.Lock()
	m.gen++
	gen := m.gen
	m.mu.Unlock()
	kind := cluster.NewKind(grainKind, actor.PropsFromProducer(func() actor.Actor {
		return &grain{m: m, gen: gen, system: system.ID}
	}))
	var (
		c        *cluster.Cluster
		provider cluster.ClusterProvider
		members  *gossip.Provider
	)
	switch m.f.provider {
	case "gossip":
		members = gossip.New(gossip.Config{Cluster: clusterName, Bind: m.f.gossip, Seeds: split(m.f.seeds), Log: m.log})
		provider = members
	case "automanaged":
		p, err := m.automanaged(func() *cluster.Cluster { return c })
		if err != nil {
			return err
		}
		provider = p
	default:
		return fmt.Errorf("unknown provider %q", m.f.provider)
	}
	cfg := cluster.Configure(clusterName, provider, disthash.New(), remote.Configure("127.0.0.1", 0),
		cluster.WithKinds(kind))
	c = cluster.New(system, cfg)
	system.EventStream.Subscribe(func(evt any) {
		if t, ok := evt.(*cluster.ClusterTopology); ok {
			m.record(gen, "topology", system.ID, ids(t.Members))
		}
	})
	c.StartMember()
	m.mu.Lock()
	m.c = c
	m.mu.Unlock()
	m.record(gen, "started", system.ID, nil)
	if members != nil {
		go m.rejoinWhenRemoved(members, c, gen)
	}
	return nil
}

// automanaged builds protoactor's HTTP-polling provider with its health
// endpoint on 127.0.0.1 (it would listen on every interface otherwise).
func (m *member) automanaged(c func() *cluster.Cluster) (*automanaged.AutoManagedProvider, error) {
	_, p, err := net.SplitHostPort(m.f.auto)
	if err != nil {
		return nil, fmt.Errorf("auto: %w", err)
	}
	port, _ := strconv.Atoi(p)
	ln, err := net.Listen("tcp", m.f.auto)
	if err != nil {
		return nil, fmt.Errorf("auto: %w", err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort, e.Listener = true, true, ln
	e.GET("/_health", func(ctx echo.Context) error {
		cl := c()
		host, rport, err := cl.ActorSystem.GetHostPort()
		if err != nil {
			return err
		}
		return ctx.JSON(http.StatusOK, automanaged.NewNode(clusterName, cl.ActorSystem.ID, host, rport, port, cl.GetClusterKinds()))
	})
	return automanaged.NewWithTesting(autoRefresh, port, e, split(m.f.hosts)...), nil
}

// rejoinWhenRemoved is what the engine does when the others declared this
// node dead: stop the old actor system and join again under a new id.
func (m *member) rejoinWhenRemoved(p *gossip.Provider, c *cluster.Cluster, gen int) {
	select {
	case <-m.ctx.Done():
		return
	case <-p.Removed():
	}
	m.record(gen, "removed", c.ActorSystem.ID, nil)
	// Stop serving and forget this generation's grains first, as the engine
	// stops its actors: their identities live elsewhere now.
	m.mu.Lock()
	m.c = nil
	for id, g := range m.active {
		if g == gen {
			delete(m.active, id)
		}
	}
	m.mu.Unlock()
	_ = p.Shutdown(true)
	c.Shutdown(false)
	if err := m.startGeneration(); err != nil {
		m.log.Error().Err(err).Msg("rejoin")
		return
	}
	m.mu.Lock()
	id := m.c.ActorSystem.ID
	m.mu.Unlock()
	m.record(gen+1, "rejoined", id, nil)
}

func (m *member) record(gen int, kind, id string, members []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, event{T: time.Now().UnixNano(), Gen: gen, Kind: kind, ID: id, Members: members})
}

func (m *member) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, m.state()) })
	mux.HandleFunc("GET /call", func(w http.ResponseWriter, r *http.Request) {
		timeout := msParam(r, "timeout_ms", 500)
		writeJSON(w, m.call(r.URL.Query().Get("id"), timeout))
	})
	// /await calls a grain until a member other than `not` answers, and
	// reports when.
	mux.HandleFunc("GET /await", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		end := time.Now().Add(msParam(r, "within_ms", 30000))
		attempts := 0
		for time.Now().Before(end) && m.ctx.Err() == nil {
			attempts++
			res := m.call(q.Get("id"), 300*time.Millisecond)
			if res.Err == "" && res.By != q.Get("not") {
				res.Attempts = attempts
				writeJSON(w, res)
				return
			}
			if res.Err == "" {
				time.Sleep(10 * time.Millisecond) // answered by the excluded member: ask again soon
			}
		}
		writeJSON(w, callResult{Err: "no answer from another member in time", Attempts: attempts})
	})
	return mux
}

type callResult struct {
	By       string  `json:"by,omitempty"`
	At       int64   `json:"at,omitempty"` // unix ns of the answer
	Ms       float64 `json:"ms"`
	Err      string  `json:"err,omitempty"`
	Attempts int     `json:"attempts,omitempty"`
}

func (m *member) call(id string, timeout time.Duration) callResult {
	m.mu.Lock()
	c := m.c
	m.mu.Unlock()
	if c == nil {
		return callResult{Err: "not started"}
	}
	start := time.Now()
	resp, err := c.Request(id, grainKind, wrapperspb.String(id), cluster.WithTimeout(timeout), cluster.WithRetryCount(1))
	res := callResult{At: time.Now().UnixNano(), Ms: float64(time.Since(start).Microseconds()) / 1000}
	switch v := resp.(type) {
	case *wrapperspb.StringValue:
		res.By = v.Value
	default:
		if err == nil {
			err = fmt.Errorf("answer %T", resp)
		}
		res.Err = err.Error()
	}
	return res
}

func (m *member) state() memberState {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := memberState{Name: m.f.name, Gen: m.gen, Events: slices.Clone(m.events)}
	if m.c == nil {
		return s // between generations
	}
	s.ID = m.c.ActorSystem.ID
	s.Members = ids(m.c.MemberList.Members().Members())
	if r := m.c.Remote; r != nil {
		s.Blocked = slices.Sorted(slices.Values(r.BlockList().BlockedMembers().ToSlice()))
	}
	for id, gen := range m.active {
		if gen == m.gen {
			s.Active = append(s.Active, id)
		}
	}
	slices.Sort(s.Active)
	return s
}

func (m *member) activated(gen int, id string) {
	m.mu.Lock()
	m.active[id] = gen
	m.mu.Unlock()
}

func (m *member) stopped(gen int, id string) {
	m.mu.Lock()
	if m.active[id] == gen {
		delete(m.active, id)
	}
	m.mu.Unlock()
}

// grain answers with the id of its actor system and reports its lifetime.
type grain struct {
	m        *member
	gen      int
	system   string
	identity string
}

func (g *grain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *cluster.ClusterInit:
		g.identity = msg.Identity.Identity
		g.m.activated(g.gen, g.identity)
	case *actor.Stopped:
		if g.identity != "" {
			g.m.stopped(g.gen, g.identity)
		}
	case *wrapperspb.StringValue:
		ctx.Respond(wrapperspb.String(g.system))
	}
}

func ids(ms []*cluster.Member) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Id)
	}
	slices.Sort(out)
	return out
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func msParam(r *http.Request, name string, def int) time.Duration {
	if v, err := strconv.Atoi(r.URL.Query().Get(name)); err == nil && v > 0 {
		return time.Duration(v) * time.Millisecond
	}
	return time.Duration(def) * time.Millisecond
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
