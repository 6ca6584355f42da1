package harness

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"cdp/api"
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
// until the test ends.
func ServeAPI(t testing.TB, cfg *config.Config) *httptest.Server {
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
	srv := httptest.NewServer(api.New(cfg, st, checks, reg, reg, Logger(), api.WithMarker(marker), api.WithCoordinator(co), api.WithMembership(members)))
	t.Cleanup(srv.Close)
	return srv
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
