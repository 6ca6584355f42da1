// Command bench measures the service against OpenSearch's own limit, side
// by side in one run: indexing (Kafka → `cdp index` vs raw _bulk of the
// same final documents, and of those documents with the design's state),
// event-to-searchable freshness under load, filter queries and 360 lookups
// through the API vs the same requests sent directly, export through
// cursor paging vs a raw loop sending the same searches, a load ramp of
// closed-loop clients at 10 to 500 connections, and the peak memory of the
// indexer and API processes. It writes out/bench-<timestamp>.json and
// docs/benchmarks.md and prints one summary line per metric. `make bench`
// and `make bench-quick` run it.
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
	"os/exec"
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

	ramp rampTuning

	// memberDur is how long markers are produced at each step of the
	// membership phase; memberTimeCustomers how many customers reach the
	// edge of a window together in its time-driven step.
	memberDur           time.Duration
	memberTimeout       time.Duration
	memberTimeCustomers int
	// memberLevels are how many definitions are saved at each step, in
	// increasing order; the goal is judged at the last.
	memberLevels []int
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
	flag.IntVar(&o.exportRounds, "export-rounds", 2, "export rounds (the API first in odd rounds, the raw loop first in even ones); the best of each counts")
	flag.DurationVar(&o.freshDur, "fresh-duration", 30*time.Second, "how long markers are produced")
	flag.Float64Var(&o.markerRate, "marker-rate", 10, "markers per second of each kind (track event, identify trait, paid order)")
	flag.DurationVar(&o.pollInterval, "poll-interval", 25*time.Millisecond, "how often the markers are searched for")
	flag.DurationVar(&o.freshTimeout, "fresh-timeout", 15*time.Second, "a marker not searchable after this is lost")
	flag.Float64Var(&o.loadFraction, "load-fraction", 0.5, "background load as a fraction of the indexer's measured maximum")
	flag.DurationVar(&o.rssInterval, "rss-interval", 100*time.Millisecond, "how often VmRSS is sampled")
	flag.DurationVar(&o.memberDur, "membership-duration", 10*time.Second, "how long membership markers are produced at each number of definitions (10, 100, 1,000)")
	flag.DurationVar(&o.memberTimeout, "membership-timeout", time.Minute, "a membership marker whose record has not come after this is lost (long, so that a backlog shows as latency)")
	flag.IntVar(&o.memberTimeCustomers, "membership-time-customers", 200, "customers whose hour window ends together in the time-driven step of the membership phase")
	flag.StringVar(&o.render, "render", "", "only rewrite the Markdown (-md) from the JSON results of an earlier run, and print its summary")
	memberLevels := flag.String("membership-levels", "10,100,1000", "definitions saved at each step of the membership phase, increasing, comma separated; the goal is judged at the last")
	rampConns := flag.String("ramp-conns", "10,50,200,500", "concurrent connections of each load-ramp step, comma separated; the first is the latency baseline")
	flag.DurationVar(&o.ramp.Step, "ramp-step-duration", 10*time.Second, "measuring time of each load-ramp step")
	flag.DurationVar(&o.ramp.Warmup, "ramp-warmup", time.Second, "unrecorded warm-up before each load-ramp step")
	flag.DurationVar(&o.ramp.Timeout, "ramp-timeout", 10*time.Second, "request timeout of the load-ramp clients")
	flag.IntVar(&o.ramp.MaxRequests, "ramp-max-requests", 200000, "most requests of one load-ramp step")
	flag.Parse()
	var err error
	if o.ramp.Conns, err = parseConns(*rampConns); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if o.memberLevels, err = parseLevels(*memberLevels); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
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

