package catalog

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"cdp/store"
)

func TestAStreamOfUnknownFieldsReloadsTheCatalogAtMostOnceASecond(t *testing.T) {
	var reads int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt32(&reads, 1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"hits":{"hits":[{"_source":{"name":"attrs.x","type":"keyword"},"sort":["attrs.x"]}]}}`)
	}))
	defer srv.Close()
	st, err := store.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	r := New(st, "fields")
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		cat, err := r.ReloadStale(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := cat.Lookup("attrs.x"); !ok {
			t.Fatal("the stored field is missing from the catalog")
		}
	}
	if reads != 1 {
		t.Fatalf("%d reads for 50 reloads within a second, want 1", reads)
	}
	r.invalidate() // a declaration
	if _, err := r.ReloadStale(ctx); err != nil || reads != 2 {
		t.Fatalf("after a declaration: %v, %d reads, want a fresh read", err, reads)
	}
}
