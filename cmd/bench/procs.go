package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"cdp/config"
)

// proc is a `cdp` process the bench started (the indexer or the API), with
// its resident memory sampled from /proc.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string

	mu       sync.Mutex
	phase    string
	peak     map[string]int64 // phase → highest sampled VmRSS, bytes
	hwmReset bool             // clear_refs works: VmHWM is per phase
	cpu0     float64          // CPU seconds at the start of the phase
}

// startCDP starts `cdp <sub>` with cfg's settings as flags (cfg was
// filled from the CDP_* environment, so batch size, log level, … still
// come from there).
func startCDP(bin, sub string, cfg *config.Config, logPath string) (*proc, error) {
	args := append([]string{sub}, cfg.Args()...)
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a Ctrl-C of the bench reaches the bench,
	// which stops the child itself, in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start cdp %s: %w", sub, err)
	}
	p := &proc{name: sub, cmd: cmd, done: make(chan struct{}), log: logPath, peak: map[string]int64{}}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to this process (by its pid only) and waits; after
// timeout it sends SIGKILL.
func (p *proc) stop(timeout time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exitError describes an unexpected exit.
func (p *proc) exitError() error {
	if p.running() {
		return nil
	}
	return fmt.Errorf("cdp %s exited: %v (log: %s)", p.name, p.err, p.log)
}

// procStatus reads VmRSS and VmHWM (bytes) of a process.
func procStatus(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, k := range []string{"VmRSS:", "VmHWM:"} {
			if rest, ok := strings.CutPrefix(line, k); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				if k == "VmRSS:" {
					rss = kb * 1024
				} else {
					hwm = kb * 1024
				}
			}
		}
	}
	return rss, hwm, sc.Err()
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 100

// cpuSeconds is the user plus system CPU time a process has used.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from after it.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clockTick
}

// resetHWM makes VmHWM start again from the current RSS (writing 5 to
// clear_refs, Linux ≥ 4.0); it reports whether that worked.
func resetHWM(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// memory samples the RSS of the bench's processes every interval and keeps
// the peak of each phase.
type memory struct {
	procs    []*proc
	interval time.Duration
	phases   []PhaseMemory
	cur      string
	start    time.Time
	// osPid is OpenSearch's process, when scripts/deps.sh runs it here (0:
	// unknown); its CPU time per phase shows whether it was the limit.
	osPid       int
	osCPU0      float64
	busy0, all0 float64
}

// PhaseMemory is the peak resident memory of the indexer and the API
// during one phase, in MiB: the highest VmRSS sampled, and VmHWM read at
// the end of the phase (reset at its start) when the kernel allows it.
type PhaseMemory struct {
	Phase            string  `json:"phase"`
	Seconds          float64 `json:"seconds"`
	IndexerRSSMiB    float64 `json:"indexer_peak_rss_mib"`
	APIRSSMiB        float64 `json:"api_peak_rss_mib"`
	IndexerHWMMiB    float64 `json:"indexer_vmhwm_mib,omitempty"`
	APIHWMMiB        float64 `json:"api_vmhwm_mib,omitempty"`
	HWMIsPhasePeak   bool    `json:"vmhwm_is_phase_peak"`
	IndexerAtEndMiB  float64 `json:"indexer_rss_at_end_mib"`
	APIAtEndMiB      float64 `json:"api_rss_at_end_mib"`
	SamplesPerSecond float64 `json:"samples_per_second"`
	// CPU seconds (user + system) each process used during the phase, and
	// how busy the whole machine was (other work on it included).
	IndexerCPU     float64 `json:"indexer_cpu_seconds"`
	APICPU         float64 `json:"api_cpu_seconds"`
	OpenSearchCPU  float64 `json:"opensearch_cpu_seconds"`
	MachineBusyPct float64 `json:"machine_cpu_busy_percent"`
}

// machineCPU reads the busy and total jiffies of all CPUs from /proc/stat.
func machineCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0
	}
	for i, x := range f[1:] {
		v, _ := strconv.ParseFloat(x, 64)
		total += v
		if i != 3 && i != 4 { // idle and iowait
			busy += v
		}
	}
	return busy, total
}