// bench is one run: its settings, the names it works with, and the report
// its phases fill in.
type bench struct {
	o       options
	log     *slog.Logger
	logf    func(string)
	cfg     *config.Config
	runID   string
	started time.Time
	// base is the path prefix of the run's output files.
	base string
	// osURL and apiURL are OpenSearch and the API under test; customers
	// and events are the service's aliases, rawIndex the raw baseline's
	// index.
	osURL, apiURL               endpoint
	customers, events, rawIndex string
	rep                         *Report
	mem                         *memory
	// indexerAddr is the indexer's HTTP address (its /metrics);
	// loadChunks how many chunks of background load were prepared.
	indexerAddr string
	loadChunks  int
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	b, err := newBench(ctx, o, log)
	if err != nil {
		return err
	}
	defer cleanup(b.cfg, b.osURL, b.rawIndex, o.keep, log)

	live, msgsPerCustomer, err := b.produceDataset(ctx)
	if err != nil {
		return err
	}
	api, err := b.startAPI(ctx)
	if err != nil {
		return err
	}
	defer api.stop(30 * time.Second)

	log.Info("phase 1/8: indexing through Kafka and `cdp index`", "changes", b.rep.Indexing.Changes)
	procStart := time.Now()
	idx, err := b.startIndexer()
	if err != nil {
		return err
	}
	defer idx.stop(30 * time.Second)
	b.mem = &memory{procs: []*proc{idx, api}, interval: o.rssInterval, osPid: openSearchPid(b.cfg.OpenSearchURL)}
	memCtx, stopMem := context.WithCancel(ctx)
	defer stopMem()
	b.mem.begin("indexing")
	go b.mem.run(memCtx)
	if err := b.indexing(ctx, idx, procStart); err != nil {
		return err
	}
	if err := b.rawBaselines(ctx); err != nil {
		return err
	}
	if d := settle(ctx, b.osURL, mapping.Customers.Physical(b.cfg.IndexPrefix), 30*time.Second); d > time.Second {
		log.Info("waited for merges to finish", "seconds", round2(d.Seconds()))
	}
	if err := b.lookups(ctx); err != nil {
		return err
	}
	if err := b.export(ctx); err != nil {
		return err
	}
	plans, queriesTook, err := b.idleQueries(ctx)
	if err != nil {
		return err
	}
	if err := b.underLoad(ctx, live, msgsPerCustomer, plans, queriesTook); err != nil {
		return err
	}
	if err := b.membership(ctx, msgsPerCustomer); err != nil {
		return err
	}
	if err := b.loadRamp(ctx, idx, plans); err != nil {
		return err
	}

	stopMem()
	idx.stop(30 * time.Second)
	api.stop(30 * time.Second)
	return b.writeReport()
}

// newBench checks what the run needs (the cdp binary, OpenSearch) and
// starts its report.
func newBench(ctx context.Context, o options, log *slog.Logger) (*bench, error) {
	started := time.Now()
	runID := unique()
	cfg, err := benchConfig(runID)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.bin); err != nil {
		return nil, fmt.Errorf("%s: %w (run `make build`)", o.bin, err)
	}
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return nil, err
	}
	stamp := started.UTC().Format("20060102-150405")
	b := &bench{o: o, log: log, logf: func(s string) { log.Info(s) }, cfg: cfg, runID: runID, started: started,
		base:      filepath.Join(o.outDir, "bench-"+stamp),
		osURL:     endpoint(strings.TrimRight(cfg.OpenSearchURL, "/")),
		customers: mapping.Customers.Alias(cfg.IndexPrefix), events: mapping.Events.Alias(cfg.IndexPrefix),
		rawIndex: cfg.IndexPrefix + "-rawbulk"}

	b.rep = &Report{Command: o.command, Started: started.UTC().Format(time.RFC3339), Settings: Settings{
		Customers: o.customers, Seed: o.seed, EventsPerCustomer: o.eventsPerCustomer, Prefix: cfg.IndexPrefix,
		BatchSize: strconv.Itoa(cfg.BatchSize), BatchWait: cfg.BatchWait.String(),
		QueryUtil: o.query.Util, QueryMaxRate: o.query.MaxRate, QuerySeconds: o.query.Duration.Seconds(),
		FreshSeconds: o.freshDur.Seconds(), LoadFraction: o.loadFraction, ChunkCustomers: chunkCustomers,
	}}
	b.rep.Machine = machineInfo(ctx, b.osURL)
	if b.rep.Machine.OpenSearchVersion == "" {
		return nil, fmt.Errorf("OpenSearch does not answer at %s (`make deps-up` starts it)", b.osURL)
	}
	log.Info("bench run", "id", runID, "customers", o.customers, "prefix", cfg.IndexPrefix, "opensearch", b.rep.Machine.OpenSearchVersion,
		"kafka", b.rep.Machine.KafkaVersion, "nproc", b.rep.Machine.NProc)
	return b, nil
}

