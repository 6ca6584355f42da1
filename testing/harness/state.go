package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"cdp/config"
	"cdp/mapping"
	"cdp/store"
	"cdp/testing/workload"
)

// State is what the service holds now: every customer document in its
// comparable form by person key, and the events index's count per person.
type State struct {
	Docs map[string]workload.Doc
	// CustomerIDs maps person keys to customer ids.
	CustomerIDs map[string]string
	// Events counts the stored events per person; events of customers
	// without a document are counted under "".
	Events      map[string]int
	EventsTotal int
	// Problems are documents that cannot be told apart or attributed.
	Problems []string
}

// ReadState reads every customer document and the event counts.
func (e *Env) ReadState(ctx context.Context, cfg *config.Config) (*State, error) {
	st, err := store.New(e.OpenSearchURL)
	if err != nil {
		return nil, err
	}
	customers, events := mapping.Customers.Alias(cfg.IndexPrefix), mapping.Events.Alias(cfg.IndexPrefix)
	if err := st.Refresh(ctx, customers, events); err != nil {
		return nil, err
	}
	s := &State{Docs: map[string]workload.Doc{}, CustomerIDs: map[string]string{}, Events: map[string]int{}}
	personOf, err := s.readDocs(ctx, st, customers)
	if err != nil {
		return nil, err
	}
	if err := s.countEvents(ctx, st, events, personOf); err != nil {
		return nil, err
	}
	return s, nil
}

// readDocs reads every customer document of the index into s.Docs by
// person key, and notes those that cannot be told apart or attributed. It
// returns the person key of each customer id it kept.
func (s *State) readDocs(ctx context.Context, st *store.Client, index string) (map[string]string, error) {
	personOf := map[string]string{}
	scan := store.Scan{PageSize: 5000, Body: map[string]any{"sort": []any{map[string]any{"customer_id": "asc"}}, "query": map[string]any{"match_all": map[string]any{}}}}
	for h, err := range st.Hits(ctx, index, scan) {
		if err != nil {
			return nil, err
		}
		var raw map[string]any
		if err := json.Unmarshal(h.Source, &raw); err != nil {
			return nil, fmt.Errorf("document %s: %w", h.ID, err)
		}
		d := workload.CanonicalDoc(raw)
		key, err := workload.PersonKey(d)
		if err != nil {
			s.Problems = append(s.Problems, fmt.Sprintf("document %s: %v", h.ID, err))
			continue
		}
		if other, dup := s.CustomerIDs[key]; dup {
			s.Problems = append(s.Problems, fmt.Sprintf("%s has two documents: %s and %s", key, other, h.ID))
			continue
		}
		s.Docs[key], s.CustomerIDs[key], personOf[h.ID] = d, h.ID, key
	}
	return personOf, nil
}

// eventCounts is one page of a composite aggregation of events by
// customer id.
type eventCounts struct {
	By struct {
		AfterKey map[string]any `json:"after_key"`
		Buckets  []struct {
			Key      map[string]any `json:"key"`
			DocCount int            `json:"doc_count"`
		} `json:"buckets"`
	} `json:"by"`
}

// countEvents counts the stored events of the index per person (personOf
// maps customer ids to person keys) and in all, a page of customer ids at
// a time.
func (s *State) countEvents(ctx context.Context, st *store.Client, index string, personOf map[string]string) error {
	var afterKey map[string]any
	for {
		comp := map[string]any{"size": 5000, "sources": []any{map[string]any{"cid": map[string]any{"terms": map[string]any{"field": "customer_id"}}}}}
		if afterKey != nil {
			comp["after"] = afterKey
		}
		body := map[string]any{"size": 0, "track_total_hits": true, "aggs": map[string]any{"by": map[string]any{"composite": comp}}}
		res, err := st.Search(ctx, index, body)
		if err != nil {
			return err
		}
		var aggs eventCounts
		if err := json.Unmarshal(res.Aggregations, &aggs); err != nil {
			return fmt.Errorf("event counts: %w", err)
		}
		s.EventsTotal = int(res.Total)
		for _, b := range aggs.By.Buckets {
			cid, _ := b.Key["cid"].(string)
			s.Events[personOf[cid]] += b.DocCount
		}
		if len(aggs.By.Buckets) < 5000 || aggs.By.AfterKey == nil {
			return nil
		}
		afterKey = aggs.By.AfterKey
	}
}

// Compare lists how the state differs from the model's expectation: the
// documents, and the number of stored events per person (each message id
// once) and in all.
func (s *State) Compare(m *workload.Model, limit int) ([]string, error) {
	want, err := m.Docs()
	if err != nil {
		return nil, err
	}
	out := append([]string{}, s.Problems...)
	out = append(out, workload.DiffDocs(want, s.Docs, limit)...)
	wantEvents := m.EventsPerPerson()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := s.Docs[k]; ok && s.Events[k] != wantEvents[k] {
			out = append(out, fmt.Sprintf("%s: %d events stored, want %d", k, s.Events[k], wantEvents[k]))
		}
	}
	if s.EventsTotal != m.EventCount() {
		out = append(out, fmt.Sprintf("%d events stored in all, want %d (one per message id)", s.EventsTotal, m.EventCount()))
	}
	if limit > 0 && len(out) > limit {
		out = append(out[:limit], fmt.Sprintf("… and %d more differences", len(out)-limit))
	}
	return out, nil
}

// VerifyState waits (up to timeout) until the service holds exactly what
// the model expects, and fails the test with the differences otherwise.
// It returns the state it saw.
func (e *Env) VerifyState(t testing.TB, cfg *config.Config, m *workload.Model, timeout time.Duration) *State {
	t.Helper()
	var state *State
	Eventually(t, timeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := e.ReadState(ctx, cfg)
		if err != nil {
			return false, err.Error()
		}
		state = s
		diff, err := s.Compare(m, 40)
		if err != nil {
			t.Fatal(err)
		}
		return len(diff) == 0, fmt.Sprintf("%d documents, %d events; differences from the expected state:\n%s",
			len(s.Docs), s.EventsTotal, strings.Join(diff, "\n"))
	})
	return state
}
