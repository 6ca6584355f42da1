// Package audit keeps the audit trail of CONTRACT §7: who looked at or
// changed what, and with what answer, in its own index, appended only.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"cdp/store"
)

// Record is one audited action.
type Record struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Role   string    `json:"role"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	Status int       `json:"status"`
	IP     string    `json:"ip"`
}

// Config tunes the batching of Log.
type Config struct {
	// Index is the audit index's alias (mapping.Audit).
	Index string
	// FlushEvery is how often batched records are written (1s when 0).
	FlushEvery time.Duration
	// MaxBatch writes a batch as soon as it holds this many (500 when 0).
	MaxBatch int
}

// Trail writes audit records: synchronously with Write, batched with Log.
type Trail struct {
	cfg  Config
	st   *store.Client
	log  *slog.Logger
	mu   sync.Mutex
	buf  []Record
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New starts a trail; Close flushes what is batched and stops it.
func New(cfg Config, st *store.Client, log *slog.Logger) *Trail {
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	t := &Trail{cfg: cfg, st: st, log: log, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go t.loop()
	return t
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Write stores one record before returning; an error means it is not
// stored (and the action it records must not go on).
func (t *Trail) Write(ctx context.Context, r Record) error {
	if err := t.st.Do(ctx, http.MethodPut, "/"+t.cfg.Index+"/_doc/"+newID()+"?op_type=create&require_alias=true", r, nil); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// Log queues one record for the next batch.
func (t *Trail) Log(r Record) {
	t.mu.Lock()
	t.buf = append(t.buf, r)
	full := len(t.buf) >= t.cfg.MaxBatch
	t.mu.Unlock()
	if full {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

func (t *Trail) loop() {
	defer close(t.done)
	tick := time.NewTicker(t.cfg.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-t.kick:
		case <-t.stop:
			t.Flush(context.Background())
			return
		}
		t.Flush(context.Background())
	}
}

// Flush writes the queued records; those that fail stay queued for the
// next flush.
func (t *Trail) Flush(ctx context.Context) {
	t.mu.Lock()
	batch := t.buf
	t.buf = nil
	t.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	ops := make([]store.Op, len(batch))
	for i, r := range batch {
		ops[i] = store.Op{Action: store.Index, Index: t.cfg.Index, ID: newID(), Body: r}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	verdicts, err := t.st.Bulk(ctx, ops)
	var failed []Record
	if err != nil {
		failed = batch
	} else {
		for i, v := range verdicts {
			if !v.OK() {
				failed = append(failed, batch[i])
			}
		}
	}
	if len(failed) > 0 {
		t.log.Warn("audit records not written; kept for the next flush", "records", len(failed), "err", err)
		t.mu.Lock()
		t.buf = append(failed, t.buf...)
		t.mu.Unlock()
	}
}

// Close flushes the queued records and stops the trail.
func (t *Trail) Close() {
	t.once.Do(func() { close(t.stop) })
	<-t.done
}

// Query selects records: by actor and action when not empty, since a
// time when not zero; newest first, size of them after cursor.
type Query struct {
	Actor, Action string
	Since         time.Time
	Size          int
	// After is the sort values of the last record of the previous page.
	After []json.RawMessage
}

// Find returns the records of q and the sort values of the last one.
func (t *Trail) Find(ctx context.Context, q Query) ([]Record, []json.RawMessage, error) {
	var must []any
	if q.Actor != "" {
		must = append(must, map[string]any{"term": map[string]any{"actor": q.Actor}})
	}
	if q.Action != "" {
		must = append(must, map[string]any{"term": map[string]any{"action": q.Action}})
	}
	if !q.Since.IsZero() {
		must = append(must, map[string]any{"range": map[string]any{"at": map[string]any{"gte": q.Since.UTC().Format(time.RFC3339Nano)}}})
	}
	body := map[string]any{"size": q.Size, "query": map[string]any{"bool": map[string]any{"filter": must}},
		"sort": []any{map[string]any{"at": "desc"}, map[string]any{"_id": "desc"}}}
	if len(q.After) > 0 {
		body["search_after"] = q.After
	}
	res, err := t.st.Search(ctx, t.cfg.Index, body)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Record, 0, len(res.Hits))
	var last []json.RawMessage
	for _, h := range res.Hits {
		var r Record
		if err := h.Decode(&r); err != nil {
			return nil, nil, err
		}
		out = append(out, r)
		last = h.Sort
	}
	return out, last, nil
}
