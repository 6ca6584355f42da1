package indexer

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff grows exponentially with full jitter, capped.
type backoff struct {
	base, cap time.Duration
	attempt   int
}

func newBackoff(base, cap time.Duration) *backoff { return &backoff{base: base, cap: cap} }

func (b *backoff) next() time.Duration {
	d := b.base << min(b.attempt, 20)
	if d > b.cap || d <= 0 {
		d = b.cap
	}
	b.attempt++
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.attempt = 0 }

// sleep waits d or until ctx ends, returning ctx's error then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retry calls f until it succeeds, returns a permanent error, or ctx ends.
// transient decides which errors are worth another try.
func retry(ctx context.Context, b *backoff, transient func(error) bool, onRetry func(error, time.Duration), f func() error) error {
	for {
		err := f()
		if err == nil || !transient(err) {
			return err
		}
		d := b.next()
		onRetry(err, d)
		if serr := sleep(ctx, d); serr != nil {
			return serr
		}
	}
}
