// Command bench measures the service against OpenSearch's own limit, side
// by side in one run: indexing (Kafka → `cdp index` vs raw _bulk of the
// same final documents), event-to-searchable freshness under load, filter
// queries and 360 lookups through the API vs the same requests sent
// directly, export through cursor paging vs a raw point-in-time loop, and
// the peak memory of the indexer and API processes. It writes
// out/bench-<timestamp>.json and docs/benchmarks.md and prints one summary
// line per metric. `make bench` and `make bench-quick` run it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/pflag"

	"cdp/config"
	"cdp/indexer"
	"cdp/mapping"
)

type options struct {
	customers         int
	seed              uint64
	eventsPerCustomer float64
	bin, outDir, md   string
	command           string
	keep              bool

	bulkWorkers, bulkDocs int

	query        queryTuning
	lookupSample int
	exportRounds int

	freshDur     time.Duration
	markerRate   float64
	pollInterval time.Duration
	freshTimeout time.Duration
	loadFraction float64
	rssInterval  time.Duration
	render       string
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(strings.ReplaceAll(os.Getenv(name), "_", "")); err == nil && v > 0 {
		return v
	}
	return def
}

func parseFlags() options {
	var o options
	flag.IntVar(&o.customers, "customers", envInt("BENCH_CUSTOMERS", 100000), "CRM customers to generate (env BENCH_CUSTOMERS)")
	flag.Uint64Var(&o.seed, "seed", 1, "dataset seed")
	flag.Float64Var(&o.eventsPerCustomer, "events-per-customer", 10, "SDK events per customer (the dataset's own are topped up)")
	flag.StringVar(&o.bin, "bin", "bin/cdp", "the cdp binary (make build builds it)")
	flag.StringVar(&o.outDir, "out", "out", "directory of the JSON results and the process logs")
	flag.StringVar(&o.md, "md", "docs/benchmarks.md", "Markdown file to overwrite with the results (empty: none)")
	flag.StringVar(&o.command, "command", "", "how the run was started, for the report (default: the command line)")
	flag.BoolVar(&o.keep, "keep", false, "keep the run's indices, topics and consumer group")
	flag.IntVar(&o.bulkWorkers, "bulk-workers", 4, "concurrent _bulk requests of the raw indexing baseline")
	flag.IntVar(&o.bulkDocs, "bulk-docs", 1000, "documents per _bulk request of the raw indexing baseline")
	flag.Float64Var(&o.query.Util, "query-util", 0.5, "offered load of the latency phases, as the utilization of one server")
	flag.Float64Var(&o.query.MaxRate, "query-max-rate", 100, "highest request rate per target (requests/s)")
	flag.DurationVar(&o.query.Duration, "query-duration", 5*time.Second, "measuring time per query shape and condition, and for the 360 lookups")
	flag.IntVar(&o.query.MinN, "query-min-n", 100, "fewest requests per target (overrides -query-duration)")
	flag.IntVar(&o.query.MaxN, "query-max-n", 2000, "most requests per target")
	flag.IntVar(&o.lookupSample, "lookup-sample", 1000, "customers to look up")
	flag.IntVar(&o.exportRounds, "export-rounds", 2, "export rounds (API then raw); the best of each counts")
	flag.DurationVar(&o.freshDur, "fresh-duration", 30*time.Second, "how long markers are produced")
	flag.Float64Var(&o.markerRate, "marker-rate", 10, "marker events per second")
	flag.DurationVar(&o.pollInterval, "poll-interval", 25*time.Millisecond, "how often the markers are searched for")
	flag.DurationVar(&o.freshTimeout, "fresh-timeout", 15*time.Second, "a marker not searchable after this is lost")
	flag.Float64Var(&o.loadFraction, "load-fraction", 0.5, "background load as a fraction of the indexer's measured maximum")
	flag.DurationVar(&o.rssInterval, "rss-interval", 100*time.Millisecond, "how often VmRSS is sampled")
	flag.StringVar(&o.render, "render", "", "only rewrite the Markdown (-md) from the JSON results of an earlier run, and print its summary")
	flag.Parse()
	if o.command == "" {
		o.command = strings.Join(os.Args, " ")
	}
	return o
}

