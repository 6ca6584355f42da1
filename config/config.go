// Package config holds the service configuration: one struct filled from
// flags and the environment (flags win), checked by Validate.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"cdp/access"
	"cdp/identity"
	"cdp/query"
)

// Config is the configuration shared by `cdp serve`, `cdp index` and `cdp run`.
type Config struct {
	OpenSearchURL string
	KafkaBrokers  []string
	RedisAddr     string
	HTTPAddr      string
	IndexPrefix   string
	TopicPrefix   string
	ConsumerGroup string
	Timezone      string
	LogLevel      string

	// Indexer tuning.
	MaxDynamicFields int
	BatchSize        int
	BatchWait        time.Duration
	RebuildBatchSize int
	SourceLanes      int
	RebuildWorkers   int
	ShutdownGrace    time.Duration

	// MemoryLimitMiB is the Go runtime's soft memory limit; 0 leaves it
	// to GOMEMLIMIT.
	MemoryLimitMiB int

	// FilterLimits bound the cost of one filter (the API answers 400
	// beyond them).
	FilterLimits query.Limits

	// Admission control of the API: requests working on OpenSearch at
	// once, how many more may wait, and for how long, before a 429.
	HTTPInFlight  int
	HTTPQueue     int
	HTTPQueueWait time.Duration
	// HTTPMaxConns bounds the API's open client connections.
	HTTPMaxConns int

	// Streaming exports running at once (each holds a point in time of
	// OpenSearch, 300 of which a node keeps open by default), how many
	// more may wait for a place, and for how long, before a 429.
	ExportConcurrency int
	ExportQueue       int
	ExportQueueWait   time.Duration

	// Export jobs (POST /v1/exports): the directory their files go to,
	// which every API process of a deployment may share; how long a
	// runner's lock on a job holds once its process stops extending it
	// (so how soon another process resumes a job whose runner died);
	// and how many jobs one process runs at once.
	ExportDir         string
	ExportLockTTL     time.Duration
	ExportJobsRunning int

	// IdentityRules is the path of the identity rules file (YAML or
	// JSON, see identity.ParseRules); empty means the contract's defaults.
	IdentityRules string

	// RolesFile is the path of the roles file (YAML or JSON, see
	// access.LoadRoles); empty means the contract's defaults.
	RolesFile string
	// OIDCIssuer, when set, makes the API accept JWTs of that issuer
	// (verified against its JWKS) for OIDCAudience; OIDCJWKSURL overrides
	// the JWKS address found by discovery.
	OIDCIssuer   string
	OIDCAudience string
	OIDCJWKSURL  string
	// OIDCClientID is the console's client id at the issuer (a public
	// client: Authorization Code with PKCE); empty: OIDCAudience, so that
	// the ID token the issuer gives the console names the audience the
	// API verifies.
	OIDCClientID string
	// Roles is RolesFile loaded by Validate.
	Roles access.Roles

	// Location is Timezone loaded by Validate.
	Location *time.Location
	// Identity is IdentityRules loaded by Validate.
	Identity *identity.Rules
}

// setting binds one field to a flag and an environment variable.
type setting struct {
	flag, env, usage string
}

