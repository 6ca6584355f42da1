package config

import (
	"math"
	"runtime/debug"

	"cdp/identity"
)

// Memory budgets carved out of the soft memory limit, in one place.
const (
	// IdentityCacheShare is the part of the soft memory limit the
	// indexer's OneID cache may fill: an eighth (24 MiB of the default
	// 192), leaving the rest to the batches and rebuilds that the limit
	// was set for. A quarter was too much: in a 100,000-customer
	// backfill the heap in use stood at 178 MB of the 192 MiB limit, the
	// collector ran 6.8 times a second and took some 60% of the
	// indexer's CPU profile, and the cache was 54 MB of what it scanned.
	// The cache answers a batch only when every one of its requests is
	// cached (identity.Resolver), which only small batches are: those
	// of a quiet stream, which need few entries.
	IdentityCacheShare = 0.125
	// Bounds of the OneID cache: below the least it stops saving lookups
	// for the identities of one batch; the most is what it was before it
	// was sized from the budget, for processes without a limit.
	MinIdentityCacheEntries = 1 << 12
	MaxIdentityCacheEntries = 1 << 20
)

// IdentityCacheEntries is how many entries the indexer's OneID cache may
// hold: IdentityCacheShare of the soft memory limit in force, at
// identity.CacheEntryBytes an entry.
func (c *Config) IdentityCacheEntries() int {
	return identityCacheEntries(debug.SetMemoryLimit(-1), c.MemoryLimitMiB)
}

// identityCacheEntries sizes the cache from the runtime's limit (GOMEMLIMIT,
// or --memory-limit-mib once cmd/cdp applied it; math.MaxInt64 for none)
// and, when the runtime has none (an indexer run inside another program,
// such as a test), the configured limit.
func identityCacheEntries(runtimeLimit int64, limitMiB int) int {
	limit := runtimeLimit
	if limit == math.MaxInt64 && limitMiB > 0 {
		limit = int64(limitMiB) << 20
	}
	if limit == math.MaxInt64 {
		return MaxIdentityCacheEntries
	}
	n := int64(float64(limit) * IdentityCacheShare / identity.CacheEntryBytes)
	return int(min(max(n, MinIdentityCacheEntries), MaxIdentityCacheEntries))
}
