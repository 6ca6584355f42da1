package api

import (
	"fmt"
	"net/http"
	"testing"

	"cdp/store"
)

func TestGzipIsUsedWhenAcceptEncodingTakesIt(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"deflate, gzip;q=0.8", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"identity", false},
		{"br, deflate", false},
		{"*", false},
	}
	for _, tt := range tests {
		if got := acceptsGzip(tt.header); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestARefusedPointInTimeIsTooManyExportsNotAServerError(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("open: %w", &store.Error{Status: http.StatusTooManyRequests, Type: "rejected_execution_exception",
			Reason: "Trying to create too many Point In Time contexts. Must be less than or equal to: [300]."}), true},
		{&store.Error{Status: http.StatusInternalServerError, Reason: "Trying to create too many Point In Time contexts"}, true},
		{&store.Error{Status: http.StatusTooManyRequests, Reason: "rejected execution"}, true},
		{&store.Error{Status: http.StatusNotFound, Reason: "no such index"}, false},
		{fmt.Errorf("boom"), false},
	}
	for _, tt := range tests {
		if got := tooManyPITs(tt.err); got != tt.want {
			t.Errorf("tooManyPITs(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