// Register declares the flags on fs, with defaults taken from the
// environment (getenv) where set, so that an explicit flag wins over the
// environment, which wins over the built-in default.
func (c *Config) Register(fs *pflag.FlagSet, getenv func(string) string) {
	str := func(p *string, s setting, def string) {
		if v := getenv(s.env); v != "" {
			def = v
		}
		fs.StringVar(p, s.flag, def, s.usage+" (env "+s.env+")")
	}
	num := func(p *int, s setting, def int) {
		if v, err := strconv.Atoi(getenv(s.env)); err == nil {
			def = v
		}
		fs.IntVar(p, s.flag, def, s.usage+" (env "+s.env+")")
	}
	dur := func(p *time.Duration, s setting, def time.Duration) {
		if v, err := time.ParseDuration(getenv(s.env)); err == nil {
			def = v
		}
		fs.DurationVar(p, s.flag, def, s.usage+" (env "+s.env+")")
	}
	str(&c.OpenSearchURL, setting{"opensearch-url", "CDP_OPENSEARCH_URL", "OpenSearch base URL"}, "http://127.0.0.1:9200")
	brokers := "127.0.0.1:9092"
	if v := getenv("CDP_KAFKA_BROKERS"); v != "" {
		brokers = v
	}
	fs.StringSliceVar(&c.KafkaBrokers, "kafka-brokers", strings.Split(brokers, ","), "Kafka bootstrap brokers, comma separated (env CDP_KAFKA_BROKERS)")
	str(&c.RedisAddr, setting{"redis-addr", "CDP_REDIS_ADDR", "Redis address host:port"}, "127.0.0.1:6379")
	str(&c.HTTPAddr, setting{"http-addr", "CDP_HTTP_ADDR", "HTTP listen address"}, "127.0.0.1:8080")
	str(&c.IndexPrefix, setting{"index-prefix", "CDP_INDEX_PREFIX", "prefix of every index and alias the service creates"}, "cdp")
	str(&c.TopicPrefix, setting{"topic-prefix", "CDP_TOPIC_PREFIX", "prefix of every Kafka topic name"}, "cdp.")
	str(&c.ConsumerGroup, setting{"consumer-group", "CDP_CONSUMER_GROUP", "Kafka consumer group of the indexer"}, "cdp-indexer")
	str(&c.Timezone, setting{"timezone", "CDP_TIMEZONE", "IANA time zone for calendar logic"}, "Asia/Shanghai")
	str(&c.IdentityRules, setting{"identity-rules", "CDP_IDENTITY_RULES", "identity rules file, YAML or JSON: priority, max per profile and blocklist of each identity type (empty: the defaults)"}, "")
	str(&c.RolesFile, setting{"roles-file", "CDP_ROLES_FILE", "roles file, YAML or JSON: each role's permissions, masked fields, scope and rate limit (empty: the defaults)"}, "")
	str(&c.OIDCIssuer, setting{"oidc-issuer", "CDP_OIDC_ISSUER", "OIDC issuer whose JWTs are accepted as tokens (empty: API keys only)"}, "")
	str(&c.OIDCAudience, setting{"oidc-audience", "CDP_OIDC_AUDIENCE", "audience the OIDC tokens must name"}, "")
	str(&c.OIDCJWKSURL, setting{"oidc-jwks-url", "CDP_OIDC_JWKS_URL", "JWKS address of the OIDC issuer (empty: from the issuer's discovery document)"}, "")
	str(&c.OIDCClientID, setting{"oidc-client-id", "CDP_OIDC_CLIENT_ID", "client id of the console at the OIDC issuer, a public client with PKCE (empty: the audience)"}, "")
	str(&c.LogLevel, setting{"log-level", "CDP_LOG_LEVEL", "debug, info, warn or error"}, "info")
	num(&c.MaxDynamicFields, setting{"max-dynamic-fields", "CDP_MAX_DYNAMIC_FIELDS", "most distinct attrs (and event property) keys given a mapping; more are kept unindexed"}, 3000)
	num(&c.BatchSize, setting{"batch-size", "CDP_BATCH_SIZE", "most Kafka messages the indexer applies in one batch"}, 5000)
	dur(&c.BatchWait, setting{"batch-wait", "CDP_BATCH_WAIT", "longest the indexer waits to fill a batch"}, 50*time.Millisecond)
	num(&c.RebuildBatchSize, setting{"rebuild-batch-size", "CDP_REBUILD_BATCH_SIZE", "most distinct customers in one round of document rebuilds; while the indexer is behind, it coalesces every marker of them it has read"}, 200000)
	num(&c.SourceLanes, setting{"source-lanes", "CDP_SOURCE_LANES", "batches of source messages the indexer applies at once, each from its own share of the partitions"}, 2)
	num(&c.RebuildWorkers, setting{"rebuild-workers", "CDP_REBUILD_WORKERS", "chunks of one round of document rebuilds worked on at once"}, 2)
	num(&c.MemoryLimitMiB, setting{"memory-limit-mib", "CDP_MEMORY_LIMIT_MIB", "soft memory limit of the process in MiB: the garbage collector works harder as it nears it (0: none, or GOMEMLIMIT)"}, 192)
	dur(&c.ShutdownGrace, setting{"shutdown-grace", "CDP_SHUTDOWN_GRACE", "time allowed to flush and commit on SIGTERM"}, 20*time.Second)
	num(&c.HTTPInFlight, setting{"http-inflight", "CDP_HTTP_INFLIGHT", "most API requests working on OpenSearch at once"}, 8)
	num(&c.HTTPQueue, setting{"http-queue", "CDP_HTTP_QUEUE", "most API requests waiting for a place; more are answered 429"}, 8)
	dur(&c.HTTPQueueWait, setting{"http-queue-wait", "CDP_HTTP_QUEUE_WAIT", "longest an API request waits for a place before a 429"}, 50*time.Millisecond)
	num(&c.HTTPMaxConns, setting{"http-max-conns", "CDP_HTTP_MAX_CONNS", "most client connections open at once; more wait to be accepted"}, 1024)
	num(&c.ExportConcurrency, setting{"export-concurrency", "CDP_EXPORT_CONCURRENCY", "most streaming exports at once, each holding one OpenSearch point in time (a node keeps at most 300 open)"}, 32)
	num(&c.ExportQueue, setting{"export-queue", "CDP_EXPORT_QUEUE", "most streaming exports waiting for a place; more are answered 429"}, 16)
	dur(&c.ExportQueueWait, setting{"export-queue-wait", "CDP_EXPORT_QUEUE_WAIT", "longest a streaming export waits for a place before a 429"}, 2*time.Second)
	str(&c.ExportDir, setting{"export-dir", "CDP_EXPORT_DIR", "directory of export job files, shared by every API process"}, "./exports")
	dur(&c.ExportLockTTL, setting{"export-lock-ttl", "CDP_EXPORT_LOCK_TTL", "how long an export job's lock outlives a runner that stopped extending it: another process resumes the job after it"}, 15*time.Second)
	num(&c.ExportJobsRunning, setting{"export-jobs-running", "CDP_EXPORT_JOBS_RUNNING", "most export jobs one API process runs at once"}, 2)
	d, l := query.DefaultLimits, &c.FilterLimits
	num(&l.MaxStringBytes, setting{"filter-max-string-bytes", "CDP_FILTER_MAX_STRING_BYTES", "longest string value of a filter condition, in bytes"}, d.MaxStringBytes)
	num(&l.MaxPatternChars, setting{"filter-max-pattern-chars", "CDP_FILTER_MAX_PATTERN_CHARS", "longest contains, not_contains or starts_with value, in characters"}, d.MaxPatternChars)
	num(&l.MaxConditions, setting{"filter-max-conditions", "CDP_FILTER_MAX_CONDITIONS", "most leaf conditions of one filter, saved segments included"}, d.MaxConditions)
	num(&l.MaxPatternWork, setting{"filter-max-pattern-work", "CDP_FILTER_MAX_PATTERN_WORK", "most characters of all contains, not_contains and starts_with values of one filter together"}, d.MaxPatternWork)
	num(&l.MaxTerms, setting{"filter-max-terms", "CDP_FILTER_MAX_TERMS", "most values of all conditions of one filter together"}, d.MaxTerms)
}

