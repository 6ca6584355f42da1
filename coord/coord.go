// Package coord coordinates the processes of one deployment through
// Redis: the OneID writer locks (redsync, striped by identity) and the
// OneID cache epoch.
//
// Neither is what keeps OneID correct: identity claims are creates that
// fail when the key exists and profile writes are conditional on the
// sequence number read (package identity). The lock keeps two writers
// from redoing each other's passes; the epoch tells every process that a
// split moved identities it may have cached. When Redis is unreachable
// both degrade rather than stop the indexer: writers go on unlocked, and
// a resolver that cannot read the epoch trusts no cache.
package coord

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// Config is what the coordinator needs.
type Config struct {
	// Addr is the Redis address; Prefix names the deployment (the index
	// prefix), so two deployments on one Redis do not share a lock.
	Addr, Prefix string
	// LockExpiry is how long a lock holds if its holder never releases
	// it (a paused or killed process).
	LockExpiry time.Duration
}

// Coordinator is the deployment's locks and epoch.
type Coordinator struct {
	rdb    *redis.Client
	rs     *redsync.Redsync
	expiry time.Duration
	lock   string // the name of the locks, less the stripe
	epoch  string
	pfx    string
	log    *slog.Logger
	leases leases // leader.go
}

func (c *Coordinator) prefix() string { return c.pfx }

// Stripes is how many locks a deployment's identities are spread over.
// Two writers wait for each other only when their messages share a
// stripe; a large batch takes most of them, one at a time (a Redis round
// trip each).
const Stripes = 64

// stripes are the sorted stripes of the identity keys: every writer takes
// its stripes in this order, so two never wait for each other in a cycle.
func stripes(keys []string) []int {
	var out []int
	for _, k := range keys {
		h := fnv.New32a()
		h.Write([]byte(k))
		if s := int(h.Sum32() % Stripes); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// New returns a coordinator; it connects lazily, so it starts while Redis
// is down.
func New(cfg Config, log *slog.Logger) *Coordinator {
	if cfg.LockExpiry == 0 {
		cfg.LockExpiry = 10 * time.Second
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Addr, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		MaxRetries: -1, DialerRetries: 1})
	return &Coordinator{rdb: rdb, rs: redsync.New(goredis.NewPool(rdb)), expiry: cfg.LockExpiry,
		lock: "cdp:" + cfg.Prefix + ":oneid:lock:", epoch: "cdp:" + cfg.Prefix + ":oneid:epoch", pfx: cfg.Prefix, log: log}
}

// Lock takes the OneID writer locks of the identity keys (their stripes),
// so that one identity is resolved by one writer at a time across lanes
// and processes, while writers of unrelated identities go side by side.
// Redis being unreachable is not an error: the caller goes on unlocked
// (see the package doc) and unlock does nothing. Another holder keeping a
// lock past every try is an error.
func (c *Coordinator) Lock(ctx context.Context, keys []string) (func(), error) {
	// A Redis that does not answer at once is down for this call: the
	// lock's own retries (there for a lock held elsewhere) would stall
	// every writer for their whole length.
	pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	err := c.rdb.Ping(pctx).Err()
	cancel()
	var held []*redsync.Mutex
	unlock := func() {
		for _, m := range slices.Backward(held) {
			// A release after expiry fails harmlessly: the writes it
			// guarded were conditional anyway.
			if _, err := m.UnlockContext(context.Background()); err != nil {
				c.log.Debug("oneid lock release", "err", err)
			}
		}
	}
	if err == nil {
		for _, s := range stripes(keys) {
			// A mutex of its own per call: a redsync mutex keeps the
			// value it locked with, which two lanes must not share.
			m := c.rs.NewMutex(c.lock+strconv.Itoa(s), redsync.WithExpiry(c.expiry),
				redsync.WithTries(600), redsync.WithRetryDelay(25*time.Millisecond))
			if err = m.LockContext(ctx); err != nil {
				break
			}
			held = append(held, m)
		}
	}
	if err != nil {
		unlock()
	}
	switch {
	case err == nil:
		return unlock, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, redsync.ErrFailed):
		var taken *redsync.ErrTaken
		if errors.As(err, &taken) {
			return nil, fmt.Errorf("coord: the oneid lock is held elsewhere: %w", err)
		}
	}
	c.log.Warn("oneid lock unavailable, going on unlocked", "err", err)
	return func() {}, nil
}

