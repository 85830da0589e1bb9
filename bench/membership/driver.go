package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

type driverFlags struct {
	providers []string
	scenarios []string
	runs      int
	grains    int
	sample    int
	pause     time.Duration
	observe   time.Duration
	logs      string
}

func runDriver(args []string) error {
	var f driverFlags
	var providers, scenarios string
	fs := flag.NewFlagSet("membership", flag.ContinueOnError)
	fs.StringVar(&providers, "providers", "gossip,automanaged", "providers to measure")
	fs.StringVar(&scenarios, "scenarios", "kill,pause", "scenarios to run")
	fs.IntVar(&f.runs, "runs", 3, "runs of each scenario")
	fs.IntVar(&f.grains, "grains", 60, "grain identities activated before the fault")
	fs.IntVar(&f.sample, "sample", 5, "grains of the faulty member timed until they answer again")
	fs.DurationVar(&f.pause, "pause", 10*time.Second, "how long SIGSTOP lasts")
	fs.DurationVar(&f.observe, "observe", 30*time.Second, "how long to watch after SIGCONT")
	fs.StringVar(&f.logs, "logs", "", "directory for the members' logs (default: a new temporary one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f.providers, f.scenarios = split(providers), split(scenarios)
	if f.logs == "" {
		dir, err := os.MkdirTemp("", "membership-")
		if err != nil {
			return err
		}
		f.logs = dir
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("members' logs: %s\n", f.logs)
	var results []result
	for _, sc := range f.scenarios {
		for _, pr := range f.providers {
			for run := 1; run <= f.runs; run++ {
				r := result{Provider: pr, Scenario: sc, Run: run}
				dir := filepath.Join(f.logs, fmt.Sprintf("%s-%s-%d", sc, pr, run))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				err := scenario(exe, dir, f, &r)
				if err != nil {
					r.Error = err.Error()
				}
				fmt.Println(r.line())
				results = append(results, r)
			}
		}
	}
	fmt.Println()
	printTable(results, f.pause)
	b, _ := json.MarshalIndent(results, "", "  ")
	return os.WriteFile(filepath.Join(f.logs, "results.json"), b, 0o644)
}

// result is one run of one scenario.
type result struct {
	Provider string `json:"provider"`
	Scenario string `json:"scenario"`
	Run      int    `json:"run"`
	Error    string `json:"error,omitempty"`
	// DropMs: from the signal until both other members' topologies lost the
	// member (-1: not within the scenario).
	DropMs float64 `json:"drop_ms"`
	// GrainMs: from the signal until each sampled grain of the member
	// answered from another member (median and max).
	GrainMedianMs float64 `json:"grain_median_ms"`
	GrainMaxMs    float64 `json:"grain_max_ms"`
	GrainsTimed   int     `json:"grains_timed"`
	// AfterDropMs: from the signal until a grain of the member not called
	// before, first called once the others dropped it, answered.
	AfterDropMs float64 `json:"after_drop_ms"`
	// Pause only, measured after SIGCONT:
	OneViewMs    float64 `json:"one_view_ms"`    // until all three hold one 3-member view (-1: never)
	OneViewAtEnd bool    `json:"one_view_end"`   // ... still at the end of the window
	Views        string  `json:"views"`          // view sizes at the end, e.g. 3/3/3
	OldIDBlocked bool    `json:"old_id_blocked"` // the paused member's old id in the others' block lists
	ItBlocks     int     `json:"it_blocks"`      // the others' ids in the paused member's own block list, at the end
	RemovedMs    float64 `json:"removed_ms"`     // until it learnt it was removed (-1: it did not)
	RejoinedMs   float64 `json:"rejoined_ms"`    // until it rejoined under a new id (-1: it did not)
	DupMax       int     `json:"dup_max"`        // identities active on two members at once, most seen
	DupUntilMs   float64 `json:"dup_until_ms"`   // last moment any was seen active twice (-1: never)
	DupEnd       int     `json:"dup_end"`        // ... at the end of the window
	TwoAnswerers int     `json:"two_answerers"`  // grains answered by different members via the paused one and another, most seen
	TwoAnswerEnd int     `json:"two_answer_end"` // ... at the end of the window
}

func (r result) line() string {
	s := fmt.Sprintf("%-5s %-11s run %d: drop %s, grains back median %s max %s (%d), first called after the drop %s",
		r.Scenario, r.Provider, r.Run, ms(r.DropMs), ms(r.GrainMedianMs), ms(r.GrainMaxMs), r.GrainsTimed, ms(r.AfterDropMs))
	if r.Scenario == "pause" {
		s += fmt.Sprintf("; after SIGCONT: one view %s (at end %v, views %s), old id blocked %v, it blocks %d, removed %s, rejoined %s, active twice max %d until %s end %d, two answerers max %d end %d",
			ms(r.OneViewMs), r.OneViewAtEnd, r.Views, r.OldIDBlocked, r.ItBlocks, ms(r.RemovedMs), ms(r.RejoinedMs), r.DupMax, ms(r.DupUntilMs), r.DupEnd, r.TwoAnswerers, r.TwoAnswerEnd)
	}
	if r.Error != "" {
		s += "; ERROR: " + r.Error
	}
	return s
}

func ms(v float64) string {
	if v < 0 {
		return "never"
	}
	return fmt.Sprintf("%.0f ms", v)
}

// proc is one member process.
type proc struct {
	name    string
	control string
	cmd     *exec.Cmd
	exited  chan struct{}
}

type fleet struct {
	procs  []*proc
	client *http.Client
}

// startFleet starts three members of provider pr, logging into dir.
func startFleet(exe, dir, pr string) (*fleet, error) {
	fl := &fleet{client: &http.Client{Timeout: 40 * time.Second}}
	ports := make([]string, 3)   // gossip or health addresses
	control := make([]string, 3) // control addresses
	for i := range 3 {
		var err error
		if ports[i], err = freeAddr(); err != nil {
			return nil, err
		}
		if control[i], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		args := []string{"member", "-provider", pr, "-name", name, "-control", control[i]}
		switch pr {
		case "gossip":
			args = append(args, "-gossip", ports[i], "-seeds", strings.Join(ports, ","))
		default:
			args = append(args, "-auto", ports[i], "-hosts", strings.Join(ports, ","))
		}
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			fl.stop()
			return nil, err
		}
		cmd := exec.Command(exe, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			fl.stop()
			return nil, err
		}
		p := &proc{name: name, control: control[i], cmd: cmd, exited: make(chan struct{})}
		go func() { _ = cmd.Wait(); logf.Close(); close(p.exited) }()
		fl.procs = append(fl.procs, p)
	}
	return fl, nil
}

// stop kills every member by its PID and waits for it.
func (fl *fleet) stop() {
	for _, p := range fl.procs {
		_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, p := range fl.procs {
		<-p.exited
	}
}

func (fl *fleet) state(p *proc) (memberState, error) {
	var s memberState
	err := fl.get(p, "/state", nil, &s)
	return s, err
}

func (fl *fleet) get(p *proc, path string, q url.Values, v any) error {
	u := "http://" + p.control + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := fl.client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// formed waits until every member holds the same view of all three.
func (fl *fleet) formed(within time.Duration) ([]memberState, error) {
	end := time.Now().Add(within)
	for {
		states, ok := fl.oneView(fl.procs)
		if ok {
			return states, nil
		}
		if time.Now().After(end) {
			return nil, fmt.Errorf("no common view of 3 members within %s", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// oneView reads every member in ps and reports whether they hold one view
// with exactly their own current ids.
func (fl *fleet) oneView(ps []*proc) ([]memberState, bool) {
	states := make([]memberState, len(ps))
	var own []string
	for i, p := range ps {
		s, err := fl.state(p)
		if err != nil || s.ID == "" {
			return nil, false
		}
		states[i] = s
		own = append(own, s.ID)
	}
	slices.Sort(own)
	for _, s := range states {
		if !slices.Equal(s.Members, own) {
			return states, false
		}
	}
	return states, true
}

func scenario(exe, dir string, f driverFlags, r *result) error {
	r.DropMs, r.GrainMedianMs, r.GrainMaxMs, r.AfterDropMs, r.OneViewMs, r.RemovedMs, r.RejoinedMs, r.DupUntilMs = -1, -1, -1, -1, -1, -1, -1, -1
	fl, err := startFleet(exe, dir, r.Provider)
	if err != nil {
		return err
	}
	defer fl.stop()
	states, err := fl.formed(30 * time.Second)
	if err != nil {
		return err
	}
	// Activate grains from every member; the victim is the third.
	owner := make(map[string]string)
	for i := range f.grains {
		id := fmt.Sprintf("g%02d", i)
		var res callResult
		if err := fl.get(fl.procs[i%3], "/call", url.Values{"id": {id}, "timeout_ms": {"2000"}}, &res); err != nil || res.Err != "" {
			return fmt.Errorf("activating %s: %v %s", id, err, res.Err)
		}
		owner[id] = res.By
	}
	victim, victimID := fl.procs[2], states[2].ID
	var theirs []string
	for id, by := range owner {
		if by == victimID {
			theirs = append(theirs, id)
		}
	}
	slices.Sort(theirs)
	if len(theirs) == 0 {
		return errors.New("the victim owns no grain")
	}
	sample := theirs[:min(f.sample, len(theirs))]
	rest := theirs[len(sample):]
	survivors := fl.procs[:2]

	sig := syscall.SIGKILL
	if r.Scenario == "pause" {
		sig = syscall.SIGSTOP
	}
	t0 := time.Now()
	if err := syscall.Kill(victim.cmd.Process.Pid, sig); err != nil {
		return err
	}
	within := 15 * time.Second
	if r.Scenario == "pause" {
		within = f.pause
	}
	grainsBack := fl.awaitGrains(survivors[0], sample, victimID, t0, within)
	r.DropMs = fl.dropped(survivors, victimID, t0, within)
	if r.DropMs >= 0 && len(rest) > 0 {
		var res callResult
		if err := fl.get(survivors[1], "/call", url.Values{"id": {rest[0]}, "timeout_ms": {"10000"}}, &res); err == nil && res.Err == "" {
			r.AfterDropMs = float64(res.At-t0.UnixNano()) / 1e6
		}
	}
	waitGrains := <-grainsBack
	r.GrainsTimed = len(waitGrains)
	if len(waitGrains) > 0 {
		slices.Sort(waitGrains)
		r.GrainMedianMs, r.GrainMaxMs = waitGrains[len(waitGrains)/2], waitGrains[len(waitGrains)-1]
	}
	if r.Scenario == "kill" {
		return nil
	}

	time.Sleep(time.Until(t0.Add(f.pause)))
	tc := time.Now()
	if err := syscall.Kill(victim.cmd.Process.Pid, syscall.SIGCONT); err != nil {
		return err
	}
	fl.watchResume(f, r, victim, victimID, theirs, tc)
	return nil
}

// awaitGrains asks member p for each grain until a member other than
// victimID answers; it sends the delays from t0 once all are in.
func (fl *fleet) awaitGrains(p *proc, grains []string, victimID string, t0 time.Time, within time.Duration) <-chan []float64 {
	out := make(chan []float64, 1)
	go func() {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var delays []float64
		for _, id := range grains {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var res callResult
				q := url.Values{"id": {id}, "not": {victimID}, "within_ms": {fmt.Sprint(within.Milliseconds())}}
				if err := fl.get(p, "/await", q, &res); err != nil || res.Err != "" {
					return
				}
				mu.Lock()
				delays = append(delays, float64(res.At-t0.UnixNano())/1e6)
				mu.Unlock()
			}()
		}
		wg.Wait()
		out <- delays
	}()
	return out
}

// dropped waits until every survivor's topology lost victimID and returns
// the latest of those moments, from the members' own event times.
func (fl *fleet) dropped(survivors []*proc, victimID string, t0 time.Time, within time.Duration) float64 {
	end := t0.Add(within)
	for time.Now().Before(end) {
		latest, all := int64(0), true
		for _, p := range survivors {
			s, err := fl.state(p)
			if err != nil || slices.Contains(s.Members, victimID) {
				all = false
				break
			}
			for _, e := range s.Events {
				if e.Kind == "topology" && e.T > t0.UnixNano() && !slices.Contains(e.Members, victimID) {
					latest = max(latest, e.T)
					break
				}
			}
		}
		if all && latest > 0 {
			return float64(latest-t0.UnixNano()) / 1e6
		}
		time.Sleep(20 * time.Millisecond)
	}
	return -1
}

// watchResume observes the fleet after SIGCONT: one view again, blocking,
// a rejoin, and identities active on two members.
func (fl *fleet) watchResume(f driverFlags, r *result, victim *proc, victimID string, theirs []string, tc time.Time) {
	end := tc.Add(f.observe)
	nextCalls := tc.Add(time.Second)
	for time.Now().Before(end) {
		if time.Now().After(nextCalls) {
			// Callers on both sides of a split reach "their" activation.
			r.TwoAnswerers = max(r.TwoAnswerers, fl.twoAnswerers(victim, fl.procs[0], theirs))
			nextCalls = time.Now().Add(3 * time.Second)
		}
		states, one := fl.oneView(fl.procs)
		if one && r.OneViewMs < 0 {
			r.OneViewMs = float64(time.Since(tc).Milliseconds())
		}
		if !one {
			r.OneViewMs = -1 // it split again: count from the last time it became one
		}
		if states != nil {
			if d := duplicates(states); d > 0 {
				r.DupMax = max(r.DupMax, d)
				r.DupUntilMs = float64(time.Since(tc).Milliseconds())
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.TwoAnswerEnd = fl.twoAnswerers(victim, fl.procs[0], theirs)
	r.TwoAnswerers = max(r.TwoAnswerers, r.TwoAnswerEnd)
	states, one := fl.oneView(fl.procs)
	r.OneViewAtEnd = one
	if states == nil {
		return
	}
	r.DupEnd = duplicates(states)
	if r.DupEnd > 0 {
		r.DupMax = max(r.DupMax, r.DupEnd)
		r.DupUntilMs = float64(time.Since(tc).Milliseconds())
	}
	var sizes []string
	for _, s := range states {
		sizes = append(sizes, fmt.Sprint(len(s.Members)))
	}
	r.Views = strings.Join(sizes, "/")
	for _, s := range states[:2] {
		if slices.Contains(s.Blocked, victimID) {
			r.OldIDBlocked = true
		}
	}
	for _, s := range states[:2] {
		if slices.Contains(states[2].Blocked, s.ID) {
			r.ItBlocks++
		}
	}
	for _, e := range states[2].Events {
		since := float64(e.T-tc.UnixNano()) / 1e6
		switch {
		case e.T < tc.UnixNano():
		case e.Kind == "removed" && r.RemovedMs < 0:
			r.RemovedMs = since
		case e.Kind == "rejoined" && r.RejoinedMs < 0:
			r.RejoinedMs = since
		}
	}
}

// twoAnswerers calls each grain through a and through b and counts those
// answered by two different members.
func (fl *fleet) twoAnswerers(a, b *proc, grains []string) int {
	n := 0
	for _, id := range grains {
		var ra, rb callResult
		q := url.Values{"id": {id}, "timeout_ms": {"500"}}
		if fl.get(a, "/call", q, &ra) != nil || fl.get(b, "/call", q, &rb) != nil {
			continue
		}
		if ra.Err == "" && rb.Err == "" && ra.By != rb.By {
			n++
		}
	}
	return n
}

// duplicates counts identities active in more than one member.
func duplicates(states []memberState) int {
	seen := make(map[string]int)
	for _, s := range states {
		for _, id := range s.Active {
			seen[id]++
		}
	}
	n := 0
	for _, c := range seen {
		if c > 1 {
			n++
		}
	}
	return n
}

// freeAddr finds a 127.0.0.1 port free for TCP and UDP (gossip uses both).
func freeAddr() (string, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr, nil
		}
	}
	return "", errors.New("no free port for TCP and UDP")
}

func printTable(results []result, pause time.Duration) {
	fmt.Println("kill -9 and SIGSTOP: the third member is signalled; times from the signal.")
	fmt.Println()
	fmt.Println("| scenario | provider | run | dropped by both others | its grains, called all along, answer again (median / max) | a grain first called after the drop answers |")
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	for _, r := range results {
		fmt.Printf("| %s | %s | %d | %s | %s / %s | %s |\n", label(r, pause), r.Provider, r.Run, ms(r.DropMs), ms(r.GrainMedianMs), ms(r.GrainMaxMs), ms(r.AfterDropMs))
	}
	fmt.Println()
	fmt.Printf("After SIGCONT (SIGSTOP for %s), watched for the -observe window; times from SIGCONT.\n", pause)
	fmt.Println()
	fmt.Println("| provider | run | one 3-member view again | views at end | old id blocked by the others | others blocked by it | paused member learns it was removed | rejoined under a new id | identities active on two members (most; last seen) | at end | grains answered by two members (most / at end) |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range results {
		if r.Scenario != "pause" {
			continue
		}
		fmt.Printf("| %s | %d | %s | %s | %v | %d | %s | %s | %d; %s | %d | %d / %d |\n", r.Provider, r.Run, ms(r.OneViewMs), r.Views, r.OldIDBlocked, r.ItBlocks,
			ms(r.RemovedMs), ms(r.RejoinedMs), r.DupMax, ms(r.DupUntilMs), r.DupEnd, r.TwoAnswerers, r.TwoAnswerEnd)
	}
}

func label(r result, pause time.Duration) string {
	if r.Scenario == "pause" {
		return "SIGSTOP " + pause.String()
	}
	return "kill -9"
}
