package identity

import (
	"fmt"
	"runtime"
	"testing"
)

// cacheEntryBytes fills a resolver's two caches with n entries each, of
// the sizes the indexer caches (an identity key to a customer id, and that
// customer id as a root), and returns the heap they take per entry.
func cacheEntryBytes(n int) float64 {
	keys := make([]string, n)
	cids := make([]string, n)
	kinds := []string{"phone:+86138%08d", "email:user%08d@example.com", "crm_id:%08d", "anonymous_id:dev-%08d"}
	for i := range keys {
		keys[i] = fmt.Sprintf(kinds[i%len(kinds)], i)
		cids[i] = NewCustomerID()
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := NewResolver(nil, Indices{}, n)
	for i := range keys {
		r.cache.Add(keys[i], cids[i])
		r.roots.Add(cids[i], true)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(r)
	// The key and id strings are counted too: in the indexer they are
	// decoded for the cache and live as long as their entries.
	strs := 0
	for i := range keys {
		strs += len(keys[i]) + len(cids[i])
	}
	return (float64(after.HeapAlloc) - float64(before.HeapAlloc) + float64(strs)) / float64(n)
}

func TestCacheEntryBytesIsWhatAFullCacheTakes(t *testing.T) {
	got := cacheEntryBytes(300_000)
	t.Logf("%.0f bytes per cache entry (identity and root), CacheEntryBytes %d", got, CacheEntryBytes)
	if got > CacheEntryBytes || got < 0.8*CacheEntryBytes {
		t.Fatalf("a full cache takes %.0f bytes per entry; CacheEntryBytes says %d", got, CacheEntryBytes)
	}
}
