package main

import (
	"context"
	"time"
)

// OpenLoop sends requests on a fixed timetable, whatever the answers do:
// request i is due at start + i/rate, and its latency is measured from that
// due time, not from when it was actually sent. A slow answer therefore
// cannot hold back the requests behind it (no coordinated omission): if
// the server stalls, the requests due meanwhile queue and their wait shows
// up in their latency.
type OpenLoop struct {
	// Rate is requests per second over all targets.
	Rate float64
	// N is how many requests to send.
	N int
	// MaxInFlight bounds the goroutines; when reached, sending waits for
	// one to finish (the wait still counts in the latency, as queueing
	// does). 0 means 1024.
	MaxInFlight int
	// Sleep waits until t; tests replace it.
	Sleep func(ctx context.Context, t time.Time)
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// Run calls do(i, due) for i in [0, N) on the timetable, each in its own
// goroutine, and returns when all have returned; once ctx ends no more are
// started. do gets the due time to measure from.
func (o OpenLoop) Run(ctx context.Context, do func(i int, due time.Time)) {
	if o.N <= 0 || o.Rate <= 0 {
		return
	}
	now, sleep := o.Now, o.Sleep
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = sleepUntil
	}
	limit := o.MaxInFlight
	if limit <= 0 {
		limit = 1024
	}
	slots := make(chan struct{}, limit)
	start := now()
	interval := float64(time.Second) / o.Rate
	for i := 0; i < o.N && ctx.Err() == nil; i++ {
		due := Due(start, interval, i)
		sleep(ctx, due)
		acquired := false
		select {
		case slots <- struct{}{}:
			acquired = true
		case <-ctx.Done():
		}
		if !acquired || ctx.Err() != nil {
			if acquired {
				<-slots
			}
			break
		}
		go func() {
			defer func() { <-slots }()
			do(i, due)
		}()
	}
	// Wait for every request in flight, also after ctx ended (do is
	// expected to give up with ctx).
	for range limit {
		slots <- struct{}{}
	}
}

// Due is when request i of a timetable starting at start is to be sent.
// It is computed from i (not by adding intervals up), so rounding does not
// drift over long runs.
func Due(start time.Time, interval float64, i int) time.Time {
	return start.Add(time.Duration(interval * float64(i)))
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// Pacer releases work at a fixed rate in small steps: Take reports how many
// units are due by now that were not taken yet. The load generator uses it
// to produce messages at a fixed rate in batches.
type Pacer struct {
	Rate  float64 // units per second
	start time.Time
	taken int64
}

// NewPacer starts a pacer at start.
func NewPacer(rate float64, start time.Time) *Pacer { return &Pacer{Rate: rate, start: start} }

// Take returns how many units are due at now and marks them taken.
func (p *Pacer) Take(now time.Time) int {
	due := int64(now.Sub(p.start).Seconds() * p.Rate)
	n := due - p.taken
	if n < 0 {
		return 0
	}
	p.taken = due
	return int(n)
}
