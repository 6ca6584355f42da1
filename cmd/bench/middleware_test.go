package main

import (
	"strings"
	"testing"
)

func TestTheMiddlewaresQuantilesAreInterpolatedWithinItsBuckets(t *testing.T) {
	text := `# TYPE cdp_http_auth_seconds histogram
cdp_http_auth_seconds_bucket{le="0.0001"} 50
cdp_http_auth_seconds_bucket{le="0.0002"} 90
cdp_http_auth_seconds_bucket{le="0.001"} 100
cdp_http_auth_seconds_bucket{le="+Inf"} 100
cdp_http_auth_seconds_sum 0.015
cdp_http_auth_seconds_count 100
`
	got, err := parseMiddlewareLatency(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	// p50: the 50th of 100 is the top of the first bucket; p99: 9/10 of
	// the way through the third (0.2 ms to 1 ms).
	if got.Requests != 100 || got.P50ms != 0.1 || got.P99ms != 0.92 || got.MeanMs != 0.15 {
		t.Errorf("got %+v, want 100 requests, p50 0.1 ms, p99 0.92 ms, mean 0.15 ms", got)
	}
	if _, err := parseMiddlewareLatency(strings.NewReader("")); err == nil {
		t.Error("no histogram: want an error")
	}
}
