package exportjob_test

import (
	"context"
	"errors"
	"testing"

	"cdp/export"
	"cdp/exportjob"
	"cdp/mapping"
	"cdp/testing/harness"
)

func TestACheckpointOfARunnerThatWasOvertakenIsRefused(t *testing.T) {
	env := harness.Services(t)
	cfg := env.Config(t)
	env.Bootstrap(t, cfg)
	ctx := context.Background()
	jobs := exportjob.NewStore(env.Store(t), mapping.ExportJobs.Alias(cfg.IndexPrefix))
	j := &exportjob.Job{ID: exportjob.NewID(), Status: exportjob.Queued, Destination: exportjob.Destination{Type: exportjob.File},
		Plan: exportjob.Plan{Query: []byte(`{"match_all":{}}`), Format: export.NDJSON}, CreatedAt: exportjob.Now()}
	if err := jobs.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	// Two runners read the job; the first takes it.
	first, v1, _, err := jobs.Get(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	second, v2, _, _ := jobs.Get(ctx, j.ID)
	first.Status, first.Fence = exportjob.Running, 1
	v1, err = jobs.Put(ctx, first, v1)
	if err != nil {
		t.Fatal(err)
	}
	// The second, holding what it read before, cannot take it.
	second.Status, second.Fence = exportjob.Running, 2
	if _, err := jobs.Put(ctx, second, v2); !errors.Is(err, exportjob.ErrFenced) {
		t.Fatalf("a write from a stale read: %v, want ErrFenced", err)
	}
	// Once the second takes it from a fresh read, the first's next
	// checkpoint is refused.
	second, v2, _, _ = jobs.Get(ctx, j.ID)
	second.Fence = 2
	if _, err := jobs.Put(ctx, second, v2); err != nil {
		t.Fatal(err)
	}
	first.Exported, first.Last = 100, "c100"
	if _, err := jobs.Put(ctx, first, v1); !errors.Is(err, exportjob.ErrFenced) {
		t.Fatalf("the overtaken runner's checkpoint: %v, want ErrFenced", err)
	}
	got, _, _, _ := jobs.Get(ctx, j.ID)
	if got.Fence != 2 || got.Exported != 0 {
		t.Errorf("job %+v: want the second runner's write", got)
	}
	// A cancel fences the runner off the same way.
	if c, _, err := jobs.Cancel(ctx, j.ID); err != nil || c.Status != exportjob.Cancelled {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	if _, err := jobs.Put(ctx, second, v2); !errors.Is(err, exportjob.ErrFenced) {
		t.Errorf("a checkpoint after a cancel: %v, want ErrFenced", err)
	}
}
