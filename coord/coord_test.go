package coord_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"cdp/coord"
	"cdp/testing/harness"
)

// The OneID locks admit one writer per identity at a time across the
// processes of a deployment: a second coordinator on the same prefix
// waits for an identity the first holds, until it is released; an
// identity on another stripe, or the same one in another deployment, does
// not wait.
func TestTheOneIDLocksAdmitOneWriterPerIdentityAtATime(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	ctx := context.Background()
	a := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, harness.Logger())
	b := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix}, harness.Logger())
	other := coord.New(coord.Config{Addr: cfg.RedisAddr, Prefix: cfg.IndexPrefix + "-other"}, harness.Logger())
	t.Cleanup(func() { a.Close(); b.Close(); other.Close() })

	held := []string{"crm_id:1001", "phone:13800000000"}
	free := "anonymous_id:dev-1"
	for i := 0; coord.StripesOf([]string{free})[0] == coord.StripesOf(held[1:])[0] || coord.StripesOf([]string{free})[0] == coord.StripesOf(held[:1])[0]; i++ {
		free = fmt.Sprintf("anonymous_id:dev-%d", i)
	}
	unlockA, err := a.Lock(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	for name, try := range map[string]func() (func(), error){
		"another deployment, the same identity": func() (func(), error) { return other.Lock(ctx, held[1:]) },
		"the same deployment, another stripe":   func() (func(), error) { return b.Lock(ctx, []string{free}) },
	} {
		unlock, err := try() // a lock held elsewhere fails after its tries
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		unlock()
	}
	var aHolds atomic.Bool
	aHolds.Store(true)
	done := make(chan error, 1)
	go func() {
		unlock, err := b.Lock(ctx, []string{free, held[1]})
		if err == nil && aHolds.Load() {
			err = context.DeadlineExceeded // b got the identity while a held it
		}
		if err == nil {
			unlock()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("b took an identity a held: %v", err)
	case <-time.After(300 * time.Millisecond): // b is waiting, as it should
	}
	aHolds.Store(false)
	unlockA()
	if err := <-done; err != nil {
		t.Fatalf("b after a released: %v", err)
	}
}

func TestEveryWriterTakesItsStripesInOneOrder(t *testing.T) {
	tests := []struct {
		name string
		keys []string
	}{
		{"no identity", nil},
		{"one identity twice", []string{"crm_id:1", "crm_id:1"}},
		{"many identities", []string{"crm_id:1", "phone:2", "email:a@b.c", "anonymous_id:x", "user_id:9", "crm_id:77"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := coord.StripesOf(tt.keys)
			if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Errorf("stripes %v: want sorted, each once", got)
			}
			for _, s := range got {
				if s < 0 || s >= coord.Stripes {
					t.Errorf("stripe %d out of [0, %d)", s, coord.Stripes)
				}
			}
			rev := slices.Clone(tt.keys)
			slices.Reverse(rev)
			if again := coord.StripesOf(rev); !slices.Equal(again, got) {
				t.Errorf("the keys in another order give stripes %v, want %v", again, got)
			}
		})
	}
}

// With Redis unreachable, writers go on unlocked (correctness rests on
// create-if-absent and if_seq_no) and the epoch is unknown.
func TestWithRedisDownTheLockLetsWritersGoOnAndTheEpochIsAnError(t *testing.T) {
	c := coord.New(coord.Config{Addr: "127.0.0.1:1", Prefix: "down"}, harness.Logger())
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unlock, err := c.Lock(ctx, []string{"crm_id:1"})
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