// Epoch reads the OneID cache epoch (0 before the first split).
func (c *Coordinator) Epoch(ctx context.Context) (int64, error) {
	n, err := c.rdb.Get(ctx, c.epoch).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// Bump moves the epoch on: every resolver drops its caches.
func (c *Coordinator) Bump(ctx context.Context) error {
	return c.rdb.Incr(ctx, c.epoch).Err()
}

// Close closes the Redis connections.
func (c *Coordinator) Close() error { return c.rdb.Close() }

// goneTTL is how long a merged-away customer id is remembered: longer
// than any resolver keeps a cache entry (identity.CacheTTL).
const goneTTL = 3 * time.Minute

func (c *Coordinator) goneKey(cid string) string { return c.epoch + ":gone:" + cid }

// MarkGone records customer ids just merged away, so that every process
// stops sending messages to them from its cache.
func (c *Coordinator) MarkGone(ctx context.Context, cids ...string) error {
	if len(cids) == 0 {
		return nil
	}
	pipe := c.rdb.Pipeline()
	for _, cid := range cids {
		pipe.Set(ctx, c.goneKey(cid), 1, goneTTL)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Gone returns which of the customer ids were merged away lately.
func (c *Coordinator) Gone(ctx context.Context, cids []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(cids) == 0 {
		return out, nil
	}
	keys := make([]string, len(cids))
	for i, cid := range cids {
		keys[i] = c.goneKey(cid)
	}
	vals, err := c.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	for i, v := range vals {
		if v != nil {
			out[cids[i]] = true
		}
	}
	return out, nil
}

// Lease is a named lock this process holds until it releases it or lets
// it expire (a redsync mutex on one Redis). Holding it says only that no
// other process held it meanwhile; writes made under it are fenced by
// the caller (see package exportjob), since a paused holder may outlive
// it.
type Lease struct {
	m *redsync.Mutex
}

// ErrHeld is TryLease's answer when another process holds the lease.
var ErrHeld = errors.New("coord: lease held by another process")

// TryLease takes the lease called name for ttl, at once or not at all
// (ErrHeld).
func (c *Coordinator) TryLease(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	m := c.rs.NewMutex("cdp:"+c.prefix()+":lease:"+name, redsync.WithExpiry(ttl), redsync.WithTries(1))
	if err := m.TryLockContext(ctx); err != nil {
		var taken *redsync.ErrTaken
		if errors.As(err, &taken) || errors.Is(err, redsync.ErrFailed) {
			return nil, ErrHeld
		}
		return nil, fmt.Errorf("coord: lease %s: %w", name, err)
	}
	return &Lease{m: m}, nil
}

// Extend pushes the lease's expiry back by its ttl; an error means the
// lease is lost (expired and maybe taken) or Redis did not answer.
func (l *Lease) Extend(ctx context.Context) error {
	ok, err := l.m.ExtendContext(ctx)
	if err == nil && !ok {
		err = errors.New("coord: lease not extended")
	}
	return err
}

// Until is when the lease expires unless extended.
func (l *Lease) Until() time.Time { return l.m.Until() }

// Release gives the lease up; releasing one already expired is harmless.
func (l *Lease) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = l.m.UnlockContext(ctx)
}

// Fence returns the next value of the counter called name (1 first): a
// fencing token, larger for every new holder of a lease.
func (c *Coordinator) Fence(ctx context.Context, name string) (int64, error) {
	return c.rdb.Incr(ctx, "cdp:"+c.prefix()+":fence:"+name).Result()
}