func main() {
	o := parseFlags()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.render != "" {
		if err := render(o); err != nil {
			log.Error("render failed", "err", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, o, log); err != nil {
		log.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

func unique() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// benchConfig is the service configuration from the CDP_* environment,
// with names of the run's own.
func benchConfig(runID string) (*config.Config, error) {
	cfg := &config.Config{}
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	cfg.Register(fs, os.Getenv)
	cfg.IndexPrefix = "bench-" + runID
	cfg.TopicPrefix = "bench-" + runID + "."
	cfg.ConsumerGroup = "bench-" + runID + "-indexer"
	return cfg, cfg.Validate()
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	started := time.Now()
	runID := unique()
	cfg, err := benchConfig(runID)
	if err != nil {
		return err
	}
	if _, err := os.Stat(o.bin); err != nil {
		return fmt.Errorf("%s: %w (run `make build`)", o.bin, err)
	}
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	stamp := started.UTC().Format("20060102-150405")
	base := filepath.Join(o.outDir, "bench-"+stamp)
	osURL := endpoint(strings.TrimRight(cfg.OpenSearchURL, "/"))
	customers, events := mapping.Customers.Alias(cfg.IndexPrefix), mapping.Events.Alias(cfg.IndexPrefix)
	rawIndex := cfg.IndexPrefix + "-rawbulk"
	logf := func(s string) { log.Info(s) }

	rep := &Report{Command: o.command, Started: started.UTC().Format(time.RFC3339), Settings: Settings{
		Customers: o.customers, Seed: o.seed, EventsPerCustomer: o.eventsPerCustomer, Prefix: cfg.IndexPrefix,
		BatchSize: strconv.Itoa(cfg.BatchSize), BatchWait: cfg.BatchWait.String(),
		QueryUtil: o.query.Util, QueryMaxRate: o.query.MaxRate, QuerySeconds: o.query.Duration.Seconds(),
		FreshSeconds: o.freshDur.Seconds(), LoadFraction: o.loadFraction,
	}}
	rep.Machine = machineInfo(ctx, osURL)
	if rep.Machine.OpenSearchVersion == "" {
		return fmt.Errorf("OpenSearch does not answer at %s (`make deps-up` starts it)", osURL)
	}
	log.Info("bench run", "id", runID, "customers", o.customers, "prefix", cfg.IndexPrefix, "opensearch", rep.Machine.OpenSearchVersion,
		"kafka", rep.Machine.KafkaVersion, "nproc", rep.Machine.NProc)

	defer cleanup(cfg, osURL, rawIndex, o.keep, log)

	// ---- data
	topics := make([]string, len(indexer.AllTopics))
	for i, t := range indexer.AllTopics {
		topics[i] = cfg.Topic(t)
	}
	if err := indexer.EnsureTopics(cfg.KafkaBrokers, topics, indexer.Partitions); err != nil {
		return err
	}
	log.Info("phase 0/7: generating the dataset and producing it to Kafka", "chunk_customers", chunkCustomers)
	w, pd, err := generateAndProduce(ctx, cfg, o.seed, o.customers, o.eventsPerCustomer, time.Now(), logf)
	if err != nil {
		return err
	}
	rep.Dataset = DatasetInfo{Customers: w.stats.Customers, SDKOnlyUsers: w.stats.SDKOnlyUsers, AnonymousDevices: w.stats.AnonymousDevices,
		Orders: w.stats.Orders, Items: w.stats.Items, CDCMessages: w.stats.CDCMessages, EventMessages: w.stats.EventMessages,
		ExtraEvents: w.extraEvents, Messages: w.messages, Summary: w.stats.String()}
	log.Info("dataset", "messages", w.messages, "summary", w.stats.String(), "extra_events", w.extraEvents)
	ix := &rep.Indexing
	ix.Changes, ix.ProduceSeconds = w.messages, round2(pd.Seconds())
	ix.ExpectedCustomerDocs, ix.ExpectedEventDocs = w.expectedCustomers, w.expectedEvents
	live, msgsPerCustomer := w.live, float64(w.messages)/float64(max(1, o.customers))
	w = nil
	log.Info("produced", "seconds", ix.ProduceSeconds, "per_sec", int(float64(ix.Changes)/pd.Seconds()))

	// ---- processes
	apiCfg := *cfg
	if apiCfg.HTTPAddr, err = freePort(); err != nil {
		return err
	}
	api, err := startCDP(o.bin, "serve", &apiCfg, base+"-api.log")
	if err != nil {
		return err
	}
	defer api.stop(30 * time.Second)
	apiURL := endpoint("http://" + apiCfg.HTTPAddr)
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = waitHTTP(waitCtx, string(apiURL)+"/healthz", api)
	cancel()
	if err != nil {
		return err
	}

	// ---- 1. indexing
	log.Info("phase 1/7: indexing through Kafka and `cdp index`", "changes", ix.Changes)
	ixCfg := *cfg
	if ixCfg.HTTPAddr, err = freePort(); err != nil {
		return err
	}
	procStart := time.Now()
	idx, err := startCDP(o.bin, "index", &ixCfg, base+"-indexer.log")
	if err != nil {
		return err
	}
	defer idx.stop(30 * time.Second)
	ix.IndexerLogPath = idx.log
	mem := &memory{procs: []*proc{idx, api}, interval: o.rssInterval, osPid: openSearchPid(cfg.OpenSearchURL)}
	memCtx, stopMem := context.WithCancel(ctx)
	defer stopMem()
	mem.begin("indexing")
	go mem.run(memCtx)
	stableCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	err = groupStable(stableCtx, cfg, idx)
	cancel()
	if err != nil {
		return err
	}
	t0 := time.Now()
	ix.IndexerStartupSeconds = round2(t0.Sub(procStart).Seconds())
	t1, err := waitIdle(ctx, cfg, idx, ix.Changes, log, "indexing")
	if err != nil {
		return err
	}
	mem.end()
	ix.IndexerSeconds = round3(t1.Sub(t0).Seconds())
	if ix.CustomerDocs, err = countDocs(ctx, osURL, customers); err != nil {
		return err
	}
	if ix.EventDocs, err = countDocs(ctx, osURL, events); err != nil {
		return err
	}
	ix.DeadLettered = topicEnd(cfg, cfg.Topic(indexer.TopicDLQ))
	ix.IndexerDocsMatchExpect = ix.CustomerDocs == int64(ix.ExpectedCustomerDocs)
	if !ix.IndexerDocsMatchExpect {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the indexer built %d customer documents where the reference model expects %d", ix.CustomerDocs, ix.ExpectedCustomerDocs))
		log.Warn("customer document count differs from the reference model", "got", ix.CustomerDocs, "want", ix.ExpectedCustomerDocs)
	}
	ix.IndexerCustomerDocsSec = round2(float64(ix.CustomerDocs) / ix.IndexerSeconds)
	ix.IndexerChangesSec = round2(float64(ix.Changes) / ix.IndexerSeconds)
	log.Info("indexer done", "seconds", ix.IndexerSeconds, "customer_docs", ix.CustomerDocs, "event_docs", ix.EventDocs,
		"customer_docs_per_sec", ix.IndexerCustomerDocsSec, "changes_per_sec", ix.IndexerChangesSec)

	// ---- 1b. raw _bulk
	log.Info("phase 2/7: raw _bulk of the same final documents")
	mem.begin("raw-bulk")
	sp, nDocs, err := readBack(ctx, osURL, mapping.Customers.Physical(cfg.IndexPrefix), o.bulkDocs, o.outDir)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	defer sp.close()
	nBytes := sp.size
	if ix.RefreshInterval, err = createRawIndex(ctx, osURL, mapping.Customers.Physical(cfg.IndexPrefix), rawIndex); err != nil {
		return fmt.Errorf("create %s: %w", rawIndex, err)
	}
	rd, err := rawBulk(ctx, osURL, rawIndex, sp, o.bulkWorkers)
	sp.close()
	if err != nil {
		return fmt.Errorf("raw bulk: %w", err)
	}
	ix.RawIndex, ix.RawDocs, ix.RawBytes, ix.RawWorkers, ix.RawBatchDocs = rawIndex, nDocs, nBytes, o.bulkWorkers, o.bulkDocs
	ix.RawSeconds = round3(rd.Seconds())
	if n, err := countDocs(ctx, osURL, rawIndex); err != nil || n != int64(nDocs) {
		return fmt.Errorf("raw index holds %d documents of %d (%v)", n, nDocs, err)
	}
	_, _ = osURL.do(ctx, http.MethodDelete, "/"+rawIndex, nil)
	mem.end()
	ix.RawCustomerDocsSec = round2(float64(ix.CustomerDocs) / rd.Seconds())
	ix.RawChangesSec = round2(float64(ix.Changes) / rd.Seconds())
	ix.RawDocsSec = round2(float64(nDocs) / rd.Seconds())
	ix.Ratio = ratio(ix.RawSeconds, ix.IndexerSeconds)
	log.Info("raw bulk done", "seconds", ix.RawSeconds, "docs", nDocs, "mib", nBytes>>20, "customer_docs_per_sec", ix.RawCustomerDocsSec, "ratio", ix.Ratio)

	if d := settle(ctx, osURL, mapping.Customers.Physical(cfg.IndexPrefix), 30*time.Second); d > time.Second {
		log.Info("waited for merges to finish", "seconds", round2(d.Seconds()))
	}

	// ---- 3. 360 lookups
	log.Info("phase 3/7: 360 lookups by id and by phone")
	mem.begin("lookups")
	sample, err := sampleCustomers(ctx, osURL, customers, o.lookupSample)
	if err != nil {
		return err
	}
	if rep.Lookups, err = runLookups(ctx, apiURL, osURL, customers, events, sample, o.query); err != nil {
		return err
	}
	mem.end()

	// ---- 4. export
	log.Info("phase 4/7: export through cursor paging and a raw PIT loop")
	mem.begin("export")
	if rep.Export, err = runExport(ctx, apiURL, osURL, customers, o.exportRounds, logf); err != nil {
		return err
	}
	mem.end()

	// ---- 5. queries, idle (after the export: the API may leave points in time open, which the raw export loop also needs)
	log.Info("phase 5/7: queries through the API and directly (idle)", "shapes", len(shapes))
	mem.begin("queries")
	qStart := time.Now()
	plans, err := planQueries(ctx, apiURL, osURL, customers, o.query)
	if err != nil {
		return err
	}
	rep.Queries = append(rep.Queries, runQueries(ctx, apiURL, osURL, customers, plans, "idle", logf)...)
	queriesTook := time.Since(qStart)
	mem.end()

	// ---- 6. freshness under load, 7. queries under load
	loadRate := o.loadFraction * ix.IndexerChangesSec
	warmup := 3 * time.Second
	need := int(loadRate * (warmup + o.freshDur + o.freshTimeout + queriesTook*13/10 + 10*time.Second).Seconds())
	log.Info("preparing the background load", "changes_per_sec", int(loadRate), "messages", need)
	var loadMsgs []kmsg
	for k := 0; len(loadMsgs) < need; k++ {
		n := min(o.customers, int(float64(need-len(loadMsgs))/msgsPerCustomer)+1)
		loadMsgs = append(loadMsgs, loadChunk(k, o.seed, n, o.eventsPerCustomer, time.Now())...)
	}
	lg, err := newLoadGen(cfg, loadMsgs, loadRate)
	if err != nil {
		return err
	}
	log.Info("phase 6/7: event-to-searchable latency under load", "markers_per_sec", o.markerRate, "seconds", o.freshDur.Seconds())
	mem.begin("freshness")
	lagCtx, stopLag := context.WithCancel(ctx)
	lw := &lagWatch{}
	go lw.run(lagCtx, cfg)
	lg.run(ctx)
	time.Sleep(warmup)
	fr, err := runFreshness(ctx, cfg, osURL, events, lg.prod, live, o.markerRate, o.freshDur, o.pollInterval, o.freshTimeout, runID)
	if err != nil {
		lg.halt()
		stopLag()
		return err
	}
	el := time.Since(lg.start).Seconds()
	lw.mu.Lock()
	fr.Load = LoadStats{TargetRate: round2(loadRate), ActualRate: round2(float64(lg.prod.acked.Load()) / el), Produced: lg.prod.acked.Load(),
		Seconds: round2(el), LagAtEnd: lw.end, LagMaxSample: lw.max}
	lw.mu.Unlock()
	rep.Freshness = fr
	mem.end()
	log.Info("freshness done", "p50_ms", fr.Latency.P50Ms, "p99_ms", fr.Latency.P99Ms, "lost", fr.Lost, "load_per_sec", fr.Load.ActualRate)

	log.Info("phase 7/7: queries while the indexer is fed half its maximum")
	mem.begin("queries-indexing")
	rep.Queries = append(rep.Queries, runQueries(ctx, apiURL, osURL, customers, plans, "indexing", logf)...)
	mem.end()
	lg.halt()
	stopLag()
	lg.mu.Lock()
	if lg.exhausted {
		rep.Notes = append(rep.Notes, "the background load ran out of prepared messages before the last phase ended")
		rep.Freshness.Load.Exhausted = true
	}
	lg.mu.Unlock()
	_ = lg.prod.close()

	// ---- report
	stopMem()
	idx.stop(30 * time.Second)
	api.stop(30 * time.Second)
	rep.Memory = mem.phases
	rep.Seconds = round2(time.Since(started).Seconds())
	if _, hwm, err := procStatus(os.Getpid()); err == nil {
		rep.BenchPeakRSSMiB = mib(hwm)
	}
	rep.computeGoals()
	rep.Notes = append(rep.Notes, failureNotes(rep)...)
	jsonPath := base + ".json"
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return output(rep, jsonPath, o.md)
}

// output writes the Markdown and prints the summary: one line per metric,
// the goals, and where the results are.
func output(rep *Report, jsonPath, md string) error {
	if md != "" {
		if err := os.MkdirAll(filepath.Dir(md), 0o755); err != nil {
			return err
		}
		f, err := os.Create(md)
		if err != nil {
			return err
		}
		rep.Markdown(f, jsonPath)
		if err := f.Close(); err != nil {
			return err
		}
	}
	fmt.Println()
	for _, l := range rep.summaryLines() {
		fmt.Println(l)
	}
	for _, g := range rep.Goals {
		fmt.Printf("goal %-22s %s  (%s; target %s)\n", g.Name+":", verdict(g.Pass), g.Actual, g.Target)
	}
	fmt.Println("results:", jsonPath)
	if md != "" {
		fmt.Println("table:  ", md)
	}
	return nil
}

// render rewrites the Markdown from saved results.
func render(o options) error {
	b, err := os.ReadFile(o.render)
	if err != nil {
		return err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", o.render, err)
	}
	return output(&rep, o.render, o.md)
}

// failureNotes names every series with failed requests and the last
// failure, so that a FAIL caused by errors says why.
func failureNotes(r *Report) []string {
	var out []string
	add := func(what string, s Summary) {
		if s.Errors > 0 {
			out = append(out, fmt.Sprintf("%s: %d of %d requests failed; the last: %.400s", what, s.Errors, s.Errors+s.Count, s.LastError))
		}
	}
	for _, q := range r.Queries {
		add(fmt.Sprintf("query %q (%s) through the API", q.Shape, q.Condition), q.API)
		add(fmt.Sprintf("query %q (%s) sent directly", q.Shape, q.Condition), q.Direct)
	}
	l := r.Lookups
	add("360 by id through the API", l.ByID)
	add("360 by phone through the API", l.ByPhone)
	add("raw GET", l.RawGet)
	add("raw GET + events", l.RawGetEvents)
	add("raw identity search + events", l.RawPhoneEvents)
	return out
}

// topicEnd sums the high-water marks of a topic's partitions.
func topicEnd(cfg *config.Config, topic string) int64 {
	client, err := sarama.NewClient(cfg.KafkaBrokers, indexer.KafkaConfig("cdp-bench-offsets"))
	if err != nil {
		return -1
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return -1
	}
	var n int64
	for _, p := range parts {
		off, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return -1
		}
		n += off
	}
	return n
}

// cleanup deletes the run's indices, topics and consumer group, unless
// keep.
func cleanup(cfg *config.Config, os endpoint, rawIndex string, keep bool, log *slog.Logger) {
	if keep {
		log.Info("keeping the run's data", "index_prefix", cfg.IndexPrefix, "topic_prefix", cfg.TopicPrefix, "group", cfg.ConsumerGroup)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, idx := range mapping.All {
		if _, err := os.do(ctx, http.MethodDelete, "/"+idx.Physical(cfg.IndexPrefix)+"?ignore_unavailable=true", nil); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.do(ctx, http.MethodDelete, "/"+rawIndex+"?ignore_unavailable=true", nil); err != nil {
		errs = append(errs, err)
	}
	admin, err := sarama.NewClusterAdmin(cfg.KafkaBrokers, indexer.KafkaConfig("cdp-bench-cleanup"))
	if err != nil {
		errs = append(errs, err)
	} else {
		topics, _ := admin.ListTopics()
		for name := range topics {
			if strings.HasPrefix(name, cfg.TopicPrefix) {
				if err := admin.DeleteTopic(name); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if err := admin.DeleteConsumerGroup(cfg.ConsumerGroup); err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
			errs = append(errs, err)
		}
		admin.Close()
	}
	if len(errs) > 0 {
		log.Warn("cleanup incomplete", "err", errors.Join(errs...))
		return
	}
	log.Info("cleaned up", "index_prefix", cfg.IndexPrefix, "topic_prefix", cfg.TopicPrefix)
}
