package harness

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"cdp/access"
	"cdp/api"
	"cdp/audit"
	"cdp/config"
	"cdp/coord"
	"cdp/exportjob"
	"cdp/indexer"
	"cdp/mapping"
	"cdp/membership"
	"cdp/store"
)

// Logger is the logger the harness gives the service: warnings and errors
// only, so test output stays readable.
func Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Bootstrap creates the service's indices for cfg.
func (e *Env) Bootstrap(t testing.TB, cfg *config.Config) {
	t.Helper()
	if err := e.Store(t).EnsureIndices(context.Background(), cfg.IndexPrefix, mapping.All...); err != nil {
		t.Fatal(err)
	}
}

// StartIndexer runs an indexer in this process until the test ends, and
// returns the registry of its metrics (read them with Counter).
func (e *Env) StartIndexer(t testing.TB, cfg *config.Config) *prometheus.Registry {
	t.Helper()
	e.Bootstrap(t, cfg)
	reg := prometheus.NewRegistry()
	ix, err := indexer.New(cfg, e.Store(t), reg, Logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("indexer: %v", err)
		}
		ix.Close()
	})
	return reg
}

// Counter sums the samples of the named counter whose labels include the
// given name-value pairs (none: every sample), 0 when there are none.
func Counter(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return sumSamples(families, name, labels...)
}

// sumSamples sums the samples of the named metric whose labels include
// the name-value pairs: a counter's or gauge's value, or, for name X_count,
// the count of histogram X.
func sumSamples(families []*dto.MetricFamily, name string, labels ...string) float64 {
	var sum float64
	for _, f := range families {
		count := f.GetName()+"_count" == name && f.GetType() == dto.MetricType_HISTOGRAM
		if f.GetName() != name && !count {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			switch {
			case count:
				sum += float64(m.GetHistogram().GetSampleCount())
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Untyped != nil:
				sum += m.GetUntyped().GetValue()
			default:
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// StartAPI creates the indices for cfg and serves the API until the test
// ends.
func (e *Env) StartAPI(t testing.TB, cfg *config.Config) *httptest.Server {
	t.Helper()
	e.Bootstrap(t, cfg)
	return ServeAPI(t, cfg)
}

// ServeAPI serves the API for cfg as it is (its services may be down)
// until the test ends, as to an admin: a request that carries no
// Authorization header gets the one of AdminKey(cfg). The middleware
// verifies that key as any other; tests of access itself use ServeAccess.
func ServeAPI(t testing.TB, cfg *config.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(AsAdmin(t, cfg, serveAPI(t, cfg)))
	t.Cleanup(srv.Close)
	return srv
}

// AsAdmin wraps an API handler of cfg so that a request without an
// Authorization header carries the one of AdminKey(cfg).
func AsAdmin(t testing.TB, cfg *config.Config, h http.Handler) http.Handler {
	t.Helper()
	key := AdminKey(t, cfg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		h.ServeHTTP(w, r)
	})
}

// ServeAccess serves the API for cfg until the test ends with no key
// added to requests; opts are added to the API's (WithOIDC, say).
func ServeAccess(t testing.TB, cfg *config.Config, opts ...api.Option) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(serveAPI(t, cfg, opts...))
	t.Cleanup(srv.Close)
	return srv
}

var adminKeys struct {
	sync.Mutex
	m map[string]string
}

// AdminKey returns a token of an admin API key of cfg's deployment (its
// index prefix and OpenSearch), made once per deployment, with the keys'
// index created when missing. When OpenSearch cannot be reached the key
// cannot be stored: the token returned then is well formed but stored
// nowhere, so requests reach the point where the service needs
// OpenSearch (and answer 503) rather than stopping at a 401.
func AdminKey(t testing.TB, cfg *config.Config) string {
	t.Helper()
	id := cfg.OpenSearchURL + "|" + cfg.IndexPrefix
	adminKeys.Lock()
	defer adminKeys.Unlock()
	if k, ok := adminKeys.m[id]; ok {
		return k
	}
	k, err := MakeKey(cfg, "test-admin", "admin")
	if err != nil {
		t.Logf("harness: no admin key for %s (%v): using one stored nowhere", cfg.IndexPrefix, err)
		return "cdpk_0000000000000000_unstored"
	}
	if adminKeys.m == nil {
		adminKeys.m = map[string]string{}
	}
	adminKeys.m[id] = k
	return k
}

// MakeKey creates an API key of the role in cfg's deployment (creating
// the keys' index when missing) and returns its token.
func MakeKey(cfg *config.Config, name, role string) (string, error) {
	st, err := store.New(cfg.OpenSearchURL)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := st.EnsureIndices(ctx, cfg.IndexPrefix, mapping.APIKeys); err != nil {
		return "", err
	}
	_, token, err := access.NewKeys(st, mapping.APIKeys.Alias(cfg.IndexPrefix)).Create(ctx, name, role)
	return token, err
}

// serveAPI returns the API's handler for cfg, with its audit trail
// flushed and closed when the test ends.
func serveAPI(t testing.TB, cfg *config.Config, opts ...api.Option) http.Handler {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr})
	t.Cleanup(func() { rdb.Close() })
	st, err := store.New(cfg.OpenSearchURL)
	if err != nil {
		t.Fatal(err)
	}
	checks := []api.Check{
		{Name: "opensearch", Func: st.Ping},
		{Name: "kafka", Func: func(ctx context.Context) error { return indexer.Ping(ctx, cfg.KafkaBrokers) }},
		{Name: "redis", Func: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
	}
	reg := prometheus.NewRegistry()
	marker := indexer.NewMarker(cfg.KafkaBrokers, cfg.Topic(indexer.TopicDirty))
	t.Cleanup(func() { marker.Close() })
	co := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, Logger())
	t.Cleanup(func() { co.Close() })
	members := membership.New(membership.ConfigOf(cfg), st, marker, reg, Logger())
	t.Cleanup(func() { members.Close() }) // before the marker it publishes with
	trail := audit.New(audit.Config{Index: mapping.Audit.Alias(cfg.IndexPrefix), FlushEvery: 200 * time.Millisecond}, st, Logger())
	t.Cleanup(trail.Close) // runs after the server closes (cleanups run last first)
	opts = append([]api.Option{api.WithMarker(marker), api.WithCoordinator(co), api.WithMembership(members), api.WithAudit(trail)}, opts...)
	return api.New(cfg, st, checks, reg, reg, Logger(), opts...)
}

// StartExportRunner runs an export job runner for cfg in this process
// until the test ends, as `cdp serve` runs one; tune adjusts its
// configuration (page size, a delay after each page).
func (e *Env) StartExportRunner(t testing.TB, cfg *config.Config, name string, tune func(*exportjob.RunnerConfig)) {
	t.Helper()
	st := e.Store(t)
	co := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, Logger())
	rc := exportjob.RunnerConfig{Name: name, Customers: mapping.Customers.Alias(cfg.IndexPrefix), Dir: cfg.ExportDir,
		Brokers: cfg.KafkaBrokers, LockTTL: cfg.ExportLockTTL, Running: cfg.ExportJobsRunning, Poll: 200 * time.Millisecond}
	if tune != nil {
		tune(&rc)
	}
	r := exportjob.NewRunner(rc, exportjob.NewStore(st, mapping.ExportJobs.Alias(cfg.IndexPrefix)), st, co, Logger().With("runner", name))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("export runner %s: %v", name, err)
		}
		co.Close()
	})
}
