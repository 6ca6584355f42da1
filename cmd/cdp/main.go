// Command cdp is the customer data platform's search service: `cdp serve`
// (the HTTP API), `cdp index` (the Kafka indexer), `cdp run` (both),
// `cdp demo` (loads the demo dataset through Kafka) and `cdp export` (an
// audience to a file, stdout or a Kafka topic). `cdp index` alone
// serves /healthz and /metrics on the HTTP address.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

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

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "cdp:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	cfg := &config.Config{}
	root := &cobra.Command{
		Use:           "cdp",
		Short:         "Customer data platform search service",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return cfg.Validate()
		},
	}
	cfg.Register(root.PersistentFlags(), os.Getenv)
	root.AddCommand(
		&cobra.Command{Use: "serve", Short: "Serve the HTTP API", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), cfg, true, false) }},
		&cobra.Command{Use: "index", Short: "Run the indexer (Kafka consumer group)", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), cfg, false, true) }},
		&cobra.Command{Use: "run", Short: "Run the API and the indexer in one process", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), cfg, true, true) }},
		newDemoCmd(cfg),
		newExportCmd(cfg),
		newKeysCmd(cfg),
	)
	return root
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// run starts the API, the indexer or both, and stops them on SIGINT or
// SIGTERM: the API drains its requests, the indexer flushes and commits.
func run(parent context.Context, cfg *config.Config, serve, index bool) error {
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := newLogger(cfg.LogLevel)
	if cfg.MemoryLimitMiB > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(cfg.MemoryLimitMiB) << 20)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	st, err := store.New(cfg.OpenSearchURL)
	if err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := st.WaitReady(waitCtx); err != nil {
		return fmt.Errorf("%w (is OpenSearch running at %s? `make deps-up` starts it)", err, cfg.OpenSearchURL)
	}
	if err := st.EnsureIndices(ctx, cfg.IndexPrefix, mapping.All...); err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	if index {
		ix, err := indexer.New(cfg, st, reg, log)
		if err != nil {
			return err
		}
		defer ix.Close()
		g.Go(func() error { return ix.Run(ctx) })
	}
	var handler http.Handler
	if serve {
		rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr})
		defer rdb.Close()
		checks := []api.Check{
			{Name: "opensearch", Func: st.Ping},
			{Name: "kafka", Func: func(ctx context.Context) error { return indexer.Ping(ctx, cfg.KafkaBrokers) }},
			{Name: "redis", Func: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		}
		marker := indexer.NewMarker(cfg.KafkaBrokers, cfg.Topic(indexer.TopicDirty))
		defer marker.Close()
		co := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, log.With("component", "coord"))
		defer co.Close()
		// The API publishes definition changes: its topic is made here
		// too, for an API started before any indexer (best effort, as the
		// API starts with Kafka down).
		if err := indexer.EnsureTopics(cfg.KafkaBrokers, []string{cfg.Topic(indexer.TopicMembership)}, indexer.Partitions); err != nil {
			log.Warn("membership topic not ensured; the indexer creates it", "err", err)
		}
		members := membership.New(membership.ConfigOf(cfg), st, marker,
			prometheus.WrapRegistererWith(prometheus.Labels{"component": "api"}, reg), log.With("component", "membership"))
		defer members.Close() // before the marker it publishes with
		// The trail is closed after the HTTP server has drained (defers
		// run after g.Wait), so the batched records of the last requests
		// are written.
		trail := audit.New(audit.Config{Index: mapping.Audit.Alias(cfg.IndexPrefix)}, st, log.With("component", "audit"))
		defer trail.Close()
		opts := []api.Option{api.WithMarker(marker), api.WithCoordinator(co), api.WithMembership(members), api.WithAudit(trail)}
		if cfg.OIDCIssuer != "" {
			o, err := access.NewOIDC(ctx, access.OIDCConfig{Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience, JWKSURL: cfg.OIDCJWKSURL})
			if err != nil {
				return err
			}
			opts = append(opts, api.WithOIDC(o))
		}
		handler = api.New(cfg, st, checks, reg, reg, log, opts...)
		runner := exportjob.NewRunner(exportRunnerConfig(cfg), exportjob.NewStore(st, mapping.ExportJobs.Alias(cfg.IndexPrefix)), st, co, log.With("component", "exports"))
		g.Go(func() error { return runner.Run(ctx) })
	} else {
		// An indexer on its own still answers for its health and metrics,
		// and for profiles (the address is loopback unless set otherwise).
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		})
		handler = mux
	}
	if err := serveHTTP(ctx, g, cfg, handler, log); err != nil {
		return err
	}
	err = g.Wait()
	log.Info("stopped", "err", err)
	return err
}

// serveHTTP serves handler on the configured address until ctx ends, then
// drains it within the grace period.
func serveHTTP(ctx context.Context, g *errgroup.Group, cfg *config.Config, handler http.Handler, log *slog.Logger) error {
	// Deadlines on every connection and a bound on how many are open
	// (api.DefaultHTTPLimits): a slow or stuck client holds neither a
	// goroutine nor memory for long, whatever the number of clients.
	limits := api.DefaultHTTPLimits
	limits.MaxConns = cfg.HTTPMaxConns
	srv := api.NewHTTPServer(handler, limits)
	ln, err := api.Listen(cfg.HTTPAddr, limits)
	if err != nil {
		return err
	}
	log.Info("HTTP listening", "addr", ln.Addr().String())
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
		defer cancel()
		return srv.Shutdown(shutdown)
	})
	return nil
}

// exportRunnerConfig is the export job runner's share of cfg. Two test
// hooks slow a job down, so that a test can kill its runner mid-job:
// CDP_TEST_EXPORT_PAGE_SIZE (members per page, so per checkpoint) and
// CDP_TEST_EXPORT_PAGE_DELAY (a wait after each page, a Go duration).
func exportRunnerConfig(cfg *config.Config) exportjob.RunnerConfig {
	host, _ := os.Hostname()
	rc := exportjob.RunnerConfig{Name: host + ":" + strconv.Itoa(os.Getpid()), Customers: mapping.Customers.Alias(cfg.IndexPrefix),
		Dir: cfg.ExportDir, Brokers: cfg.KafkaBrokers, LockTTL: cfg.ExportLockTTL, Running: cfg.ExportJobsRunning}
	rc.PageSize, _ = strconv.Atoi(os.Getenv("CDP_TEST_EXPORT_PAGE_SIZE"))
	rc.PageDelay, _ = time.ParseDuration(os.Getenv("CDP_TEST_EXPORT_PAGE_DELAY"))
	return rc
}
