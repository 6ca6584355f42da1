package coord_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"cdp/coord"
	"cdp/testing/harness"
)

func TestALeaseHasOneHolderUntilReleasedOrExpiredAndFencesGrow(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	ctx := context.Background()
	a := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, harness.Logger())
	b := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, harness.Logger())
	t.Cleanup(func() { a.Close(); b.Close() })

	la, err := a.TryLease(ctx, "job-1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLease(ctx, "job-1", time.Second); !errors.Is(err, coord.ErrHeld) {
		t.Fatalf("a second holder: %v, want ErrHeld", err)
	}
	if err := la.Extend(ctx); err != nil {
		t.Fatalf("extend while held: %v", err)
	}
	la.Release()
	lb, err := b.TryLease(ctx, "job-1", time.Second)
	if err != nil {
		t.Fatalf("after the release: %v", err)
	}
	// b lets its lease expire: a takes it then, and b can no longer
	// extend it.
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		l, err := a.TryLease(ctx, "job-1", 5*time.Second)
		if err != nil {
			return false, err.Error()
		}
		la = l
		return true, ""
	})
	if err := lb.Extend(ctx); err == nil {
		t.Error("a lease that expired and was taken was extended")
	}
	la.Release()

	f1, err := a.Fence(ctx, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	f2, err := b.Fence(ctx, "job-1")
	if err != nil || f2 <= f1 {
		t.Errorf("fences %d then %d (%v): want them to grow", f1, f2, err)
	}
}