// FromEnv returns the configuration given by the environment alone.
func FromEnv() (*Config, error) {
	c := &Config{}
	fs := pflag.NewFlagSet("env", pflag.ContinueOnError)
	c.Register(fs, os.Getenv)
	return c, c.Validate()
}

// Validate checks every field and loads the time zone.
func (c *Config) Validate() error {
	return errors.Join(c.validateServices(), c.validateNames(), c.validateIndexer(), c.validateAPI())
}

// validateServices checks the addresses of the backing services and the
// API.
func (c *Config) validateServices() error {
	var errs []error
	if u, err := url.Parse(c.OpenSearchURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("opensearch-url %q: want http(s)://host:port", c.OpenSearchURL))
	}
	var brokers []string
	for _, b := range c.KafkaBrokers {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if len(brokers) == 0 {
		errs = append(errs, errors.New("kafka-brokers: at least one broker is required"))
	}
	c.KafkaBrokers = brokers
	for name, v := range map[string]string{"redis-addr": c.RedisAddr, "http-addr": c.HTTPAddr} {
		if !strings.Contains(v, ":") {
			errs = append(errs, fmt.Errorf("%s %q: want host:port", name, v))
		}
	}
	return errors.Join(errs...)
}

// validateNames checks the names and settings every process shares, and
// loads the time zone and the identity rules.
func (c *Config) validateNames() error {
	var errs []error
	if !validPrefix(c.IndexPrefix) {
		errs = append(errs, fmt.Errorf("index-prefix %q: want lowercase letters, digits, '-' or '_', not starting with '-' or '_'", c.IndexPrefix))
	}
	if c.TopicPrefix == "" || strings.ContainsAny(c.TopicPrefix, " /\\,") {
		errs = append(errs, fmt.Errorf("topic-prefix %q: want a non-empty Kafka topic name prefix", c.TopicPrefix))
	}
	if c.ConsumerGroup == "" {
		errs = append(errs, errors.New("consumer-group: must not be empty"))
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		errs = append(errs, fmt.Errorf("timezone %q: %v", c.Timezone, err))
	}
	c.Location = loc
	rules, err := identity.LoadRules(c.IdentityRules)
	if err != nil {
		errs = append(errs, fmt.Errorf("identity-rules: %v", err))
	}
	c.Identity = rules
	roles, err := access.LoadRoles(c.RolesFile)
	if err != nil {
		errs = append(errs, fmt.Errorf("roles-file: %v", err))
	}
	c.Roles = roles
	if c.OIDCIssuer != "" && c.OIDCAudience == "" {
		errs = append(errs, errors.New("oidc-audience: required with oidc-issuer"))
	}
	if u, err := url.Parse(c.OIDCIssuer); c.OIDCIssuer != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		errs = append(errs, fmt.Errorf("oidc-issuer %q: want an http(s) URL", c.OIDCIssuer))
	}
	if c.OIDCClientID == "" {
		c.OIDCClientID = c.OIDCAudience
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// validateIndexer checks the indexer's tuning.
func (c *Config) validateIndexer() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, fmt.Errorf("batch-size %d: want 1..100000", c.BatchSize))
	}
	if c.RebuildBatchSize < 1 || c.RebuildBatchSize > 1000000 {
		errs = append(errs, fmt.Errorf("rebuild-batch-size %d: want 1..1000000", c.RebuildBatchSize))
	}
	if c.SourceLanes < 1 || c.SourceLanes > 64 {
		errs = append(errs, fmt.Errorf("source-lanes %d: want 1..64", c.SourceLanes))
	}
	if c.RebuildWorkers < 1 || c.RebuildWorkers > 16 {
		errs = append(errs, fmt.Errorf("rebuild-workers %d: want 1..16", c.RebuildWorkers))
	}
	if c.MemoryLimitMiB < 0 || c.MemoryLimitMiB > 0 && c.MemoryLimitMiB < 32 {
		errs = append(errs, fmt.Errorf("memory-limit-mib %d: want 0 (none) or at least 32", c.MemoryLimitMiB))
	}
	if c.MaxDynamicFields < 0 || c.MaxDynamicFields > 8000 {
		errs = append(errs, fmt.Errorf("max-dynamic-fields %d: want 0..8000 (the index allows 20000 fields; a string key takes 2)", c.MaxDynamicFields))
	}
	if c.BatchWait <= 0 {
		errs = append(errs, fmt.Errorf("batch-wait %s: must be positive", c.BatchWait))
	}
	if c.ShutdownGrace <= 0 {
		errs = append(errs, fmt.Errorf("shutdown-grace %s: must be positive", c.ShutdownGrace))
	}
	return errors.Join(errs...)
}

