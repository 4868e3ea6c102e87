package e2e

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// cpuUse is CPU time in clock ticks (1/100 s in Linux's /proc, whatever the
// kernel's own rate): the machine's busy time and each process's, so that a
// benchmark can say what one report cost and where.
type cpuUse struct {
	busy  uint64
	procs map[int]proc
}

type proc struct {
	name  string
	ticks uint64
}

// readCPU reads /proc; ok is false where there is none.
func readCPU() (u cpuUse, ok bool) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return u, false
	}
	// cpu  user nice system idle iowait irq softirq steal ...
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return u, false
	}
	for i, v := range f[1:9] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i != 3 && i != 4 { // idle, iowait
			u.busy += n
		}
	}
	u.procs = map[int]proc{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range dirs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces; fields after
		// the last ')' are fixed, utime and stime the 12th and 13th.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		rest := strings.Fields(string(b[end+1:]))
		if len(rest) < 13 {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:open])))
		ut, _ := strconv.ParseUint(rest[11], 10, 64)
		st, _ := strconv.ParseUint(rest[12], 10, 64)
		u.procs[pid] = proc{name: string(b[open+1 : end]), ticks: ut + st}
	}
	return u, true
}

// reportCPU reports the machine's busy CPU per report between before and
// after, and logs the share of each process name (processes that ended in
// between are missing from the shares, not from the total).
func reportCPU(b *testing.B, before, after cpuUse, reports int) {
	const msPerTick = 10
	b.ReportMetric(float64(after.busy-before.busy)*msPerTick/float64(reports), "cpu-ms/report")
	byName := map[string]uint64{}
	for pid, p := range after.procs {
		was := before.procs[pid]
		if was.name != p.name {
			was.ticks = 0 // a new process under a reused pid
		}
		byName[p.name] += p.ticks - was.ticks
	}
	names := make([]string, 0, len(byName))
	for n, t := range byName {
		if t > 0 {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(x, y string) int { return cmp.Compare(byName[y], byName[x]) })
	var sb strings.Builder
	for _, n := range names[:min(len(names), 12)] {
		fmt.Fprintf(&sb, " %s %.1f", n, float64(byName[n])*msPerTick/float64(reports))
	}
	b.Logf("CPU ms per report by process:%s", sb.String())
}
