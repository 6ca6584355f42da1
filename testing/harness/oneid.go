package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"testing"
	"time"

	"cdp/config"
	"cdp/customer"
	"cdp/identity"
	"cdp/mapping"
	"cdp/store"
	"cdp/testing/workload"
)

// OneIDState is who is whom in the service now, in the form of the OneID
// model's people (workload.OneIDPerson): one person per live customer
// document, named by workload.OneIDKey of its identities.
type OneIDState struct {
	People map[string]workload.OneIDPerson
	// CustomerIDs maps person keys to customer ids.
	CustomerIDs map[string]string
	// Problems are what cannot be put in that form: two documents of one
	// person, two CRM rows on one customer, items a document lacks.
	Problems []string
}

// ReadOneID reads every customer document with what OneID and the row
// store say of it: its identities, orders and last seen from the document;
// its CRM customers row and the live items of its orders from the row
// store; its events' message ids from the events index; its merged_ids
// and conflicts from its person (the people index). Blocked values are
// not read (the service keeps them as data only), and a deleted CRM
// customer has no document; compare with OneIDComparable of the model.
func (e *Env) ReadOneID(ctx context.Context, cfg *config.Config) (*OneIDState, error) {
	st, err := store.New(e.OpenSearchURL)
	if err != nil {
		return nil, err
	}
	p := cfg.IndexPrefix
	customers, events, rows, people := mapping.Customers.Alias(p), mapping.Events.Alias(p), mapping.Rows.Alias(p), mapping.People.Alias(p)
	if err := st.Refresh(ctx, customers, events, rows, people); err != nil {
		return nil, err
	}
	s := &OneIDState{People: map[string]workload.OneIDPerson{}, CustomerIDs: map[string]string{}}

	persons := map[string]identity.Person{}
	err = scan(ctx, st, people, "customer_id", nil, func(id string, per identity.Person) error {
		persons[id] = per
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("people: %w", err)
	}
	crmRow := map[string]string{}  // customer id → its CRM row's key
	items := map[string][]string{} // order id → live item keys
	err = scan(ctx, st, rows, "rid", map[string]any{"bool": map[string]any{
		"filter":   []any{map[string]any{"terms": map[string]any{"kind": []string{customer.KindCustomer, customer.KindItem}}}},
		"must_not": []any{map[string]any{"term": map[string]any{"deleted": true}}},
	}}, func(_ string, r customer.Row) error {
		switch r.Kind {
		case customer.KindItem:
			items[r.OrderID] = append(items[r.OrderID], r.Key)
		case customer.KindCustomer:
			if other, dup := crmRow[r.CustomerID]; dup {
				s.Problems = append(s.Problems, fmt.Sprintf("customer %s holds two CRM rows: %s and %s", r.CustomerID, other, r.Key))
			}
			crmRow[r.CustomerID] = r.Key
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	eventsOf := map[string][]string{} // customer id → message ids
	err = scan(ctx, st, events, "event_id", nil, func(_ string, ev struct {
		EventID    string `json:"event_id"`
		CustomerID string `json:"customer_id"`
	}) error {
		eventsOf[ev.CustomerID] = append(eventsOf[ev.CustomerID], ev.EventID)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}

	type doc struct {
		CustomerID string `json:"customer_id"`
		Identities []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"identities"`
		Orders []struct {
			OrderID string            `json:"order_id"`
			Items   []json.RawMessage `json:"items"`
		} `json:"orders"`
		Metrics struct {
			LastSeen string `json:"last_seen_at"`
		} `json:"metrics"`
	}
	err = scan(ctx, st, customers, "customer_id", nil, func(cid string, d doc) error {
		person := workload.OneIDPerson{Customer: crmRow[cid], Events: eventsOf[cid]}
		for _, id := range d.Identities {
			person.Identities = append(person.Identities, id.Type+":"+id.Value)
		}
		for _, o := range d.Orders {
			person.Orders = append(person.Orders, o.OrderID)
			person.Items = append(person.Items, items[o.OrderID]...)
			if len(o.Items) != len(items[o.OrderID]) {
				s.Problems = append(s.Problems, fmt.Sprintf("customer %s: order %s lists %d items, the row store has %d", cid, o.OrderID, len(o.Items), len(items[o.OrderID])))
			}
		}
		if d.Metrics.LastSeen != "" {
			t, err := time.Parse(time.RFC3339Nano, d.Metrics.LastSeen)
			if err != nil {
				return fmt.Errorf("customer %s: last_seen_at: %w", cid, err)
			}
			person.LastSeen = t.UTC()
		}
		per, ok := persons[cid]
		switch {
		case !ok:
			s.Problems = append(s.Problems, fmt.Sprintf("customer %s has a document but no person", cid))
		case per.MergedInto != "":
			s.Problems = append(s.Problems, fmt.Sprintf("customer %s has a document but was merged into %s", cid, per.MergedInto))
		}
		person.MergedAway, person.Conflicts = len(per.MergedIDs), len(per.Conflicts)
		for _, l := range [][]string{person.Identities, person.Orders, person.Items, person.Events} {
			sort.Strings(l)
		}
		person.Key = workload.OneIDKey(person.Identities)
		if other, dup := s.CustomerIDs[person.Key]; dup {
			s.Problems = append(s.Problems, fmt.Sprintf("%s has two documents: %s and %s", person.Key, other, cid))
			return nil
		}
		s.People[person.Key], s.CustomerIDs[person.Key] = person, cid
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("customers: %w", err)
	}
	return s, nil
}

// scan decodes every document of the index matching query (nil: all),
// sorted by a field unique per document, into f with its id.
func scan[T any](ctx context.Context, st *store.Client, index, sortBy string, query map[string]any, f func(id string, v T) error) error {
	if query == nil {
		query = map[string]any{"match_all": map[string]any{}}
	}
	pages := store.Scan{PageSize: 5000, Body: map[string]any{"sort": []any{map[string]any{sortBy: "asc"}}, "query": query}}
	for h, err := range st.Hits(ctx, index, pages) {
		if err != nil {
			return err
		}
		var v T
		if err := json.Unmarshal(h.Source, &v); err != nil {
			return fmt.Errorf("%s: %w", h.ID, err)
		}
		if err := f(h.ID, v); err != nil {
			return err
		}
	}
	return nil
}

// OneIDComparable is the model's people as ReadOneID can see them: a
// deleted CRM customer has no document, and blocked values are data the
// service does not list per person.
func OneIDComparable(people map[string]workload.OneIDPerson) map[string]workload.OneIDPerson {
	out := make(map[string]workload.OneIDPerson, len(people))
	for k, p := range people {
		if p.Deleted {
			continue
		}
		p.Blocked = nil
		p.LastSeen = p.LastSeen.UTC()
		out[k] = p
	}
	return out
}

// SplitAt runs the splits of one barrier through the API, and returns
// how many it ran.
func SplitAt(t testing.TB, base string, splits []workload.SplitAction, barrier int) (n int) {
	t.Helper()
	for _, s := range splits {
		if s.At != barrier {
			continue
		}
		if err := split(base, s); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// split runs one split: it finds the profile by an identity, which gives
// up the others: 201 with the new customer id, or an error.
func split(base string, s workload.SplitAction) error {
	q := url.Values{"type": {s.Profile.Type}, "value": {s.Profile.Value}}
	var view map[string]any
	code, err := call(http.MethodGet, base+"/v1/customers/lookup?"+q.Encode(), nil, &view)
	cid, _ := view["customer_id"].(string)
	if err != nil || code != http.StatusOK || cid == "" {
		return fmt.Errorf("split of %s: lookup answered %d %v (%v)", s.Profile, code, view, err)
	}
	ids := make([]map[string]string, len(s.Identities))
	for i, id := range s.Identities {
		ids[i] = map[string]string{"type": id.Type, "value": id.Value}
	}
	body, _ := json.Marshal(map[string]any{"identities": ids})
	var out map[string]any
	code, err = call(http.MethodPost, base+"/v1/customers/"+url.PathEscape(cid)+"/split", body, &out)
	if err != nil || code != http.StatusCreated || out["customer_id"] == nil {
		return fmt.Errorf("split of %v from %s (%s): %d %v (%v), want 201 with the new customer id", s.Identities, cid, s.Profile, code, out, err)
	}
	return nil
}

// call sends a request to the API (a JSON body when body is not nil,
// with the admin key of the process it goes to, if any) and decodes the JSON answer into out.
func call(method, target string, body []byte, out any) (int, error) {
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	Authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
}