// validateAPI checks the API's admission control and filter limits.
func (c *Config) validateAPI() error {
	var errs []error
	if c.HTTPQueueWait <= 0 {
		errs = append(errs, fmt.Errorf("http-queue-wait %s: must be positive", c.HTTPQueueWait))
	}
	if c.HTTPQueue < 0 {
		errs = append(errs, fmt.Errorf("http-queue %d: must not be negative", c.HTTPQueue))
	}
	if c.ExportQueue < 0 {
		errs = append(errs, fmt.Errorf("export-queue %d: must not be negative", c.ExportQueue))
	}
	if c.ExportQueueWait <= 0 {
		errs = append(errs, fmt.Errorf("export-queue-wait %s: must be positive", c.ExportQueueWait))
	}
	if c.ExportDir == "" {
		errs = append(errs, errors.New("export-dir: must not be empty"))
	}
	if c.ExportLockTTL < time.Second {
		errs = append(errs, fmt.Errorf("export-lock-ttl %s: want at least 1s", c.ExportLockTTL))
	}
	if c.ExportJobsRunning < 1 || c.ExportJobsRunning > 32 {
		errs = append(errs, fmt.Errorf("export-jobs-running %d: want 1..32", c.ExportJobsRunning))
	}
	if c.ExportConcurrency < 1 || c.ExportConcurrency > 250 {
		errs = append(errs, fmt.Errorf("export-concurrency %d: want 1..250 (a node keeps at most 300 points in time open, and searches need some)", c.ExportConcurrency))
	}
	for name, v := range map[string]int{
		"http-inflight": c.HTTPInFlight, "http-max-conns": c.HTTPMaxConns,
		"filter-max-string-bytes": c.FilterLimits.MaxStringBytes, "filter-max-pattern-chars": c.FilterLimits.MaxPatternChars,
		"filter-max-conditions": c.FilterLimits.MaxConditions, "filter-max-pattern-work": c.FilterLimits.MaxPatternWork,
		"filter-max-terms": c.FilterLimits.MaxTerms,
	} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s %d: must be positive", name, v))
		}
	}
	return errors.Join(errs...)
}

