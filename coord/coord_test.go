package coord_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"cdp/coord"
	"cdp/testing/harness"
)

// The OneID lock is one writer at a time across processes of a
// deployment: a second coordinator on the same prefix waits until the
// first releases it; another prefix does not wait.
func TestTheOneIDLockAdmitsOneWriterPerDeploymentAtATime(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	ctx := context.Background()
	a := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, harness.Logger())
	b := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, harness.Logger())
	other := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix + "-other"}, harness.Logger())
	t.Cleanup(func() { a.Close(); b.Close(); other.Close() })

	unlockA, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unlockOther, err := other.Lock(ctx)
	if err != nil {
		t.Fatalf("another deployment's lock: %v", err)
	}
	unlockOther()
	var held atomic.Bool
	held.Store(true)
	done := make(chan error, 1)
	go func() {
		unlock, err := b.Lock(ctx)
		if err == nil && held.Load() {
			err = context.DeadlineExceeded // b got the lock while a held it
		}
		if err == nil {
			unlock()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("b took the lock while a held it: %v", err)
	case <-time.After(300 * time.Millisecond): // b is waiting, as it should
	}
	held.Store(false)
	unlockA()
	if err := <-done; err != nil {
		t.Fatalf("b after a released: %v", err)
	}
}

// With Redis unreachable, writers go on unlocked (correctness rests on
// create-if-absent and if_seq_no) and the epoch is unknown.
func TestWithRedisDownTheLockLetsWritersGoOnAndTheEpochIsAnError(t *testing.T) {
	c := coord.New(coord.Config{Addr: "127.0.0.1:1", Prefix: "down"}, harness.Logger())
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unlock, err := c.Lock(ctx)
	if err != nil {
		t.Fatalf("lock with Redis down: %v, want to go on unlocked", err)
	}
	unlock()
	if _, err := c.Epoch(ctx); err == nil {
		t.Error("epoch with Redis down: no error, want one (resolvers then trust no cache)")
	}
}

// A split's bump is seen by every process.
func TestABumpMovesTheEpochForEveryProcess(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	ctx := context.Background()
	a := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, harness.Logger())
	b := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, harness.Logger())
	t.Cleanup(func() { a.Close(); b.Close() })
	before, err := b.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Bump(ctx); err != nil {
		t.Fatal(err)
	}
	if after, err := b.Epoch(ctx); err != nil || after != before+1 {
		t.Errorf("epoch %d → %d (%v), want +1", before, after, err)
	}
}