// produceDataset is phase 0: it generates the dataset and produces it to
// Kafka. It returns the CRM ids of the customers live at the end and the
// messages per customer, which the background load needs.
func (b *bench) produceDataset(ctx context.Context) (live []string, msgsPerCustomer float64, err error) {
	cfg, o := b.cfg, b.o
	topics := make([]string, len(indexer.AllTopics))
	for i, t := range indexer.AllTopics {
		topics[i] = cfg.Topic(t)
	}
	if err := indexer.EnsureTopics(cfg.KafkaBrokers, topics, indexer.Partitions); err != nil {
		return nil, 0, err
	}
	b.log.Info("phase 0/8: generating the dataset and producing it to Kafka", "chunk_customers", chunkCustomers)
	w, pd, err := generateAndProduce(ctx, cfg, o.seed, o.customers, o.eventsPerCustomer, time.Now(), b.logf)
	if err != nil {
		return nil, 0, err
	}
	b.rep.Dataset = DatasetInfo{Customers: w.stats.Customers, SDKOnlyUsers: w.stats.SDKOnlyUsers, AnonymousDevices: w.stats.AnonymousDevices,
		Orders: w.stats.Orders, Items: w.stats.Items, CDCMessages: w.stats.CDCMessages, EventMessages: w.stats.EventMessages,
		ExtraEvents: w.extraEvents, Messages: w.messages, Summary: w.stats.String()}
	b.log.Info("dataset", "messages", w.messages, "summary", w.stats.String(), "extra_events", w.extraEvents)
	ix := &b.rep.Indexing
	ix.Changes, ix.ProduceSeconds = w.messages, round2(pd.Seconds())
	ix.ExpectedCustomerDocs, ix.ExpectedEventDocs = w.expectedCustomers, w.expectedEvents
	b.log.Info("produced", "seconds", ix.ProduceSeconds, "per_sec", int(float64(ix.Changes)/pd.Seconds()))
	return w.live, float64(w.messages) / float64(max(1, o.customers)), nil
}