func validPrefix(p string) bool {
	if p == "" || p[0] == '-' || p[0] == '_' {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Args returns command-line flags that reproduce these settings, for
// starting a `cdp` process with them (tests, the bench).
func (c *Config) Args() []string {
	return []string{
		"--opensearch-url", c.OpenSearchURL,
		"--kafka-brokers", strings.Join(c.KafkaBrokers, ","),
		"--redis-addr", c.RedisAddr,
		"--http-addr", c.HTTPAddr,
		"--index-prefix", c.IndexPrefix,
		"--topic-prefix", c.TopicPrefix,
		"--consumer-group", c.ConsumerGroup,
		"--timezone", c.Timezone,
		"--log-level", c.LogLevel,
		"--identity-rules", c.IdentityRules,
		"--roles-file", c.RolesFile,
		"--oidc-issuer", c.OIDCIssuer,
		"--oidc-audience", c.OIDCAudience,
		"--oidc-jwks-url", c.OIDCJWKSURL,
		"--oidc-client-id", c.OIDCClientID,
		"--max-dynamic-fields", strconv.Itoa(c.MaxDynamicFields),
		"--batch-size", strconv.Itoa(c.BatchSize),
		"--batch-wait", c.BatchWait.String(),
		"--rebuild-batch-size", strconv.Itoa(c.RebuildBatchSize),
		"--source-lanes", strconv.Itoa(c.SourceLanes),
		"--rebuild-workers", strconv.Itoa(c.RebuildWorkers),
		"--shutdown-grace", c.ShutdownGrace.String(),
		"--memory-limit-mib", strconv.Itoa(c.MemoryLimitMiB),
		"--http-inflight", strconv.Itoa(c.HTTPInFlight),
		"--http-queue", strconv.Itoa(c.HTTPQueue),
		"--http-queue-wait", c.HTTPQueueWait.String(),
		"--http-max-conns", strconv.Itoa(c.HTTPMaxConns),
		"--export-concurrency", strconv.Itoa(c.ExportConcurrency),
		"--export-queue", strconv.Itoa(c.ExportQueue),
		"--export-queue-wait", c.ExportQueueWait.String(),
		"--export-dir", c.ExportDir,
		"--export-lock-ttl", c.ExportLockTTL.String(),
		"--export-jobs-running", strconv.Itoa(c.ExportJobsRunning),
		"--filter-max-string-bytes", strconv.Itoa(c.FilterLimits.MaxStringBytes),
		"--filter-max-pattern-chars", strconv.Itoa(c.FilterLimits.MaxPatternChars),
		"--filter-max-conditions", strconv.Itoa(c.FilterLimits.MaxConditions),
		"--filter-max-pattern-work", strconv.Itoa(c.FilterLimits.MaxPatternWork),
		"--filter-max-terms", strconv.Itoa(c.FilterLimits.MaxTerms),
	}
}

// Topic returns the full name of a topic from its suffix ("events",
// "cdc.customers", "dlq", …).
func (c *Config) Topic(suffix string) string { return c.TopicPrefix + suffix }
