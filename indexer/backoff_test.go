package indexer

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetryTriesTransientFailuresAgainUntilOneSucceeds(t *testing.T) {
	calls, heard := 0, 0
	err := retry(context.Background(), newBackoff(time.Millisecond, 4*time.Millisecond), func(error) bool { return true },
		func(error, time.Duration) { heard++ },
		func() error {
			if calls++; calls < 4 {
				return errors.New("transient")
			}
			return nil
		})
	if err != nil || calls != 4 || heard != 3 {
		t.Fatalf("err %v after %d calls, %d retries heard: want success on the 4th call", err, calls, heard)
	}
}

func TestRetryReturnsAPermanentFailureAsItIs(t *testing.T) {
	refused := errors.New("refused")
	calls := 0
	err := retry(context.Background(), newBackoff(time.Millisecond, time.Millisecond), func(err error) bool { return err != refused },
		func(error, time.Duration) {}, func() error { calls++; return refused })
	if err != refused || calls != 1 {
		t.Fatalf("err %v after %d calls, want refused after 1", err, calls)
	}
}

func TestRetryStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err := retry(ctx, newBackoff(time.Hour, time.Hour), func(error) bool { return true },
		func(error, time.Duration) { cancel() }, func() error { calls++; return errors.New("transient") })
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("err %v after %d calls, want context.Canceled after 1 (no hour-long wait)", err, calls)
	}
}

func TestBackoffDoublesUpToItsCapWithinHalfAndOneAndAHalfTimes(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second)
	for i, interval := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		interval *= time.Millisecond
		if d := b.NextBackOff(); d < interval/2 || d > interval*3/2 {
			t.Fatalf("wait %d = %s, want within [%s, %s]", i, d, interval/2, interval*3/2)
		}
	}
	b.Reset()
	if d := b.NextBackOff(); d > 150*time.Millisecond {
		t.Fatalf("after a reset the wait is %s, want about the base again", d)
	}
}
