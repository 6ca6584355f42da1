package indexer

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// newBackoff returns an exponential backoff that starts at base and
// doubles up to cap, each wait drawn at random within ±50% of the current
// interval (so a wait at the cap lies between cap/2 and 1.5×cap), and
// never gives up by itself: the context ends retries.
func newBackoff(base, cap time.Duration) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(base),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxInterval(cap),
		backoff.WithMaxElapsedTime(0),
	)
}

// retry calls f until it succeeds, returns an error transient rejects, or
// ctx ends (then it returns ctx's error). onRetry hears of each failure
// about to be retried and the wait before the next try.
func retry(ctx context.Context, b backoff.BackOff, transient func(error) bool, onRetry func(error, time.Duration), f func() error) error {
	return backoff.RetryNotify(func() error {
		err := f()
		if err != nil && !transient(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx), onRetry)
}
