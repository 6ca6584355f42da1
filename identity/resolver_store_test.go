package identity

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"cdp/store"
)

// fakeIndex is an identity index in memory behind OpenSearch's _mget and
// _bulk (creates and overwrites), counting the round trips.
type fakeIndex struct {
	mu           sync.Mutex
	docs         map[string]record
	mgets, bulks int
	// rival runs before each bulk is applied: another writer's creates.
	rival func(docs map[string]record)
	// phantom keys answer every create as existing but are never found.
	phantom map[string]bool
}

func newFakeResolver(t *testing.T, f *fakeIndex) *Resolver {
	t.Helper()
	if f.docs == nil {
		f.docs = map[string]record{}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_mget"):
			f.mgets++
			var req struct{ IDs []string }
			if err := json.Unmarshal(body, &req); err != nil {
				t.Errorf("mget body %s: %v", body, err)
			}
			docs := []map[string]any{}
			for _, id := range req.IDs {
				rec, ok := f.docs[id]
				docs = append(docs, map[string]any{"_id": id, "found": ok, "_source": rec})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"docs": docs})
		case r.URL.Path == "/_bulk":
			f.bulks++
			if f.rival != nil {
				f.rival(f.docs)
			}
			var items []map[string]any
			sc := bufio.NewScanner(bytes.NewReader(body))
			for sc.Scan() {
				var meta map[string]struct {
					ID string `json:"_id"`
				}
				if err := json.Unmarshal(sc.Bytes(), &meta); err != nil || !sc.Scan() {
					t.Errorf("bulk body %s: %v", body, err)
					return
				}
				var rec record
				_ = json.Unmarshal(sc.Bytes(), &rec)
				if m, ok := meta["index"]; ok { // an overwrite
					f.docs[m.ID] = rec
					items = append(items, map[string]any{"index": map[string]any{"status": 200}})
					continue
				}
				id := meta["create"].ID
				if _, exists := f.docs[id]; exists || f.phantom[id] {
					items = append(items, map[string]any{"create": map[string]any{"status": 409,
						"error": map[string]any{"type": "version_conflict_engine_exception", "reason": "document already exists"}}})
					continue
				}
				f.docs[id] = rec
				items = append(items, map[string]any{"create": map[string]any{"status": 201}})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	st, err := store.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	r := NewResolver(st, "ids", 100)
	r.NewID = minter()
	return r
}

// owners lists the index as "type:value→customer".
func (f *fakeIndex) owners() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for k, rec := range f.docs {
		out[k] = rec.CustomerID
	}
	return out
}

// A login then a track in one call: one customer, in one read and one
// claim bulk; the same identities again come from the cache.
func TestResolveTakesOneReadAndOneBulkAndThenTheCache(t *testing.T) {
	f := &fakeIndex{}
	r := newFakeResolver(t, f)
	ctx := context.Background()
	got, err := r.Resolve(ctx, [][]Identity{{crm("1001"), anon("dev-1")}, {anon("dev-1")}, {}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"m1", "m1", ""}; !reflect.DeepEqual(got, want) {
		t.Errorf("customers %q, want %q", got, want)
	}
	if f.mgets != 1 || f.bulks != 1 {
		t.Errorf("%d reads and %d bulks, want one each", f.mgets, f.bulks)
	}
	if want := map[string]string{"crm_id:1001": "m1", "anonymous_id:dev-1": "m1"}; !reflect.DeepEqual(f.owners(), want) {
		t.Errorf("index %v, want %v", f.owners(), want)
	}
	got, err = r.Resolve(ctx, [][]Identity{{anon("dev-1")}, {crm("1001")}})
	if err != nil || !reflect.DeepEqual(got, []string{"m1", "m1"}) {
		t.Errorf("again: %q, %v; want m1 twice", got, err)
	}
	if f.mgets != 1 || f.bulks != 1 {
		t.Errorf("again: %d reads and %d bulks in all, want the cache to answer", f.mgets, f.bulks)
	}
}

// Another writer creates a key between this call's read and its claims:
// the requests that counted on it adopt the winner's customer, read once
// more, and nothing is claimed again.
func TestResolveAdoptsTheCustomerOfAWriterThatWonAKey(t *testing.T) {
	f := &fakeIndex{rival: func(docs map[string]record) {
		if _, ok := docs["anonymous_id:dev-1"]; !ok {
			docs["anonymous_id:dev-1"] = record{Type: AnonymousID, Value: "dev-1", CustomerID: "c-w"}
		}
	}}
	r := newFakeResolver(t, f)
	got, err := r.Resolve(context.Background(), [][]Identity{{anon("dev-2")}, {anon("dev-1")}, {anon("dev-1")}, {anon("dev-2")}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"m1", "c-w", "c-w", "m1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("customers %q, want %q", got, want)
	}
	if f.mgets != 2 || f.bulks != 1 {
		t.Errorf("%d reads and %d bulks, want 2 reads (the lost key's) and 1 bulk", f.mgets, f.bulks)
	}
	if want := map[string]string{"anonymous_id:dev-1": "c-w", "anonymous_id:dev-2": "m1"}; !reflect.DeepEqual(f.owners(), want) {
		t.Errorf("index %v, want %v", f.owners(), want)
	}
}

// Another writer wins the identity this call minted a customer for: the
// customer is given up, and the identities linked to it in the same bulk
// are written over to the winner's, so the login and the track after it
// are still one customer.
func TestResolveGivesUpACustomerWhoseOwnIdentityAnotherWriterWon(t *testing.T) {
	f := &fakeIndex{rival: func(docs map[string]record) {
		if _, ok := docs["crm_id:1001"]; !ok {
			docs["crm_id:1001"] = record{Type: CRMID, Value: "1001", CustomerID: "c-w"}
		}
	}}
	r := newFakeResolver(t, f)
	got, err := r.Resolve(context.Background(), [][]Identity{{crm("1001"), anon("dev-1")}, {anon("dev-1")}, {anon("dev-2")}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"c-w", "c-w", "m2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("customers %q, want %q", got, want)
	}
	if want := map[string]string{"crm_id:1001": "c-w", "anonymous_id:dev-1": "c-w", "anonymous_id:dev-2": "m2"}; !reflect.DeepEqual(f.owners(), want) {
		t.Errorf("index %v, want %v", f.owners(), want)
	}
	if f.mgets != 2 || f.bulks != 2 {
		t.Errorf("%d reads and %d bulks, want 2 and 2 (the claims, then the overwrite)", f.mgets, f.bulks)
	}
	// The cache holds what the index does.
	if got, err := r.Resolve(context.Background(), [][]Identity{{anon("dev-1")}}); err != nil || got[0] != "c-w" || f.mgets != 2 {
		t.Errorf("again: %q, %v after %d reads; want c-w from the cache", got, err, f.mgets)
	}
}

// A key that is always taken and never readable cannot be settled: after
// maxRounds bulks Resolve gives up with an error (the batch retries).
func TestResolveGivesUpAfterMaxRoundsOfLostClaims(t *testing.T) {
	f := &fakeIndex{phantom: map[string]bool{"anonymous_id:dev-1": true}}
	r := newFakeResolver(t, f)
	got, err := r.Resolve(context.Background(), [][]Identity{{anon("dev-1")}})
	if err == nil {
		t.Fatalf("customers %q, want an error", got)
	}
	if f.bulks != maxRounds {
		t.Errorf("%d bulks, want %d", f.bulks, maxRounds)
	}
}
