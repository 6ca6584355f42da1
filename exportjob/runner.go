package exportjob

import (
	"cdp/access"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"cdp/coord"
	"cdp/export"
	"cdp/store"
)

// Leaser hands out the leases and fencing tokens of jobs;
// *coord.Coordinator is one.
type Leaser interface {
	TryLease(ctx context.Context, name string, ttl time.Duration) (*coord.Lease, error)
	Fence(ctx context.Context, name string) (int64, error)
}

// RunnerConfig is what a Runner needs.
type RunnerConfig struct {
	// Name names this process in the jobs it runs (host:pid, say).
	Name string
	// Customers is the alias the exports read.
	Customers string
	// Dir is where files are written.
	Dir string
	// Brokers are Kafka's, for the Kafka destination.
	Brokers []string
	// LockTTL is how long a job's lease outlives a runner that stopped
	// extending it.
	LockTTL time.Duration
	// Running bounds the jobs this runner runs at once.
	Running int
	// Poll is how often the runner looks for jobs to run (1s when 0).
	Poll time.Duration
	// PageSize is the members of one page, so of one checkpoint
	// (export.DefaultPageSize when 0).
	PageSize int
	// PageDelay, a test hook, waits this long after each page.
	PageDelay time.Duration
}

// Runner runs the jobs no other process runs.
type Runner struct {
	cfg   RunnerConfig
	jobs  *Store
	st    *store.Client
	lease Leaser
	log   *slog.Logger

	mu     sync.Mutex
	active map[string]bool
	// retryAt delays a job whose last run failed for a cause that may
	// pass (OpenSearch or Kafka unavailable), doubling each time.
	retryAt map[string]backoff
}

type backoff struct {
	at    time.Time
	delay time.Duration
}

// NewRunner returns a runner of the jobs in jobs.
func NewRunner(cfg RunnerConfig, jobs *Store, st *store.Client, lease Leaser, log *slog.Logger) *Runner {
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Running < 1 {
		cfg.Running = 1
	}
	return &Runner{cfg: cfg, jobs: jobs, st: st, lease: lease, log: log, active: map[string]bool{}, retryAt: map[string]backoff{}}
}

// Run looks for jobs every Poll and runs those it can take a lease on,
// until ctx ends; it then waits for the jobs it runs to stop (they stay
// running, for a process started later to resume).
func (r *Runner) Run(ctx context.Context) error {
	if err := os.MkdirAll(r.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("export dir: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	for {
		r.poll(ctx, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (r *Runner) poll(ctx context.Context, wg *sync.WaitGroup) {
	r.mu.Lock()
	free := r.cfg.Running - len(r.active)
	r.mu.Unlock()
	if free <= 0 {
		return
	}
	jobs, err := r.jobs.Pending(ctx, 100)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("export jobs: cannot list pending jobs", "err", err)
		}
		return
	}
	for i := range jobs {
		if free == 0 {
			return
		}
		id := jobs[i].ID
		r.mu.Lock()
		busy := r.active[id] || time.Now().Before(r.retryAt[id].at)
		r.mu.Unlock()
		if busy {
			continue
		}
		lease, err := r.lease.TryLease(ctx, "export-job:"+id, r.cfg.LockTTL)
		if errors.Is(err, coord.ErrHeld) {
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("export jobs: lease unavailable", "job", id, "err", err)
			}
			return
		}
		free--
		r.mu.Lock()
		r.active[id] = true
		r.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.run(ctx, id, lease)
			lease.Release()
			r.mu.Lock()
			delete(r.active, id)
			if err != nil {
				rt := r.retryAt[id]
				rt.delay = min(max(2*rt.delay, time.Second), time.Minute)
				rt.at = time.Now().Add(rt.delay)
				r.retryAt[id] = rt
			} else {
				delete(r.retryAt, id)
			}
			r.mu.Unlock()
		}()
	}
}

// errLeaseLost ends a run whose lease could not be extended.
var errLeaseLost = errors.New("exportjob: lease lost")

