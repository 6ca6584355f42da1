# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash

# The real services `make deps-up` starts; tests and the service read these.
export CDP_OPENSEARCH_URL ?= http://127.0.0.1:9200
export CDP_KAFKA_BROKERS ?= 127.0.0.1:9092
export CDP_REDIS_ADDR ?= 127.0.0.1:6379

GO ?= go
GOTEST_FLAGS ?= -race -count=1 -timeout 25m

.PHONY: run test build deps-up deps-down deps-status lint unit

## run: start the services if needed, the indexer and the API, load the demo dataset
run: deps-up build
	@scripts/run.sh

## test: lint while the services start (go vet compiles while deps.sh downloads and boots
## them), then unit and integration tests with -race; then a race-free pass of the tests
## at their issues' acceptance sizes, which take minutes under the race detector (the
## OneID batching test feeds 60,000 messages one a batch, the streaming export writes
## 200,000 members; under -race the export runs at 20,000); short fuzzing runs (FUZZTIME
## each) of the filter parser and of both wire decoders (go test -fuzz takes one target
## per run); and the chaos suite (it stops and starts the services through
## scripts/deps.sh, so it runs alone, after everything else)
test: lint-while-deps-up
	$(GO) test $(GOTEST_FLAGS) ./...
	$(GO) test -count=1 -timeout 25m -run '^(TestAStreamOfTenThousandPeople|TestAnExportWritesEveryMemberExactlyOnceWhileMembersChange$$)' ./testing/e2e/ ./api/
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(or $(FUZZTIME),40000x) ./query
	$(GO) test -run='^$$' -fuzz='^FuzzParseChange$$' -fuzztime=$(or $(FUZZTIME),100000x) ./wire
	$(GO) test -run='^$$' -fuzz='^FuzzParseEvent$$' -fuzztime=$(or $(FUZZTIME),100000x) ./wire
	CDP_CHAOS=1 $(GO) test -race -count=1 -p 1 -timeout 20m -v ./testing/chaos/

# lint-while-deps-up: both, at once; fails if either does (deps.sh mostly
# waits on downloads and the JVMs' start, go vet on the compiler).
.PHONY: lint-while-deps-up
lint-while-deps-up:
	@scripts/deps.sh up & up=$$!; lint=0; $(MAKE) --no-print-directory lint || lint=$$?; wait $$up && exit $$lint

# Fuzzing budgets are counts of executions (about 7 s each here), not
# durations: a duration races Go's fuzz coordinator at its deadline and
# fails a run that found nothing ("context deadline exceeded", golang/go
# #51484; it failed FuzzParseEvent in a CI run). FUZZTIME=30s or =1000000x
# sets all three.
FUZZTIME ?=

## unit: the tests that need no service
unit:
	$(GO) test -short -race -count=1 ./...

build:
	$(GO) build -o bin/cdp ./cmd/cdp

deps-up:
	@scripts/deps.sh up

deps-down:
	@scripts/deps.sh down

deps-status:
	@scripts/deps.sh status

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null)); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# ---- benchmarks (cmd/bench): the service against OpenSearch's own limit, side by side.
.PHONY: bench bench-quick
BENCH_CUSTOMERS ?= 100000
BENCH_FLAGS ?=

## bench: BENCH_CUSTOMERS customers (1000000 is the full run); writes out/bench-*.json and docs/benchmarks.md
bench: deps-up build
	$(GO) build -o bin/bench ./cmd/bench
	bin/bench -customers $(BENCH_CUSTOMERS) -command "make bench BENCH_CUSTOMERS=$(BENCH_CUSTOMERS)" $(BENCH_FLAGS)

## bench-quick: the pull-request check, under 5 minutes: 10,000 customers, shorter measuring windows (1 s and at least 60 requests per query shape, 3 s per load-ramp step) and only the 1,000-definition membership step the goal is judged at
bench-quick: deps-up build
	$(GO) build -o bin/bench ./cmd/bench
	bin/bench -customers 10000 -query-duration 1s -query-min-n 60 -fresh-duration 15s -export-rounds 3 -ramp-step-duration 3s -ramp-warmup 500ms -membership-levels 1000 -command "make bench-quick" $(BENCH_FLAGS)