// startAPI starts `cdp serve` and waits until it answers.
func (b *bench) startAPI(ctx context.Context) (*proc, error) {
	apiCfg := *b.cfg
	var err error
	if apiCfg.HTTPAddr, err = freePort(); err != nil {
		return nil, err
	}
	api, err := startCDP(b.o.bin, "serve", &apiCfg, b.base+"-api.log")
	if err != nil {
		return nil, err
	}
	b.apiURL = endpoint("http://" + apiCfg.HTTPAddr)
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := waitHTTP(waitCtx, string(b.apiURL)+"/healthz", api); err != nil {
		api.stop(30 * time.Second)
		return nil, err
	}
	// Every /v1 call of the bench goes with an admin key, made as an
	// operator makes one: `cdp keys create`, the key on its last line.
	out, err := exec.CommandContext(ctx, b.o.bin, append([]string{"keys", "create", "--name", "bench", "--role", "admin"}, apiCfg.Args()...)...).Output()
	if err != nil {
		api.stop(30 * time.Second)
		return nil, fmt.Errorf("cdp keys create: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	apiKeys.Store(apiCfg.HTTPAddr, strings.TrimSpace(lines[len(lines)-1]))
	return api, nil
}

// startIndexer starts `cdp index`.
func (b *bench) startIndexer() (*proc, error) {
	ixCfg := *b.cfg
	var err error
	if ixCfg.HTTPAddr, err = freePort(); err != nil {
		return nil, err
	}
	idx, err := startCDP(b.o.bin, "index", &ixCfg, b.base+"-indexer.log")
	if err != nil {
		return nil, err
	}
	b.indexerAddr = ixCfg.HTTPAddr
	b.rep.Indexing.IndexerLogPath = idx.log
	return idx, nil
}

// indexing is phase 1: it waits until the indexer started at procStart
// has joined the group and consumed the whole dataset, and counts what it
// built.
func (b *bench) indexing(ctx context.Context, idx *proc, procStart time.Time) error {
	cfg, ix := b.cfg, &b.rep.Indexing
	stableCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	err := groupStable(stableCtx, cfg, idx)
	cancel()
	if err != nil {
		return err
	}
	t0 := time.Now()
	ix.IndexerStartupSeconds = round2(t0.Sub(procStart).Seconds())
	t1, err := waitIdle(ctx, cfg, idx, ix.Changes, b.log, "indexing")
	if err != nil {
		return err
	}
	b.mem.end()
	ix.IndexerSeconds = round3(t1.Sub(t0).Seconds())
	if ix.Breakdown, err = breakdown(ctx, b.indexerAddr); err != nil {
		b.log.Warn("the indexer's time breakdown is unknown", "err", err)
	}
	if ix.CustomerDocs, err = countDocs(ctx, b.osURL, b.customers); err != nil {
		return err
	}
	if ix.EventDocs, err = countDocs(ctx, b.osURL, b.events); err != nil {
		return err
	}
	ix.DeadLettered = topicEnd(cfg, cfg.Topic(indexer.TopicDLQ))
	ix.IndexerDocsMatchExpect = ix.CustomerDocs == int64(ix.ExpectedCustomerDocs)
	if !ix.IndexerDocsMatchExpect {
		b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("the indexer built %d customer documents where the reference model expects %d", ix.CustomerDocs, ix.ExpectedCustomerDocs))
		b.log.Warn("customer document count differs from the reference model", "got", ix.CustomerDocs, "want", ix.ExpectedCustomerDocs)
	}
	ix.IndexerCustomerDocsSec = round2(float64(ix.CustomerDocs) / ix.IndexerSeconds)
	ix.IndexerChangesSec = round2(float64(ix.Changes) / ix.IndexerSeconds)
	b.log.Info("indexer done", "seconds", ix.IndexerSeconds, "customer_docs", ix.CustomerDocs, "event_docs", ix.EventDocs,
		"customer_docs_per_sec", ix.IndexerCustomerDocsSec, "changes_per_sec", ix.IndexerChangesSec)
	return nil
}

// rawBaselines is phase 2: the final documents read back and written
// with plain _bulk requests, first alone, then together with the design's
// state. Both read from one spool file, which is removed at the end.
func (b *bench) rawBaselines(ctx context.Context) error {
	sp, err := newSpool(b.o.outDir)
	if err != nil {
		return err
	}
	defer sp.close()
	if err := b.rawBulkBaseline(ctx, sp); err != nil {
		return err
	}
	return b.stateBaseline(ctx, sp)
}

// rawBulkBaseline is phase 2a: the same final documents, read back into
// sp and written with plain _bulk requests into an index of their own.
func (b *bench) rawBulkBaseline(ctx context.Context, sp *spool) error {
	cfg, ix, osURL, rawIndex := b.cfg, &b.rep.Indexing, b.osURL, b.rawIndex
	b.log.Info("phase 2/8: raw _bulk of the same final documents")
	b.mem.begin("raw-bulk")
	nDocs, err := readBack(ctx, osURL, sp, mapping.Customers.Physical(cfg.IndexPrefix), rawIndex, b.o.bulkDocs)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	nBytes := sp.size
	if ix.RefreshInterval, err = createRawIndex(ctx, osURL, mapping.Customers, mapping.Customers.Physical(cfg.IndexPrefix), rawIndex); err != nil {
		return fmt.Errorf("create %s: %w", rawIndex, err)
	}
	rd, err := rawBulk(ctx, osURL, sp, b.o.bulkWorkers)
	if err != nil {
		return fmt.Errorf("raw bulk: %w", err)
	}
	ix.RawIndex, ix.RawDocs, ix.RawBytes, ix.RawWorkers, ix.RawBatchDocs = rawIndex, nDocs, nBytes, b.o.bulkWorkers, b.o.bulkDocs
	ix.RawSeconds = round3(rd.Seconds())
	if n, err := countDocs(ctx, osURL, rawIndex); err != nil || n != int64(nDocs) {
		return fmt.Errorf("raw index holds %d documents of %d (%v)", n, nDocs, err)
	}
	_, _ = osURL.do(ctx, http.MethodDelete, "/"+rawIndex, nil)
	b.mem.end()
	ix.RawCustomerDocsSec = round2(float64(ix.CustomerDocs) / rd.Seconds())
	ix.RawChangesSec = round2(float64(ix.Changes) / rd.Seconds())
	ix.RawDocsSec = round2(float64(nDocs) / rd.Seconds())
	ix.Ratio = ratio(ix.RawSeconds, ix.IndexerSeconds)
	b.log.Info("raw bulk done", "seconds", ix.RawSeconds, "docs", nDocs, "mib", nBytes>>20, "customer_docs_per_sec", ix.RawCustomerDocsSec, "ratio", ix.Ratio)
	return nil
}

// stateCopy is the throwaway copy of a state index in the second raw
// baseline.
func stateCopy(prefix string, idx mapping.Index) string { return prefix + "-rawstate-" + idx.Name }

// stateBaseline is phase 2b: the raw baseline again, with the documents of
// every state index (stateIndices) appended to sp and written into copies
// of those indices, all with the same _bulk workers and batch size, in one
// timed run. The final documents' bodies go to a fresh raw index again.
func (b *bench) stateBaseline(ctx context.Context, sp *spool) error {
	cfg, ix, osURL := b.cfg, &b.rep.Indexing, b.osURL
	b.log.Info("phase 2/8: raw _bulk of the final documents and the design's state")
	b.mem.begin("raw-bulk-state")
	type copyOf struct {
		def          mapping.Index
		source, copy string
		docs         int
	}
	copies := []copyOf{{mapping.Customers, mapping.Customers.Physical(cfg.IndexPrefix), b.rawIndex, ix.RawDocs}}
	for _, idx := range stateIndices {
		c := copyOf{def: idx, source: idx.Physical(cfg.IndexPrefix), copy: stateCopy(cfg.IndexPrefix, idx)}
		var err error
		if c.docs, err = readBack(ctx, osURL, sp, c.source, c.copy, b.o.bulkDocs); err != nil {
			return fmt.Errorf("read back %s: %w", c.source, err)
		}
		copies = append(copies, c)
	}
	defer func() {
		for _, c := range copies {
			_, _ = osURL.do(context.WithoutCancel(ctx), http.MethodDelete, "/"+c.copy+"?ignore_unavailable=true", nil)
		}
	}()
	nDocs := 0
	for _, c := range copies {
		if _, err := createRawIndex(ctx, osURL, c.def, c.source, c.copy); err != nil {
			return fmt.Errorf("create %s: %w", c.copy, err)
		}
		nDocs += c.docs
	}
	d, err := rawBulk(ctx, osURL, sp, b.o.bulkWorkers)
	if err != nil {
		return fmt.Errorf("raw bulk with the state: %w", err)
	}
	ix.State = nil
	for _, c := range copies {
		if n, err := countDocs(ctx, osURL, c.copy); err != nil || n != int64(c.docs) {
			return fmt.Errorf("%s holds %d documents of %d (%v)", c.copy, n, c.docs, err)
		}
		if c.def.Name != mapping.Customers.Name {
			ix.State = append(ix.State, StateIndex{Index: c.source, Copy: c.copy, Docs: c.docs})
		}
	}
	b.mem.end()
	ix.StateDocs, ix.StateBytes, ix.StateSeconds = nDocs, sp.size, round3(d.Seconds())
	ix.StateCustomerDocsSec = round2(float64(ix.CustomerDocs) / d.Seconds())
	ix.StateChangesSec = round2(float64(ix.Changes) / d.Seconds())
	ix.StateDocsSec = round2(float64(nDocs) / d.Seconds())
	ix.StateRatio = ratio(ix.StateSeconds, ix.IndexerSeconds)
	b.log.Info("raw bulk with the state done", "seconds", ix.StateSeconds, "docs", nDocs, "mib", sp.size>>20,
		"customer_docs_per_sec", ix.StateCustomerDocsSec, "ratio", ix.StateRatio)
	return nil
}

// lookups is phase 3: 360 lookups by id and by phone.
func (b *bench) lookups(ctx context.Context) error {
	b.log.Info("phase 3/8: 360 lookups by id and by phone")
	b.mem.begin("lookups")
	sample, err := sampleCustomers(ctx, b.osURL, b.customers, b.o.lookupSample)
	if err != nil {
		return err
	}
	if b.rep.Lookups, err = runLookups(ctx, b.apiURL, b.osURL, b.customers, b.events, sample, b.o.query); err != nil {
		return err
	}
	b.mem.end()
	return nil
}

// export is phase 4: cursor paging through the API against a raw
// loop that sends the same searches (see measuredExport).
func (b *bench) export(ctx context.Context) error {
	b.log.Info("phase 4/8: export through the API and a raw loop doing the same work")
	b.mem.begin("export")
	var err error
	if b.rep.Export, err = runExport(ctx, b.apiURL, b.osURL, b.customers, b.o.exportRounds, b.logf); err != nil {
		return err
	}
	b.mem.end()
	return nil
}

// idleQueries is phase 5, after the export (the API may leave points in
// time open, which the raw export loop also needs): the query shapes
// through the API and directly, with nothing else running. It returns the
// plans, for phase 7, and how long the phase took.
func (b *bench) idleQueries(ctx context.Context) ([]*queryPlan, time.Duration, error) {
	b.log.Info("phase 5/8: queries through the API and directly (idle)", "shapes", len(shapes))
	b.mem.begin("queries")
	qStart := time.Now()
	plans, err := planQueries(ctx, b.apiURL, b.osURL, b.customers, b.o.query)
	if err != nil {
		return nil, 0, err
	}
	b.rep.Queries = append(b.rep.Queries, runQueries(ctx, b.apiURL, b.osURL, b.customers, plans, "idle", b.logf)...)
	took := time.Since(qStart)
	b.mem.end()
	return plans, took, nil
}

// underLoad runs phases 6 and 7 while the indexer is fed a background
// load of loadFraction of its measured maximum: event-to-searchable
// freshness, then the queries of phase 5 again.
func (b *bench) underLoad(ctx context.Context, live []string, msgsPerCustomer float64, plans []*queryPlan, queriesTook time.Duration) error {
	cfg, o, rep := b.cfg, b.o, b.rep
	loadRate := o.loadFraction * rep.Indexing.IndexerChangesSec
	warmup := 3 * time.Second
	need := int(loadRate * (warmup + o.freshDur + o.freshTimeout + queriesTook*13/10 + 10*time.Second).Seconds())
	b.log.Info("preparing the background load", "changes_per_sec", int(loadRate), "messages", need)
	lg, err := newLoadGen(cfg, b.loadMessages(need, msgsPerCustomer), loadRate)
	if err != nil {
		return err
	}
	b.log.Info("phase 6/8: change-to-visible latency under load", "markers_per_sec_each", o.markerRate, "seconds", o.freshDur.Seconds())
	b.mem.begin("freshness")
	// The trait and order markers change customers of the bench's own,
	// made now, while the indexer is idle, so that their state is known.
	cs, err := prepareMarkerCustomers(ctx, b.osURL, b.customers, lg.prod, 0, 2*markersPerKind(o.markerRate, o.freshDur), b.runID, time.Now())
	if err != nil {
		return err
	}
	lagCtx, stopLag := context.WithCancel(ctx)
	lw := &lagWatch{}
	go lw.run(lagCtx, cfg)
	lg.run(ctx)
	time.Sleep(warmup)
	before, _ := breakdown(ctx, b.indexerAddr)
	fr, err := runFreshness(ctx, b.osURL, b.customers, b.events, lg.prod, live, cs, o.markerRate, o.freshDur, o.pollInterval, o.freshTimeout, b.runID)
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
	if after, err := breakdown(ctx, b.indexerAddr); err == nil {
		fr.Breakdown = since(after, before)
	}
	rep.Freshness = fr
	b.mem.end()
	for _, m := range fr.Markers {
		b.log.Info("freshness done", "kind", m.Kind, "p50_ms", m.Latency.P50Ms, "p99_ms", m.Latency.P99Ms, "lost", m.Lost, "load_per_sec", fr.Load.ActualRate)
	}

	b.log.Info("phase 7/8: queries while the indexer is fed half its maximum")
	b.mem.begin("queries-indexing")
	rep.Queries = append(rep.Queries, runQueries(ctx, b.apiURL, b.osURL, b.customers, plans, "indexing", b.logf)...)
	if m, err := middlewareLatency(ctx, b.apiURL); err != nil {
		b.log.Warn("the access middleware's latency is unknown", "err", err)
	} else {
		rep.AccessMiddleware = m
	}
	b.mem.end()
	lg.halt()
	stopLag()
	lg.mu.Lock()
	if lg.exhausted {
		rep.Notes = append(rep.Notes, "the background load ran out of prepared messages before the last phase ended")
		rep.Freshness.Load.Exhausted = true
	}
	lg.mu.Unlock()
	_ = lg.prod.close()
	return nil
}

// loadMessages prepares at least need messages of background load: at
// most one chunk's customers at a time, whose keys are those of the main
// dataset's first chunk, so the load updates existing customers. Every
// call continues the chunks of the one before (loadChunk's k), so that a
// later load's changes are newer than an earlier one's, never ignored as
// replays.
func (b *bench) loadMessages(need int, msgsPerCustomer float64) []kmsg {
	var out []kmsg
	for len(out) < need {
		n := min(b.o.customers, chunkCustomers, int(float64(need-len(out))/msgsPerCustomer)+1)
		out = append(out, loadChunk(b.loadChunks, b.o.seed, n, b.o.eventsPerCustomer, time.Now())...)
		b.loadChunks++
	}
	return out
}

// writeReport completes the report (with the processes stopped), writes
// its JSON and hands it to output.
func (b *bench) writeReport() error {
	rep := b.rep
	rep.Memory = b.mem.phases
	rep.Seconds = round2(time.Since(b.started).Seconds())
	if _, hwm, err := procStatus(os.Getpid()); err == nil {
		rep.BenchPeakRSSMiB = mib(hwm)
	}
	rep.computeGoals()
	rep.Notes = append(rep.Notes, failureNotes(rep)...)
	jsonPath := b.base + ".json"
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(jsonPath, append(js, '\n'), 0o644); err != nil {
		return err
	}
	return output(rep, jsonPath, b.o.md)
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
		if g.Name == "indexing throughput" && rep.Indexing.StateSeconds > 0 {
			row := rep.stateRow()
			fmt.Printf("     %-22s %s  (%s; %s)\n", "with the state:", row[3], row[2], row[1])
		}
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
	for _, s := range r.Ramp.Steps {
		if n := s.ClientErrors + s.OtherStatus; n > 0 {
			out = append(out, fmt.Sprintf("load ramp at %d connections: %d of %d requests failed (%d client timeouts); the last: %.400s", s.Conns, n, s.Requests, s.ClientTimeouts, s.LastError))
		}
	}
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
	for _, idx := range stateIndices {
		if _, err := os.do(ctx, http.MethodDelete, "/"+stateCopy(cfg.IndexPrefix, idx)+"?ignore_unavailable=true", nil); err != nil {
			errs = append(errs, err)
		}
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
