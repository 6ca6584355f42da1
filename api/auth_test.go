package api

import (
	"fmt"
	"testing"

	"cdp/access"
)

func TestTheRateLimitsKeepABoundedNumberOfCallersAndStillLimitTheBusyOnes(t *testing.T) {
	roles := access.DefaultRoles()
	m := roles["marketer"]
	m.RatePerSecond, m.Burst = 1, 3
	roles["marketer"] = m
	pol := access.NewPolicy(roles)
	l := newLimiters(100)
	busy := access.Principal{Actor: "key:busy", Role: "marketer", KeyID: "busy"}
	allowed := 0
	for i := range 10_000 {
		if _, ok := l.allow(busy, pol); ok {
			allowed++
		}
		// A stream of callers each seen once, between the busy one's
		// requests.
		sub := access.Principal{Actor: fmt.Sprintf("user-%d", i), Role: "marketer"}
		if _, ok := l.allow(sub, pol); !ok {
			t.Fatalf("caller %d, new, was limited at its first request", i)
		}
	}
	if n := l.m.Len(); n > 100 {
		t.Errorf("%d callers' limits kept, want at most 100", n)
	}
	// The busy caller used its burst and is limited still: it was never
	// the one idle the longest.
	if allowed > 4 {
		t.Errorf("the busy caller was allowed %d of 10,000 requests in a moment at 1/s with a burst of 3", allowed)
	}
}
