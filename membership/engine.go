// Package membership keeps, for every customer, the saved segments and
// smart-tag rules it belongs to (CONTRACT §4.2), and publishes every
// change of them on the membership topic.
//
// Evaluation is OpenSearch's: after the indexer writes documents, one
// search over those documents (an ids query) with a filters aggregation,
// one filter per definition, tells which of them match which definition,
// the way the 360 view always did. There is no evaluator of filters in
// process, so package query's test evaluator (querytest) stays an
// independent oracle.
//
// Stored membership: one document per customer in the membership index
// (mapping.Membership), with the segments and rules it belongs to, its
// manual tags, and a version moved on by every write. A change is made
// crash-safe in three steps: the new membership is written together with
// the records of its flips (pending), the records are published, and
// then removed from pending. A process that dies between the steps leaves
// them pending; they are published again, with the same message ids, by
// the next evaluation of that customer or by Republish.
//
// Manual tags live in the membership document too, not in the customer
// document: the indexer rebuilds documents from the row store, and reads
// a customer's tags (manual ∪ rules) from here at every rebuild (TagsOf),
// so a rebuild never loses them.
package membership

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"cdp/catalog"
	"cdp/config"
	"cdp/mapping"
	"cdp/query"
	"cdp/store"
)

// TopicSuffix is the membership topic's suffix: its name is the topic
// prefix plus it (CONTRACT §4.2).
const TopicSuffix = "segment-membership"

// Causes of a membership change.
const (
	CauseChange     = "change"
	CauseDefinition = "definition"
)

// Record is one published membership change.
type Record struct {
	MessageID  string `json:"message_id"`
	Type       string `json:"type"` // entered or exited
	Kind       string `json:"kind"`
	ID         string `json:"id"`
	CustomerID string `json:"customer_id"`
	At         string `json:"at"`
	Cause      string `json:"cause"`
}

// State is a customer's stored membership.
type State struct {
	CustomerID   string   `json:"customer_id"`
	Segments     []string `json:"segments"`
	Rules        []string `json:"rules"`
	Manual       []string `json:"manual"`
	Version      int64    `json:"version"`
	Pending      []Record `json:"pending"`
	PendingCount int      `json:"pending_count"`
	// NextAt is the next instant a rolling window can change the
	// customer's membership (clock.go); empty when none can.
	NextAt    string `json:"next_at,omitempty"`
	UpdatedAt string `json:"updated_at"`
}

// Tags is the customer document's tags: manual tags and matched rules.
func (s *State) Tags() []string {
	out := append(append([]string{}, s.Manual...), s.Rules...)
	slices.Sort(out)
	return slices.Compact(out)
}

// Publisher sends records to Kafka (a sarama.SyncProducer).
type Publisher interface {
	SendMessages(msgs []*sarama.ProducerMessage) error
}

// Config is what the engine needs of the deployment's configuration.
type Config struct {
	// Index aliases: customer documents, saved segments, tag rules,
	// stored membership, definition sweeps under way, the field catalog.
	Customers, Events, Segments, Rules, States, Sweeps, Fields string
	// Topic is the membership topic's full name.
	Topic    string
	Location *time.Location
	Limits   query.Limits
}

// ConfigOf derives the engine's configuration from the deployment's.
func ConfigOf(cfg *config.Config) Config {
	p := cfg.IndexPrefix
	return Config{
		Customers: mapping.Customers.Alias(p), Events: mapping.Events.Alias(p), Segments: mapping.Segments.Alias(p), Rules: mapping.Tags.Alias(p),
		States: mapping.Membership.Alias(p), Sweeps: mapping.MembershipSweeps.Alias(p), Fields: mapping.Fields.Alias(p),
		Topic: cfg.Topic(TopicSuffix), Location: cfg.Location, Limits: cfg.FilterLimits,
	}
}

