package harness

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Process and machine figures from /proc. With the in-process node the
// load generator runs in the same process as the gateway it drives, so
// every process figure includes both; a gateway started from its binary
// (--gateway-bin) is measured alone, from /proc/<pid>.

// clockTicks is USER_HZ, the unit of /proc/self/stat's times: 100 on every
// Linux build Go supports.
const clockTicks = 100

// proc names the process whose figures are read from /proc/<proc>: "self"
// (this process: the in-process node) or a PID (a gateway started as a
// subprocess, or any process given with --pid); or several PIDs,
// comma-separated, whose figures are summed (Kannel's two processes).
type proc string

const self proc = "self"

// each calls f with each process p names.
func (p proc) each(f func(one string)) {
	for one := range strings.SplitSeq(string(p), ",") {
		f(one)
	}
}

// validPIDs reports whether s is empty or PIDs separated by commas.
func validPIDs(s string) bool {
	if s == "" {
		return true
	}
	for one := range strings.SplitSeq(s, ",") {
		if n, err := strconv.Atoi(one); err != nil || n <= 0 {
			return false
		}
	}
	return true
}

// pidsWho says what --pid's figures are.
func pidsWho(s string) string {
	if strings.Contains(s, ",") {
		return "pids " + s + " together"
	}
	return "pid " + s
}

// statusKB reads one "Name:   123 kB" line of /proc/<p>/status, in KiB
// (summed over p's processes); -1 if it cannot.
func (p proc) statusKB(name string) int64 {
	var sum int64
	ok := true
	p.each(func(one string) {
		v := statusKBOf(one, name)
		ok = ok && v >= 0
		sum += v
	})
	if !ok {
		return -1
	}
	return sum
}

func statusKBOf(pid, name string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return -1
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte(name+":")); ok {
			f := bytes.Fields(rest)
			if len(f) == 0 {
				return -1
			}
			v, err := strconv.ParseInt(string(f[0]), 10, 64)
			if err != nil {
				return -1
			}
			return v
		}
	}
	return -1
}

// resetPeak makes p's VmHWM start again from its current RSS (Linux 4.0+),
// so a phase's peak can be told from an earlier one's. Writing another
// process's clear_refs needs the rights over it that its parent, of the
// same user, has. It reports whether the kernel took it for every process.
func (p proc) resetPeak() bool {
	ok := true
	p.each(func(one string) {
		ok = os.WriteFile("/proc/"+one+"/clear_refs", []byte("5"), 0) == nil && ok
	})
	return ok
}

// rssMB is p's resident set now (VmRSS), in MiB.
func (p proc) rssMB() float64 { return float64(p.statusKB("VmRSS")) / 1024 }

// hwmMB is p's peak resident set (VmHWM), in MiB, since start or the last
// p.resetPeak().
func (p proc) hwmMB() float64 { return float64(p.statusKB("VmHWM")) / 1024 }

// cpuTime is p's user+system CPU time (/proc/<p>/stat utime + stime), all
// threads, summed over p's processes.
func (p proc) cpuTime() time.Duration {
	var sum time.Duration
	p.each(func(one string) { sum += cpuTimeOf(one) })
	return sum
}

func cpuTimeOf(pid string) time.Duration {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces and parentheses; fields resume
	// after the last ')'. Field 3 (state) is then index 0, so utime (14)
	// and stime (15) are indexes 11 and 12.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * time.Second / clockTicks
}

// machineCPU is the first line of /proc/stat: busy and total jiffies of
// all cores, for telling this process's CPU from everyone else's.
type machineCPU struct{ busy, total uint64 }

func readMachineCPU() machineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return machineCPU{}
	}
	var m machineCPU
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		m.total += v
		// user nice system idle iowait irq softirq steal guest guest_nice:
		// idle (3) and iowait (4) are not busy; guest time is already in
		// user, so it is not counted twice.
		if i != 3 && i != 4 && i < 8 {
			m.busy += v
		}
	}
	if len(f) > 9 {
		g, _ := strconv.ParseUint(f[9], 10, 64)
		m.total -= g
		if len(f) > 10 {
			gn, _ := strconv.ParseUint(f[10], 10, 64)
			m.total -= gn
		}
	}
	return m
}

// cores is how many cores were busy, on average, between a and b.
func (a machineCPU) cores(b machineCPU, elapsed time.Duration) float64 {
	if b.total <= a.total || elapsed <= 0 {
		return 0
	}
	return float64(b.busy-a.busy) / clockTicks / elapsed.Seconds()
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuModel is /proc/cpuinfo's first "model name".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("model name")); ok {
			_, v, _ := bytes.Cut(rest, []byte(":"))
			return strings.TrimSpace(string(v))
		}
	}
	return "?"
}

// usage samples the process's CPU and the machine's at one moment.
type usage struct {
	at      time.Time
	cpu     time.Duration
	machine machineCPU
}

// sample reads p's CPU time and the machine's now.
func (p proc) sample() usage {
	return usage{at: time.Now(), cpu: p.cpuTime(), machine: readMachineCPU()}
}

// since describes the CPU used from u to now: this process's cores, and
// the whole machine's.
func (u usage) since(v usage) (proc, machine float64) {
	el := v.at.Sub(u.at)
	if el <= 0 {
		return 0, 0
	}
	return (v.cpu - u.cpu).Seconds() / el.Seconds(), u.machine.cores(v.machine, el)
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
	default:
		return d.Round(10 * time.Millisecond).String()
	}
}

func fmtUS(us int64) string { return fmtDur(time.Duration(us) * time.Microsecond) }

// memTotalMB is /proc/meminfo's MemTotal, in MiB.
func memTotalMB() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("MemTotal:")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseFloat(string(f[0]), 64)
				return v / 1024
			}
		}
	}
	return 0
}
