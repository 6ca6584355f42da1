package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Samples keeps every latency of one series exactly. A run records at most
// a few hundred thousand latencies per series, so exact sorted samples cost
// a few megabytes and give exact percentiles (no bucketing error, no extra
// dependency).
type Samples struct {
	mu     sync.Mutex
	values []time.Duration
	errors int
	// lastErr is the last failure, to show what went wrong.
	lastErr string
}

// Add records one latency.
func (s *Samples) Add(d time.Duration) {
	s.mu.Lock()
	s.values = append(s.values, d)
	s.mu.Unlock()
}

// Fail records one failed request.
func (s *Samples) Fail(err error) {
	s.mu.Lock()
	s.errors++
	if err != nil {
		s.lastErr = err.Error()
	}
	s.mu.Unlock()
}

// Summary is what a report keeps of a series: milliseconds, so that the JSON
// reads without conversion.
type Summary struct {
	Count     int     `json:"count"`
	Errors    int     `json:"errors"`
	LastError string  `json:"last_error,omitempty"`
	MeanMs    float64 `json:"mean_ms"`
	P50Ms     float64 `json:"p50_ms"`
	P90Ms     float64 `json:"p90_ms"`
	P95Ms     float64 `json:"p95_ms"`
	P99Ms     float64 `json:"p99_ms"`
	P999Ms    float64 `json:"p999_ms"`
	MaxMs     float64 `json:"max_ms"`
}

// Summary sorts a copy of the samples and computes the percentiles.
func (s *Samples) Summary() Summary {
	s.mu.Lock()
	v := append([]time.Duration(nil), s.values...)
	errs, last := s.errors, s.lastErr
	s.mu.Unlock()
	sum := Summarize(v)
	sum.Errors, sum.LastError = errs, last
	return sum
}

// Summarize computes a Summary of the latencies (sorting v in place).
func Summarize(v []time.Duration) Summary {
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	out := Summary{Count: len(v)}
	if len(v) == 0 {
		return out
	}
	var total time.Duration
	for _, d := range v {
		total += d
	}
	out.MeanMs = ms(total / time.Duration(len(v)))
	out.P50Ms = ms(Percentile(v, 50))
	out.P90Ms = ms(Percentile(v, 90))
	out.P95Ms = ms(Percentile(v, 95))
	out.P99Ms = ms(Percentile(v, 99))
	out.P999Ms = ms(Percentile(v, 99.9))
	out.MaxMs = ms(v[len(v)-1])
	return out
}

// Percentile is the nearest-rank percentile of sorted: the smallest sample
// such that at least p percent of the samples are less than or equal to it.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// ratio is a/b rounded, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round3(a / b)
}

// minP99Samples is the fewest samples a latency goal's p99 is judged on.
// Below it the p99 is one of the last few samples (of 100 it is the
// second largest), so the goal is judged at p95 and the report says so.
const minP99Samples = 1000

// judged is the percentile a latency goal is judged at: p99 when every
// series it compares has at least minP99Samples samples, else p95. N is
// the fewest samples of those series.
type judged struct {
	P float64
	N int
}

// judgedAt is the percentile a goal comparing series is judged at.
func judgedAt(series ...Summary) judged {
	n := -1
	for _, s := range series {
		if n < 0 || s.Count < n {
			n = s.Count
		}
	}
	n = max(n, 0)
	if n >= minP99Samples {
		return judged{P: 99, N: n}
	}
	return judged{P: 95, N: n}
}

// of is the judged percentile of s, in milliseconds.
func (j judged) of(s Summary) float64 {
	if j.P == 99 {
		return s.P99Ms
	}
	return s.P95Ms
}

// String is "p99", or "p95 (n=…, fewer than 1,000 samples)".
func (j judged) String() string {
	if j.P == 99 {
		return "p99"
	}
	return fmt.Sprintf("p95 (n=%d, fewer than %s samples)", j.N, groupDigits(minP99Samples))
}

// groupDigits writes n with commas between groups of three digits.
func groupDigits(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
