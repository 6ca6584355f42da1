package harness

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Service is a backing service (opensearch, kafka or redis) that a chaos
// test stops and starts, only ever through scripts/deps.sh with the
// current environment (CDP_CACHE_DIR, CDP_*_PORT), and only when deps.sh
// itself started the very instance the test's endpoints point at.
type Service struct {
	Name   string
	Port   string
	script string
	down   bool
}

var statusLine = regexp.MustCompile(`^(\S+)\s+up\s+pid (\d+)\s+port (\d+)`)

// DepsService checks that scripts/deps.sh runs the named service on the
// port of the test's endpoint, and fails the test otherwise (a service not
// started by it, or started for another port or cache directory, is never
// touched). If the test ends with the service down, it is started again.
func (e *Env) DepsService(t testing.TB, name string) *Service {
	t.Helper()
	var endpoint string
	switch name {
	case "opensearch":
		u, err := url.Parse(e.OpenSearchURL)
		if err != nil {
			t.Fatalf("CDP_OPENSEARCH_URL %q: %v", e.OpenSearchURL, err)
		}
		endpoint = u.Host
	case "kafka":
		if len(e.KafkaBrokers) != 1 {
			t.Fatalf("restarting kafka needs exactly one broker, have %v", e.KafkaBrokers)
		}
		endpoint = e.KafkaBrokers[0]
	case "redis":
		endpoint = e.RedisAddr
	default:
		t.Fatalf("unknown service %q", name)
	}
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		t.Fatalf("%s endpoint %q: %v", name, endpoint, err)
	}
	if host != "127.0.0.1" && host != "localhost" {
		t.Fatalf("%s endpoint %s is not on this machine: scripts/deps.sh cannot restart it", name, endpoint)
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Name: name, Port: port, script: filepath.Join(root, "scripts", "deps.sh")}
	out, err := s.run("status")
	if err != nil {
		t.Fatalf("scripts/deps.sh status %s: %v\n%s", name, err, out)
	}
	m := statusLine.FindStringSubmatch(strings.TrimSpace(out))
	cache := os.Getenv("CDP_CACHE_DIR")
	if cache == "" {
		cache = filepath.Join(root, ".cache")
	}
	switch {
	case m == nil:
		t.Fatalf("%s at %s was not started by scripts/deps.sh (with CDP_CACHE_DIR=%s): the chaos tests restart services only through it.\n"+
			"Start it with `scripts/deps.sh up` in this environment (set CDP_CACHE_DIR and the CDP_*_PORT variables to match the endpoints).\nstatus: %s",
			name, endpoint, cache, strings.TrimSpace(out))
	case m[3] != port:
		t.Fatalf("scripts/deps.sh (CDP_CACHE_DIR=%s) runs %s on port %s, but the test's endpoint is %s: refusing to restart a service the test does not use.\n"+
			"Set the CDP_*_PORT variables to match CDP_OPENSEARCH_URL, CDP_KAFKA_BROKERS and CDP_REDIS_ADDR.", cache, name, m[3], endpoint)
	}
	t.Cleanup(func() {
		if s.down {
			t.Logf("%s is down at the end of the test: starting it again", name)
			if out, err := s.run("up"); err != nil {
				t.Errorf("scripts/deps.sh up %s: %v\n%s", name, err, out)
			} else {
				s.down = false
			}
		}
	})
	return s
}

func (s *Service) run(cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return RunCommand(ctx, filepath.Dir(s.script), s.script, cmd, s.Name)
}

// Down stops the service with `scripts/deps.sh down <name>`.
func (s *Service) Down(t testing.TB) {
	t.Helper()
	start := time.Now()
	s.down = true
	out, err := s.run("down")
	if err != nil {
		t.Fatalf("scripts/deps.sh down %s: %v\n%s", s.Name, err, out)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+s.Port, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still answers on port %s after scripts/deps.sh down:\n%s", s.Name, s.Port, out)
	}
	t.Logf("%s down in %.1fs", s.Name, time.Since(start).Seconds())
}

// Up starts the service with `scripts/deps.sh up <name>`, which returns
// once it is healthy.
func (s *Service) Up(t testing.TB) {
	t.Helper()
	start := time.Now()
	out, err := s.run("up")
	if err != nil {
		t.Fatalf("scripts/deps.sh up %s: %v\n%s", s.Name, err, out)
	}
	s.down = false
	t.Logf("%s up and healthy in %.1fs", s.Name, time.Since(start).Seconds())
}

// String names the service and its port.
func (s *Service) String() string { return fmt.Sprintf("%s on port %s", s.Name, s.Port) }
