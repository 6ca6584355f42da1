package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"cdp/config"
)

// ModuleRoot is the directory of the cdp module (where go.mod is).
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the cdp module")
	}
	return filepath.Dir(mod), nil
}

var binary struct {
	once      sync.Once
	dir, path string
	err       error
}

// CDPBinary builds cmd/cdp once per test binary and returns its path. With
// CDP_TEST_BINARY_RACE=1 it is built with -race (several times slower).
// Call RemoveBinaries from TestMain to delete it.
func CDPBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			binary.err = err
			return
		}
		if binary.dir, err = os.MkdirTemp("", "cdp-test-bin-"); err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(binary.dir, "cdp")
		args := []string{"build", "-o", binary.path}
		if os.Getenv("CDP_TEST_BINARY_RACE") == "1" {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/cdp")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build ./cmd/cdp: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// RemoveBinaries deletes what CDPBinary built.
func RemoveBinaries() {
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
}

// Process is a `cdp index` process of the test's own.
type Process struct {
	Name    string
	Started time.Time
	LogPath string
	// Key is an admin API key of the process's deployment (serve and run
	// only); Authorize adds it to requests.
	Key string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartIndexerProcess starts `cdp index` for cfg (every setting passed as
// a flag, so the environment cannot redirect it), logging at info level to
// a file of the test's. env adds variables ("NAME=value") to the
// process's environment, such as a test hook of the indexer's. The process
// is stopped when the test ends, and the end of its log shown if the test
// failed.
func (e *Env) StartIndexerProcess(t testing.TB, cfg *config.Config, name string, env ...string) *Process {
	t.Helper()
	return e.StartProcess(t, cfg, "index", name, env...)
}

// StartServeProcess starts `cdp serve` for cfg as StartIndexerProcess
// starts `cdp index`; its address is the one it logs (Addr).
func (e *Env) StartServeProcess(t testing.TB, cfg *config.Config, name string, env ...string) *Process {
	t.Helper()
	return e.StartProcess(t, cfg, "serve", name, env...)
}

// StartProcess starts the cdp subcommand for cfg, as
// StartIndexerProcess says.
func (e *Env) StartProcess(t testing.TB, cfg *config.Config, subcommand, name string, env ...string) *Process {
	t.Helper()
	bin := CDPBinary(t)
	log, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{subcommand}, cfg.Args()...)
	cmd := exec.Command(bin, append(args, "--log-level", "info")...)
	cmd.Stdout, cmd.Stderr = log, log
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	p := &Process{Name: name, LogPath: log.Name(), cmd: cmd, done: make(chan struct{})}
	if subcommand == "serve" || subcommand == "run" {
		p.Key = AdminKey(t, cfg)
	}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.Running() {
			p.terminate(15 * time.Second)
		}
		if t.Failed() {
			t.Logf("last lines of %s's log (%s):\n%s", name, p.LogPath, p.LogTail(15))
		}
	})
	return p
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ExitError is how the process ended (nil while it runs or after a clean
// exit).
func (p *Process) ExitError() error {
	if p.Running() {
		return nil
	}
	return p.err
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if !p.Running() {
		t.Fatalf("%s exited before it could be killed: %v", p.Name, p.err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s: %v", p.Name, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s (pid %d) still alive 10s after SIGKILL", p.Name, p.Pid())
	}
}

// Stop sends SIGTERM and waits up to timeout, then kills.
func (p *Process) Stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	if !p.terminate(timeout) {
		t.Errorf("%s did not stop within %s of SIGTERM: killed", p.Name, timeout)
	}
}

func (p *Process) terminate(timeout time.Duration) (clean bool) {
	if !p.Running() {
		return true
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a stopped process acts on SIGTERM only once continued
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		return false
	}
}

// Stopped reports whether the process is stopped (by SIGSTOP), as
// /proc tells (Linux only: false elsewhere).
func (p *Process) Stopped() bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return false
	}
	// "pid (comm) state …": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'T' || stat[i+2] == 't')
}

// Continue sends SIGCONT to a stopped process.
func (p *Process) Continue(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("kill -CONT %s: %v", p.Name, err)
	}
}

// Metric sums the samples of the named metric on the process's /metrics
// whose labels include the given name-value pairs (a histogram's count is
// its name with _count). The address is the one the process logged.
func (p *Process) Metric(name string, labels ...string) (float64, error) {
	addr := p.httpAddr()
	if addr == "" {
		return 0, fmt.Errorf("%s has not logged its HTTP address yet", p.Name)
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	families, err := parseMetrics(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("%s /metrics: %w", p.Name, err)
	}
	return sumSamples(families, name, labels...), nil
}

// parseMetrics reads Prometheus's text format, as /metrics serves it.
func parseMetrics(r io.Reader) ([]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	families := make([]*dto.MetricFamily, 0, len(byName))
	for _, f := range byName {
		families = append(families, f)
	}
	return families, nil
}

// Addr is the address of the process's HTTP server, from its log ("" until
// it has logged it).
func (p *Process) Addr() string {
	addr := p.httpAddr()
	if addr != "" && p.Key != "" {
		processKeys.Store(addr, p.Key)
	}
	return addr
}

// processKeys holds the admin key of each process address handed out.
var processKeys sync.Map

// Authorize gives req the Authorization header of the admin key of the
// process it goes to (one whose Addr was asked), when it has none.
func Authorize(req *http.Request) {
	if req.Header.Get("Authorization") != "" {
		return
	}
	if k, ok := processKeys.Load(req.URL.Host); ok {
		req.Header.Set("Authorization", "Bearer "+k.(string))
	}
}

// httpAddr is the address of the process's HTTP server, from its log.
func (p *Process) httpAddr() string {
	sc := bufio.NewScanner(strings.NewReader(p.Log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "HTTP listening" {
			return line.Addr
		}
	}
	return ""
}

// Log returns the process's log so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// LogTail returns the last n lines of the log, each cut to 300 bytes.
func (p *Process) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + "…"
		}
	}
	return strings.Join(lines, "\n")
}

// LogCount counts the log lines containing s.
func (p *Process) LogCount(s string) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader([]byte(p.Log())))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

// WaitLog waits until the log has a line containing s, failing the test
// if the process exits first.
func (p *Process) WaitLog(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() (bool, string) {
		if !p.Running() {
			t.Fatalf("%s exited (%v) before logging %q:\n%s", p.Name, p.err, s, p.LogTail(30))
		}
		return p.LogCount(s) > 0, fmt.Sprintf("%s has not logged %q yet", p.Name, s)
	})
}

// RunCommand runs a command with a timeout and returns its combined output.
func RunCommand(ctx context.Context, dir string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}
