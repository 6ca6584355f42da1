package indexer

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestAFailureLogWritesARunsFirstFailureAtOnceThenAtMostOneSummaryAPeriod(t *testing.T) {
	type event struct {
		at  time.Duration // since the test's start
		key string
		err string // "" is a success
	}
	const every = 10 * time.Second
	for _, tc := range []struct {
		name   string
		events []event
		want   []string
	}{
		{
			name:   "a single failure is logged",
			events: []event{{0, "bulk", "down"}},
			want:   []string{`level=WARN msg="step failed, retrying" step=bulk failures=1 err=down`},
		},
		{
			name: "failures within the period are counted into the next line",
			events: []event{
				{0, "bulk", "down"}, {time.Second, "bulk", "down"}, {2 * time.Second, "bulk", "down"},
				{10 * time.Second, "bulk", "still down"},
			},
			want: []string{
				`level=WARN msg="step failed, retrying" step=bulk failures=1 err=down`,
				`level=WARN msg="step still failing" step=bulk failures=3 since=10s last_err="still down"`,
			},
		},
		{
			name: "an outage of a minute, a retry a second, logs a line every period",
			events: func() []event {
				var es []event
				for s := range 60 {
					es = append(es, event{time.Duration(s) * time.Second, "bulk", "down"})
				}
				return append(es, event{60 * time.Second, "bulk", ""})
			}(),
			want: []string{
				`level=WARN msg="step failed, retrying" step=bulk failures=1 err=down`,
				`level=WARN msg="step still failing" step=bulk failures=10 since=10s last_err=down`,
				`level=WARN msg="step still failing" step=bulk failures=10 since=10s last_err=down`,
				`level=WARN msg="step still failing" step=bulk failures=10 since=10s last_err=down`,
				`level=WARN msg="step still failing" step=bulk failures=10 since=10s last_err=down`,
				`level=WARN msg="step still failing" step=bulk failures=10 since=10s last_err=down`,
				`level=INFO msg="step recovered" step=bulk failures=60`,
			},
		},
		{
			name:   "a success without failures says nothing",
			events: []event{{0, "bulk", ""}, {time.Second, "bulk", ""}},
		},
		{
			name: "a step that fails and succeeds by turns logs once a period",
			events: []event{
				{0, "bulk", "down"}, {time.Second, "bulk", ""},
				{2 * time.Second, "bulk", "down"}, {3 * time.Second, "bulk", ""},
				{12 * time.Second, "bulk", "down"},
			},
			want: []string{
				`level=WARN msg="step failed, retrying" step=bulk failures=1 err=down`,
				`level=INFO msg="step recovered" step=bulk failures=1`,
				`level=WARN msg="step failed, retrying" step=bulk failures=1 err=down`,
			},
		},
		{
			name: "a run whose first failure was held back is logged when the period ends",
			events: []event{
				{0, "bulk", "down"}, {time.Second, "bulk", ""},
				{2 * time.Second, "bulk", "down"}, {5 * time.Second, "bulk", "down"}, {10 * time.Second, "bulk", "again"},
			},
			want: []string{
				`level=WARN msg="step failed, retrying" step=bulk failures=1 err=down`,
				`level=INFO msg="step recovered" step=bulk failures=1`,
				`level=WARN msg="step failed, retrying" step=bulk failures=3 err=again`,
			},
		},
		{
			name: "steps are limited each on its own",
			events: []event{
				{0, "bulk", "down"}, {0, "mark_dirty", "no broker"},
				{time.Second, "bulk", "down"}, {time.Second, "mark_dirty", "no broker"},
			},
			want: []string{
				`level=WARN msg="step failed, retrying" step=bulk failures=1 err=down`,
				`level=WARN msg="step failed, retrying" step=mark_dirty failures=1 err="no broker"`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
				Level: slog.LevelDebug,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				},
			}))
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var now time.Time
			l := newFailureLog(log, every, "step", failureMessages{"step failed, retrying", "step still failing", "step recovered"})
			l.now = func() time.Time { return now }
			for _, e := range tc.events {
				now = start.Add(e.at)
				if e.err == "" {
					l.succeeded(e.key)
				} else {
					l.failed(e.key, errors.New(e.err))
				}
			}
			var got []string
			if s := strings.TrimSpace(buf.String()); s != "" {
				got = strings.Split(s, "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
