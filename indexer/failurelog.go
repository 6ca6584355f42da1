package indexer

import (
	"log/slog"
	"sync"
	"time"
)

// failureLog rate-limits the logs of failures that repeat, per key (a
// step's name, a kind of consumer error). The first failure of a run is
// logged at once; after it, at most one line every `every`, with the count
// of failures since the last line and the last error; the first success
// after a logged run says how many failures the run had. During an outage
// every lane retries every step with a backoff, and a line per retry buried
// everything else an operator needed to read.
type failureLog struct {
	log   *slog.Logger
	every time.Duration
	key   string // the key's attribute name
	msgs  failureMessages
	now   func() time.Time // nil is time.Now; tests set their own clock

	mu   sync.Mutex
	runs map[string]*failureRun
}

// failureMessages are the lines of a run: its first failure, a summary of
// the failures since, and the success that ends it.
type failureMessages struct {
	first, still, recovered string
}

type failureRun struct {
	logged    time.Time // when the key's last line was written, zero for never
	unlogged  int       // failures since the last line
	total     int       // failures in the run
	open      bool      // failing: no success since the run's first failure
	runLogged bool      // the run has had a line
}

func newFailureLog(log *slog.Logger, every time.Duration, key string, msgs failureMessages) *failureLog {
	return &failureLog{log: log, every: every, key: key, msgs: msgs}
}

func (l *failureLog) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// failed records a failure under key, and logs it if the key's last line
// is at least every old: the first line of a run names the error, later
// ones count the failures since the line before. attrs are added to the
// line.
func (l *failureLog) failed(key string, err error, attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runs == nil {
		l.runs = map[string]*failureRun{}
	}
	r := l.runs[key]
	if r == nil {
		r = &failureRun{}
		l.runs[key] = r
	}
	now := l.clock()
	r.open = true
	r.total++
	r.unlogged++
	// A new run waits for the last line's period too: a step that fails
	// and succeeds by turns would otherwise log every failure as a first.
	if !r.logged.IsZero() && now.Sub(r.logged) < l.every {
		return
	}
	if !r.runLogged {
		l.log.Warn(l.msgs.first, append([]any{l.key, key, "failures", r.unlogged, "err", err}, attrs...)...)
	} else {
		l.log.Warn(l.msgs.still, append([]any{l.key, key, "failures", r.unlogged, "since", now.Sub(r.logged), "last_err", err}, attrs...)...)
	}
	r.logged, r.unlogged, r.runLogged = now, 0, true
}

// succeeded ends key's run of failures: if any of it was logged, it says
// so with the run's count of failures.
func (l *failureLog) succeeded(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.runs[key]
	if r == nil || !r.open {
		return
	}
	if r.runLogged {
		l.log.Info(l.msgs.recovered, l.key, key, "failures", r.total)
	}
	// The time of the last line stays, for the next run's first failure.
	r.open, r.runLogged, r.total, r.unlogged = false, false, 0, 0
}