// openSearchPid finds the OpenSearch process scripts/deps.sh started, if
// it serves url.
func openSearchPid(url string) int {
	port := os.Getenv("CDP_OPENSEARCH_PORT")
	if port == "" {
		port = "9200"
	}
	if !strings.HasSuffix(strings.TrimRight(url, "/"), ":"+port) {
		return 0
	}
	cache := os.Getenv("CDP_CACHE_DIR")
	if cache == "" {
		cache = ".cache"
	}
	b, err := os.ReadFile(cache + "/run/opensearch/pid")
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil || !strings.Contains(string(cmd), "org.opensearch.bootstrap.OpenSearch") {
		return 0
	}
	return pid
}

func mib(b int64) float64 { return round2(float64(b) / (1 << 20)) }

// run samples until ctx ends.
func (m *memory) run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, p := range m.procs {
				p.sample()
			}
		}
	}
}

func (p *proc) sample() {
	if !p.running() {
		return
	}
	rss, _, err := procStatus(p.pid())
	if err != nil {
		return
	}
	p.mu.Lock()
	if rss > p.peak[p.phase] {
		p.peak[p.phase] = rss
	}
	p.mu.Unlock()
}

// begin starts a phase: the peaks start from the current RSS.
func (m *memory) begin(phase string) {
	m.cur, m.start = phase, time.Now()
	m.busy0, m.all0 = machineCPU()
	if m.osPid > 0 {
		m.osCPU0 = cpuSeconds(m.osPid)
	}
	for _, p := range m.procs {
		p.mu.Lock()
		p.phase = phase
		p.hwmReset = p.running() && resetHWM(p.pid())
		p.cpu0 = cpuSeconds(p.pid())
		p.mu.Unlock()
		p.sample()
	}
}

// end closes the current phase and records its peaks.
func (m *memory) end() PhaseMemory {
	pm := PhaseMemory{Phase: m.cur, Seconds: round2(time.Since(m.start).Seconds()), HWMIsPhasePeak: true,
		SamplesPerSecond: round2(float64(time.Second) / float64(m.interval))}
	if busy, all := machineCPU(); all > m.all0 {
		pm.MachineBusyPct = round2(100 * (busy - m.busy0) / (all - m.all0))
	}
	if m.osPid > 0 {
		pm.OpenSearchCPU = round2(cpuSeconds(m.osPid) - m.osCPU0)
	}
	for _, p := range m.procs {
		p.sample()
		rss, hwm, _ := procStatus(p.pid())
		p.mu.Lock()
		peak, reset := p.peak[m.cur], p.hwmReset
		cpu := round2(cpuSeconds(p.pid()) - p.cpu0)
		p.mu.Unlock()
		if !reset {
			pm.HWMIsPhasePeak = false
		}
		switch p.name {
		case "index":
			pm.IndexerRSSMiB, pm.IndexerHWMMiB, pm.IndexerAtEndMiB, pm.IndexerCPU = mib(peak), mib(hwm), mib(rss), max(cpu, 0)
		case "serve":
			pm.APIRSSMiB, pm.APIHWMMiB, pm.APIAtEndMiB, pm.APICPU = mib(peak), mib(hwm), mib(rss), max(cpu, 0)
		}
	}
	m.phases = append(m.phases, pm)
	return pm
}

// peakOf is the highest peak (the larger of sampled RSS and a per-phase
// VmHWM) of the named process over every phase.
func peakOf(phases []PhaseMemory, name string) float64 {
	var out float64
	for _, p := range phases {
		v := p.IndexerRSSMiB
		h := p.IndexerHWMMiB
		if name == "serve" {
			v, h = p.APIRSSMiB, p.APIHWMMiB
		}
		if p.HWMIsPhasePeak && h > v {
			v = h
		}
		out = max(out, v)
	}
	return out
}

// freePort asks the kernel for a free TCP port on the loopback.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, url string, p *proc) error {
	for {
		if err := p.exitError(); err != nil {
			return err
		}
		req, _ := httpNewGet(ctx, url)
		if resp, err := httpClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("timed out waiting for " + url)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