// Engine evaluates, stores and publishes membership.
type Engine struct {
	// sweeps are the definition sweeps running in the background
	// (RedefineLater); stop cancels them, on Close.
	sweeps sync.WaitGroup
	base   context.Context
	stop   context.CancelFunc

	cache  defCache
	cfg    Config
	st     *store.Client
	pub    Publisher
	fields *catalog.Registry
	log    *slog.Logger
	m      *metrics
	kill   *killHook // a test hook (KillBeforePublishEnv); nil in service
}

type metrics struct {
	flips      *prometheus.CounterVec
	evaluated  prometheus.Counter
	evalSplits prometheus.Counter
	seconds    *prometheus.HistogramVec
}

// New returns an engine; reg receives its metrics (wrap it with a
// component label when two engines share a registry).
func New(cfg Config, st *store.Client, pub Publisher, reg prometheus.Registerer, log *slog.Logger) *Engine {
	m := &metrics{
		flips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdp_membership_flips_total",
			Help: "Membership changes published, by kind, type and cause."}, []string{"kind", "type", "cause"}),
		evaluated: prometheus.NewCounter(prometheus.CounterOpts{Name: "cdp_membership_evaluated_customers_total",
			Help: "Customers evaluated against every definition."}),
		evalSplits: prometheus.NewCounter(prometheus.CounterOpts{Name: "cdp_membership_eval_splits_total",
			Help: "Evaluation searches refused for too many buckets and split in half."}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cdp_membership_seconds",
			Help: "Time of membership work, by operation.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"op"}),
	}
	reg.MustRegister(m.flips, m.evaluated, m.evalSplits, m.seconds)
	base, stop := context.WithCancel(context.Background())
	return &Engine{cfg: cfg, st: st, pub: pub, fields: catalog.New(st, cfg.Fields), log: log, m: m, base: base, stop: stop,
		kill: newKillHook(log)}
}