// run runs one job under its lease. It returns an error only for a
// cause that may pass, after which the job is tried again later.
func (r *Runner) run(parent context.Context, id string, lease *coord.Lease) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	go func() {
		t := time.NewTicker(r.cfg.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				ectx, ecancel := context.WithTimeout(ctx, r.cfg.LockTTL/3)
				err := lease.Extend(ectx)
				ecancel()
				if err != nil && ctx.Err() == nil {
					r.log.Warn("export job: lease lost; stopping", "job", id, "err", err)
					cancel(errLeaseLost)
					return
				}
			}
		}
	}()

	j, v, found, err := r.jobs.Get(ctx, id)
	if err != nil || !found || j.Status.Terminal() {
		return err
	}
	log := r.log.With("job", id, "destination", j.Destination.Type)
	fence, err := r.lease.Fence(ctx, "export-job:"+id)
	if err != nil {
		log.Warn("export job: no fencing token", "err", err)
		return err
	}
	// Take the job: this write, conditional on the version read, is the
	// one every later checkpoint of this runner is conditional on; a
	// runner before it fails its next one.
	resumed := j.Status == Running
	j.Status, j.Fence, j.Runner = Running, fence, r.cfg.Name
	if j.StartedAt == "" {
		j.StartedAt = Now()
	}
	if j.Last == "" && j.Exported == 0 {
		if j.Total, err = r.count(ctx, j); err != nil {
			return r.transient(log, err)
		}
	}

	var w export.Writer
	var sync func(*Job) error
	var closeSink func() error
	// abandon removes what only this runner would read (its part file);
	// taken removes what the runner before left once this one took the
	// job; finish makes a done job's output visible.
	abandon, taken, finish := func() {}, func() {}, func() error { return nil }
	switch j.Destination.Type {
	case Kafka:
		k, err := OpenKafka(ctx, r.cfg.Brokers, j.Destination.Topic, j.ID, j.Offsets)
		if err != nil {
			return r.transient(log, err)
		}
		if k.Skipped() > 0 {
			log.Info("export job: records of the runner before found past its checkpoint; not producing them again", "records", k.Skipped())
		}
		if j.Offsets == nil {
			// Where this job's records start: a resume reads from here.
			j.Offsets, _ = k.Sync()
		}
		w, closeSink = k, k.Close
		sync = func(j *Job) (err error) {
			j.Offsets, err = k.Sync()
			return err
		}
	default:
		// Each runner writes a part file of its own, a copy of the one
		// of the runner before cut to the checkpoint: a runner that lost
		// the job while paused and wakes to write a page more writes
		// into its own part, which nobody reads.
		oldPart := j.Part
		part, dropped, err := takePart(r.cfg.Dir, j, fence)
		if err != nil {
			return r.fail(ctx, log, j, v, err)
		}
		if dropped > 0 {
			log.Info("export job: dropping what the runner before wrote past its checkpoint", "bytes", dropped)
		}
		f, err := OpenFile(part, &j.Plan, j.Bytes)
		if err != nil {
			os.Remove(part)
			return r.fail(ctx, log, j, v, err)
		}
		j.Part = filepath.Base(part)
		w, closeSink = f.Writer(), f.Close
		sync = func(j *Job) (err error) {
			j.Bytes, err = f.Sync()
			return err
		}
		abandon = func() { os.Remove(part) }
		taken = func() {
			if oldPart != "" && oldPart != j.Part {
				os.Remove(filepath.Join(r.cfg.Dir, oldPart))
			}
		}
		finish = func() error {
			if err := f.Close(); err != nil {
				return err
			}
			return publish(part, FilePath(r.cfg.Dir, j))
		}
	}
	defer closeSink()
	if v, err = r.jobs.Put(ctx, j, v); err != nil {
		abandon()
		return r.lost(ctx, log, id, err)
	}
	taken()
	log.Info("export job started", "resumed", resumed, "after", j.Last, "exported", j.Exported, "fence", fence)

	w = access.NewView(j.Plan.Mask).Writer(w)
	base, start := j.Exported, time.Now()
	q := export.Query{Index: r.cfg.Customers, Query: j.Plan.Query, PageSize: r.cfg.PageSize, After: j.Last}
	if len(j.Plan.Source) > 0 {
		q.Source = j.Plan.Source
	}
	_, err = export.Stream(ctx, r.st, q, w, func(p export.Progress) error {
		if r.cfg.PageDelay > 0 {
			// The page is written (not yet synced) and not checkpointed:
			// a runner killed now leaves what a resume must not repeat.
			select {
			case <-ctx.Done():
			case <-time.After(r.cfg.PageDelay):
			}
		}
		if err := sync(j); err != nil {
			return err
		}
		j.Exported = base + p.Written
		if p.Last != "" {
			j.Last = p.Last
		}
		var err error
		v, err = r.jobs.Put(ctx, j, v)
		return err
	})
	if err == nil {
		err = sync(j)
	}
	if err == nil {
		err = finish()
	}
	switch {
	case errors.Is(err, ErrFenced):
		abandon()
		return r.lost(ctx, log, id, err)
	case context.Cause(ctx) == errLeaseLost:
		return errLeaseLost
	case parent.Err() != nil:
		log.Info("export job paused: the process stops; another one resumes it", "exported", j.Exported)
		return nil
	case err != nil && (store.Unavailable(err) || j.Destination.Type == Kafka):
		// Kafka errors come after the producer's own retries: the
		// brokers are away, for a while.
		return r.transient(log, err)
	case err != nil:
		return r.fail(ctx, log, j, v, err)
	}
	j.Status, j.FinishedAt = Done, Now()
	if _, err := r.jobs.Put(ctx, j, v); err != nil {
		return r.lost(ctx, log, id, err)
	}
	log.Info("export job done", "exported", j.Exported, "seconds", time.Since(start).Seconds())
	return nil
}

// count is how many members the job's query matches now.
func (r *Runner) count(ctx context.Context, j *Job) (int64, error) {
	var resp struct {
		Count int64 `json:"count"`
	}
	err := r.st.Do(ctx, http.MethodPost, "/"+r.cfg.Customers+"/_count", map[string]any{"query": j.Plan.Query}, &resp)
	return resp.Count, err
}

// transient logs a cause that may pass: the job is tried again later.
func (r *Runner) transient(log *slog.Logger, err error) error {
	log.Warn("export job interrupted; it will be tried again", "err", err)
	return err
}

// lost handles a checkpoint refused by its fence: a cancel, or another
// runner that took the job.
func (r *Runner) lost(ctx context.Context, log *slog.Logger, id string, err error) error {
	if !errors.Is(err, ErrFenced) {
		return r.transient(log, err)
	}
	j, _, found, gerr := r.jobs.Get(context.WithoutCancel(ctx), id)
	switch {
	case gerr == nil && found && j.Status == Cancelled:
		log.Info("export job cancelled")
	default:
		log.Warn("export job taken by another runner; stopping", "err", err)
	}
	return nil
}

// fail marks the job failed for a cause no retry mends.
func (r *Runner) fail(ctx context.Context, log *slog.Logger, j *Job, v Version, cause error) error {
	log.Error("export job failed", "err", cause)
	j.Status, j.FinishedAt, j.Error = Failed, Now(), cause.Error()
	if _, err := r.jobs.Put(context.WithoutCancel(ctx), j, v); err != nil && !errors.Is(err, ErrFenced) {
		return err
	}
	return nil
}