// messageID is the record's id: the same for a redelivery of the same
// change, different for every change (the version moves on with each).
func messageID(cid string, k Key, typ string, version int64) string {
	h := sha256.New()
	for _, s := range []string{cid, k.Kind, k.ID, typ, strconv.FormatInt(version, 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// stateRead is a stored state and where it stood when read.
type stateRead struct {
	state State
	at    *store.SeqTerm // nil: no document
}

// states reads the stored membership of customers, realtime.
func (e *Engine) states(ctx context.Context, cids []string) (map[string]*stateRead, error) {
	out := make(map[string]*stateRead, len(cids))
	for chunk := range slices.Chunk(cids, 1000) {
		docs, err := e.st.Mget(ctx, e.cfg.States, chunk)
		if err != nil {
			return nil, fmt.Errorf("membership: read states: %w", err)
		}
		for _, d := range docs {
			r := &stateRead{}
			if err := d.Decode(&r.state); err != nil {
				return nil, err
			}
			if d.SeqNo != nil && d.PrimaryTerm != nil {
				r.at = &store.SeqTerm{SeqNo: *d.SeqNo, PrimaryTerm: *d.PrimaryTerm}
			}
			out[d.ID] = r
		}
	}
	for _, cid := range cids {
		if out[cid] == nil {
			out[cid] = &stateRead{state: State{CustomerID: cid}}
		}
	}
	return out, nil
}

// TagsOf reads the tags customers' documents carry: their manual tags and
// the rules they matched when last evaluated. A customer without stored
// membership has none.
//
// merged maps survivors to the profiles merged into them, whose manual
// tags they carry from the rebuild that materializes the merge on.
func (e *Engine) TagsOf(ctx context.Context, cids []string, merged map[string][]string) (map[string][]string, error) {
	sts, err := e.states(ctx, withMerged(cids, merged))
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(cids))
	for _, cid := range cids {
		s := sts[cid].state
		s.Manual = absorbed(s.Manual, merged[cid], sts)
		out[cid] = s.Tags()
	}
	return out, nil
}

// State reads one customer's stored membership (zero when there is none).
func (e *Engine) State(ctx context.Context, cid string) (State, error) {
	sts, err := e.states(ctx, []string{cid})
	if err != nil {
		return State{}, err
	}
	return sts[cid].state, nil
}

// SegmentsOf lists the saved segments the customer's document matches
// now, their current filters evaluated live (what a {"segment": id} node
// means), in one search. It serves the 360 view: the parsed filters are
// cached, so it costs one search, and unlike stored membership it is
// never behind a definition's sweep.
func (e *Engine) SegmentsOf(ctx context.Context, cid string) ([]string, error) {
	defs, err := e.definitions(ctx, time.Now().Truncate(time.Second))
	if err != nil {
		return nil, err
	}
	segs := slices.DeleteFunc(defs, func(d definition) bool { return d.key.Kind != KindSegment })
	in, err := e.evaluate(ctx, []string{cid}, segs)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, d := range segs {
		if in[cid][d.key] {
			out = append(out, d.key.ID)
		}
	}
	return out, nil
}

// An evaluation search counts a bucket for every definition and every
// (definition, matching customer) pair, under OpenSearch's
// search.max_buckets (65,535). evalBuckets is the budget a chunk of
// customers is sized by in the worst case (every customer matching
// every definition); most definitions match few of a chunk's customers,
// so a chunk starts at up to maxEvalChunk customers and is halved when
// OpenSearch refuses it for too many buckets, down to that worst case,
// which always fits. A search's cost is mostly its definitions', not
// its customers', so few large chunks cost far less than many small.
const (
	evalBuckets  = 50_000
	maxEvalChunk = 2_000
)

// evaluate says which definitions each customer's document matches now.
// A customer without a document matches none.
func (e *Engine) evaluate(ctx context.Context, cids []string, defs []definition) (map[string]map[Key]bool, error) {
	defer e.m.since("evaluate", time.Now())
	out := make(map[string]map[Key]bool, len(cids))
	for _, cid := range cids {
		out[cid] = map[Key]bool{}
	}
	filters := map[string]any{}
	for i, d := range defs {
		if d.query != nil {
			filters[strconv.Itoa(i)] = d.query
		}
	}
	if len(filters) == 0 || len(cids) == 0 {
		return out, nil
	}
	safe := max(1, evalBuckets/(len(filters)+1))
	size := max(safe, min(maxEvalChunk, len(cids)))
	for start := 0; start < len(cids); {
		chunk := cids[start:min(start+size, len(cids))]
		err := e.evalChunk(ctx, chunk, filters, defs, out)
		if err != nil && size > safe && store.HasCause(err, "too_many_buckets_exception") {
			size = max(safe, size/2)
			e.m.evalSplits.Inc()
			continue
		}
		if err != nil {
			return nil, err
		}
		start += len(chunk)
	}
	e.m.evaluated.Add(float64(len(cids)))
	return out, nil
}

// evalChunk evaluates the filters on the customers of chunk into out.
func (e *Engine) evalChunk(ctx context.Context, chunk []string, filters map[string]any, defs []definition, out map[string]map[Key]bool) error {
	body := map[string]any{"size": 0, "query": map[string]any{"ids": map[string]any{"values": chunk}},
		"aggs": map[string]any{"defs": map[string]any{"filters": map[string]any{"filters": filters},
			// map: from the values of the chunk's documents alone, not
			// the global ordinals of every customer id of the index,
			// which each refresh makes anew.
			"aggs": map[string]any{"who": map[string]any{"terms": map[string]any{"field": "customer_id", "size": len(chunk), "execution_hint": "map"}}}}}}
	r, err := e.st.Search(ctx, e.cfg.Customers, body)
	if err != nil {
		return fmt.Errorf("membership: evaluate: %w", err)
	}
	var aggs struct {
		Defs struct {
			Buckets map[string]struct {
				Who struct {
					Buckets []struct {
						Key string `json:"key"`
					} `json:"buckets"`
				} `json:"who"`
			} `json:"buckets"`
		} `json:"defs"`
	}
	if err := json.Unmarshal(r.Aggregations, &aggs); err != nil {
		return fmt.Errorf("membership: evaluate: %w", err)
	}
	for name, b := range aggs.Defs.Buckets {
		i, err := strconv.Atoi(name)
		if err != nil || i < 0 || i >= len(defs) {
			continue
		}
		for _, w := range b.Who.Buckets {
			if m := out[w.Key]; m != nil {
				m[defs[i].key] = true
			}
		}
	}
	return nil
}

func (m *metrics) since(op string, t time.Time) {
	m.seconds.WithLabelValues(op).Observe(time.Since(t).Seconds())
}

// Changed re-evaluates customers whose documents were just written (or
// deleted) against every definition, stores what flipped, updates the
// documents' tags for rules, and publishes every flip with cause change.
// It is idempotent: run again, it finds nothing new to flip and publishes
// again only what is still pending.
// merges are the OneID merges among them (cause merge).
//
// It refreshes the customers index before evaluating, unless nothing can
// flip and no manual tags move; searchable says it did, so that a caller
// that wants the documents searchable now need not refresh them again.
func (e *Engine) Changed(ctx context.Context, cids []string, merges Merges) (searchable bool, err error) {
	return e.changed(ctx, cids, CauseChange, time.Now(), merges)
}

// changed is Changed with the cause of the flips and the instant the
// windows end at.
func (e *Engine) changed(ctx context.Context, cids []string, cause string, now time.Time, merges Merges) (searchable bool, err error) {
	if len(cids) == 0 {
		return false, nil
	}
	defer e.m.since("changed", time.Now())
	defs, err := e.definitions(ctx, now)
	if err != nil {
		return false, err
	}
	if len(defs) == 0 && len(merges.Absorb) == 0 {
		// Nothing can flip, and no manual tags move to a survivor: the
		// refresh below (a new segment of the customers index each round)
		// would be all this did.
		return false, nil
	}
	if err := e.st.Refresh(ctx, e.cfg.Customers); err != nil {
		return false, fmt.Errorf("membership: refresh documents: %w", err)
	}
	inDefs := make(map[Key]bool, len(defs))
	for _, d := range defs {
		inDefs[d.key] = true
	}
	// A definition deleted or created meanwhile is left to its own sweep
	// (Redefine), which publishes with cause definition.
	scope := func(k Key) bool { return inDefs[k] }
	// A rule's flip changes the document's tags, which a segment or rule
	// may filter on: those customers go round again, a few rounds at most.
	for round := 0; round < 3 && len(cids) > 0; round++ {
		want, err := e.evaluate(ctx, cids, defs)
		if err != nil {
			return true, err
		}
		next, err := e.nextAt(ctx, cids, defs, now)
		if err != nil {
			return true, err
		}
		retagged, err := e.apply(ctx, cids, want, next, scope, cause, now, merges)
		if err != nil {
			return true, err
		}
		if len(retagged) > 0 {
			if err := e.st.Refresh(ctx, e.cfg.Customers); err != nil {
				return true, fmt.Errorf("membership: refresh documents: %w", err)
			}
		}
		cids = retagged
	}
	return true, nil
}

// maxConflictRounds bounds how often apply re-reads a state another
// writer changed between its read and its write.
const maxConflictRounds = 5

// apply stores, for the customers, membership in the definitions in scope
// as want says (the rest as stored), with the records of every flip, and
// their next instants as next says (nil: as stored);
// writes the documents' tags where rules flipped; and publishes every
// pending record. It returns the customers whose tags changed.
func (e *Engine) apply(ctx context.Context, cids []string, want map[string]map[Key]bool, next map[string]time.Time, scope func(Key) bool, cause string, now time.Time, merges Merges) (retagged []string, err error) {
	at := now.UTC().Format(time.RFC3339Nano)
	var toPublish []Record
	// Once every survivor's state holds the manual tags of the profiles
	// merged into it, theirs are cleared.
	var absorbedFrom []string
	for _, cid := range cids {
		absorbedFrom = append(absorbedFrom, merges.Absorb[cid]...)
	}
	for round := 0; len(cids) > 0; round++ {
		if round == maxConflictRounds {
			return nil, fmt.Errorf("membership: %d states kept changing under writes, e.g. %s", len(cids), cids[0])
		}
		sts, err := e.states(ctx, withMerged(cids, merges.Absorb))
		if err != nil {
			return nil, err
		}
		var ops []store.Op
		var opCids []string
		tagsOf := map[string][]string{}
		for _, cid := range cids {
			r := sts[cid]
			c := cause
			if merges.Cause[cid] {
				c = CauseMerge
			}
			ns, flips := flip(r.state, want[cid], scope, c, at)
			manual := absorbed(r.state.Manual, merges.Absorb[cid], sts)
			if !slices.Equal(manual, r.state.Manual) {
				ns.Manual = manual
				tagsOf[cid] = ns.Tags()
			}
			if next != nil {
				ns.NextAt = ""
				if t, ok := next[cid]; ok {
					ns.NextAt = t.UTC().Format(time.RFC3339Nano)
				}
			}
			if len(flips) == 0 && ns.NextAt == r.state.NextAt && tagsOf[cid] == nil {
				toPublish = append(toPublish, r.state.Pending...)
				continue
			}
			if len(flips) == 0 {
				ns.Version = r.state.Version + 1
				ns.UpdatedAt = at
			}
			op := store.Op{Action: store.Index, Index: e.cfg.States, ID: cid, Body: ns, IfAbsent: r.at == nil, IfMatch: r.at}
			ops = append(ops, op)
			opCids = append(opCids, cid)
			if !slices.Equal(ns.Rules, r.state.Rules) {
				tagsOf[cid] = ns.Tags()
			}
		}
		if len(ops) == 0 {
			break
		}
		verdicts, err := e.st.Bulk(ctx, ops)
		if err != nil {
			return nil, fmt.Errorf("membership: write states: %w", err)
		}
		var again []string
		for i, v := range verdicts {
			switch store.Judge(ops[i], v) {
			case store.Applied:
				st := ops[i].Body.(State)
				e.kill.stored(st, e.log)
				toPublish = append(toPublish, st.Pending...)
				if t, ok := tagsOf[opCids[i]]; ok {
					if err := e.retag(ctx, opCids[i], t); err != nil {
						return nil, err
					}
					retagged = append(retagged, opCids[i])
				}
			case store.Stale:
				again = append(again, opCids[i])
			default:
				return nil, fmt.Errorf("membership: write state of %s: %w", opCids[i], v.Err())
			}
		}
		cids = again
	}
	if err := e.clearAbsorbed(ctx, absorbedFrom); err != nil {
		return nil, err
	}
	return retagged, e.publish(ctx, toPublish)
}

// CauseMerge is the cause of the flips a OneID merge made: of the
// survivor, and of the profiles merged into it, which leave everything.
const CauseMerge = "merge"

// Merges are the OneID merges a batch of rebuilds materialized.
type Merges struct {
	// Absorb maps a survivor to the profiles merged into it, whose manual
	// tags it takes (CONTRACT §6).
	Absorb map[string][]string
	// Cause are the customers whose flips the merges caused.
	Cause map[string]bool
}

// withMerged is cids and the profiles merged into them.
func withMerged(cids []string, absorb map[string][]string) []string {
	if len(absorb) == 0 {
		return cids
	}
	out := append([]string{}, cids...)
	for _, cid := range cids {
		for _, m := range absorb[cid] {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// absorbed is a survivor's manual tags with those of the profiles merged
// into it.
func absorbed(manual, merged []string, sts map[string]*stateRead) []string {
	out := append([]string{}, manual...)
	for _, m := range merged {
		if r := sts[m]; r != nil {
			out = append(out, r.state.Manual...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// clearAbsorbed removes the manual tags of merged-away profiles once
// their survivor holds them, so that removing one from the survivor
// removes it for good. They are read afresh: the same batch may have just
// written them (their exits). Until cleared, they are absorbed again at
// the survivor's next rebuild, a union, so a crash in between is harmless.
func (e *Engine) clearAbsorbed(ctx context.Context, merged []string) error {
	return e.dropManual(ctx, merged, func(string) bool { return true })
}

// dropManual removes from the stored manual tags of the customers those
// drop says, re-reading a state another writer changed meanwhile.
func (e *Engine) dropManual(ctx context.Context, cids []string, drop func(tag string) bool) error {
	for round := 0; len(cids) > 0; round++ {
		if round == maxConflictRounds {
			return fmt.Errorf("membership: manual tags of %s kept changing under writes", cids[0])
		}
		sts, err := e.states(ctx, cids)
		if err != nil {
			return err
		}
		var ops []store.Op
		for _, cid := range cids {
			r := sts[cid]
			if r.at == nil {
				continue
			}
			kept := slices.DeleteFunc(slices.Clone(r.state.Manual), drop)
			if len(kept) == len(r.state.Manual) {
				continue
			}
			s := r.state
			s.Manual = kept
			s.Version++
			ops = append(ops, store.Op{Action: store.Index, Index: e.cfg.States, ID: cid, Body: s, IfMatch: r.at})
		}
		if len(ops) == 0 {
			return nil
		}
		verdicts, err := e.st.Bulk(ctx, ops)
		if err != nil {
			return fmt.Errorf("membership: write manual tags: %w", err)
		}
		cids = cids[:0:0]
		for i, v := range verdicts {
			switch store.Judge(ops[i], v) {
			case store.Applied:
			case store.Stale:
				cids = append(cids, ops[i].ID)
			default:
				return fmt.Errorf("membership: write manual tags of %s: %w", ops[i].ID, v.Err())
			}
		}
	}
	return nil
}

// flip computes a state's next version from what the customer matches
// now: the definitions in scope as want says, the others as stored.
func flip(s State, want map[Key]bool, scope func(Key) bool, cause, at string) (State, []Record) {
	next := s
	next.CustomerID = s.CustomerID
	next.Version = s.Version + 1
	var flips []Record
	diff := func(kind string, old []string) []string {
		var out []string
		had := map[string]bool{}
		for _, id := range old {
			had[id] = true
			k := Key{kind, id}
			if !scope(k) || want[k] {
				out = append(out, id)
				continue
			}
			flips = append(flips, Record{MessageID: messageID(s.CustomerID, k, "exited", next.Version), Type: "exited",
				Kind: kind, ID: id, CustomerID: s.CustomerID, At: at, Cause: cause})
		}
		for k, in := range want {
			if k.Kind != kind || !in || had[k.ID] || !scope(k) {
				continue
			}
			out = append(out, k.ID)
			flips = append(flips, Record{MessageID: messageID(s.CustomerID, k, "entered", next.Version), Type: "entered",
				Kind: kind, ID: k.ID, CustomerID: s.CustomerID, At: at, Cause: cause})
		}
		slices.Sort(out)
		return out
	}
	next.Segments = diff(KindSegment, s.Segments)
	next.Rules = diff(KindTag, s.Rules)
	if len(flips) == 0 {
		return s, nil
	}
	slices.SortFunc(flips, func(a, b Record) int {
		if c := cmpStr(a.Kind, b.Kind); c != 0 {
			return c
		}
		return cmpStr(a.ID, b.ID)
	})
	next.Pending = append(append([]Record{}, s.Pending...), flips...)
	next.PendingCount = len(next.Pending)
	next.UpdatedAt = at
	return next, flips
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// retag writes a customer document's tags, those of its state as just
// stored, then reads the state again and, while the state's tags are not
// what it wrote, writes those. Two processes may evaluate one customer at
// once (the leader's time tick and the owner's rebuild), and their tag
// writes, unconditional updates, may land in either order; but each one
// checks the state after its own write has landed, so the writer of the
// newest state, or any writer whose write landed after it, finds the
// document behind and puts the newest tags there. Without the check the
// document could keep an older process's tags until its next rebuild.
// A document deleted meanwhile is fine: it has no tags to keep.
func (e *Engine) retag(ctx context.Context, cid string, tags []string) error {
	for round := 0; ; round++ {
		if round == maxConflictRounds {
			return fmt.Errorf("membership: tags of %s kept changing under writes", cid)
		}
		op := store.Op{Action: store.Update, Index: e.cfg.Customers, ID: cid, RetryOnConflict: 3,
			Body: map[string]any{"doc": map[string]any{"tags": tags}}}
		v, err := e.st.Bulk(ctx, []store.Op{op})
		if err != nil {
			return fmt.Errorf("membership: tags of %s: %w", cid, err)
		}
		if v[0].Status == 404 {
			return nil
		}
		if !v[0].OK() {
			return fmt.Errorf("membership: tags of %s: %w", cid, v[0].Err())
		}
		s, err := e.State(ctx, cid)
		if err != nil {
			return err
		}
		now := s.Tags()
		if slices.Equal(now, tags) {
			return nil
		}
		tags = now
	}
}

// publish sends records, then removes them from their states' pending.
func (e *Engine) publish(ctx context.Context, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	defer e.m.since("publish", time.Now())
	msgs := make([]*sarama.ProducerMessage, 0, len(recs))
	byCustomer := map[string][]string{}
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: e.cfg.Topic, Key: sarama.StringEncoder(r.CustomerID), Value: sarama.ByteEncoder(b)})
		byCustomer[r.CustomerID] = append(byCustomer[r.CustomerID], r.MessageID)
	}
	if err := e.pub.SendMessages(msgs); err != nil {
		return fmt.Errorf("membership: publish: %w", err)
	}
	for _, r := range recs {
		e.m.flips.WithLabelValues(r.Kind, r.Type, r.Cause).Inc()
	}
	ops := make([]store.Op, 0, len(byCustomer))
	for cid, ids := range byCustomer {
		ops = append(ops, store.Op{Action: store.Update, Index: e.cfg.States, ID: cid, RetryOnConflict: 5,
			Body: map[string]any{"script": map[string]any{"lang": "painless",
				"source": "if (ctx._source.pending == null) { ctx.op = 'noop'; return; } " +
					"ctx._source.pending.removeIf(r -> params.ids.contains(r.message_id)); " +
					"ctx._source.pending_count = ctx._source.pending.size();",
				"params": map[string]any{"ids": ids}}}})
	}
	verdicts, err := e.st.Bulk(ctx, ops)
	if err != nil {
		return fmt.Errorf("membership: mark published: %w", err)
	}
	for i, v := range verdicts {
		if !v.OK() && v.Status != 404 {
			// Published but still pending: published again later, with
			// the same message ids.
			e.log.Warn("membership: could not mark records published", "customer_id", ops[i].ID, "err", v.Err())
		}
	}
	return nil
}

// Republish publishes every record still pending: those of a process
// that stopped between storing a change and publishing it.
func (e *Engine) Republish(ctx context.Context) (int, error) {
	if err := e.st.Refresh(ctx, e.cfg.States); err != nil {
		return 0, err
	}
	scan := store.Scan{Body: map[string]any{"query": map[string]any{"range": map[string]any{"pending_count": map[string]any{"gt": 0}}},
		"sort": []any{map[string]any{"customer_id": "asc"}}}, PageSize: 500}
	n := 0
	for page, err := range e.st.Pages(ctx, e.cfg.States, scan) {
		if err != nil {
			return n, err
		}
		var recs []Record
		for _, h := range page.Hits {
			var s State
			if err := h.Decode(&s); err != nil {
				return n, err
			}
			recs = append(recs, s.Pending...)
		}
		if err := e.publish(ctx, recs); err != nil {
			return n, err
		}
		n += len(recs)
	}
	return n, nil
}
