// The chaos and scale tests: see doc.go.
package chaos_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"cdp/config"
	"cdp/testing/harness"
	"cdp/testing/workload"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveBinaries()
	os.Exit(code)
}

// chaos returns the services, skipping the test unless CDP_CHAOS=1. (With
// CDP_CHAOS=1 it never skips, CI or not: an unreachable service fails.)
func chaos(t *testing.T) *harness.Env {
	t.Helper()
	if os.Getenv("CDP_CHAOS") != "1" {
		t.Skip("chaos test: stops and restarts services; run alone with CDP_CHAOS=1 (see the package doc)")
	}
	return harness.Services(t)
}

// testConfig returns the test's own configuration (prefixes and consumer
// group of its own, deleted at the end), with the service's default batch
// size, so that throughput is measured as deployed.
func testConfig(t *testing.T, env *harness.Env) *config.Config {
	cfg := env.Config(t)
	if def, err := config.FromEnv(); err == nil {
		cfg.BatchSize, cfg.BatchWait = def.BatchSize, def.BatchWait
	}
	return cfg
}

// dataset generates a stream, logging what it holds.
func dataset(t *testing.T, seed uint64, customers int) *workload.Dataset {
	d := workload.NewDataset(seed, customers)
	want, err := d.Expected()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stream: %d messages (%s); %d expected documents, %d distinct events", len(d.Messages), d.Stats, len(want), d.Model().EventCount())
	return d
}

// verify checks the final state: the documents and event counts of the
// model, no dead letter (or exactly the poison ones), and no indexer
// process gone.
func verify(t *testing.T, env *harness.Env, cfg *config.Config, d *workload.Dataset, procs ...*harness.Process) {
	t.Helper()
	state := env.VerifyState(t, cfg, d.Model(), 60*time.Second)
	env.ExpectedDeadLetters(t, cfg, d.Messages)
	for _, p := range procs {
		if !p.Running() {
			t.Errorf("%s exited: %v", p.Name, p.ExitError())
		}
	}
	t.Logf("final state exact: %d documents, %d events", len(state.Docs), state.EventsTotal)
}

// rate formats a throughput.
func rate(n int, d time.Duration) string { return fmt.Sprintf("%.0f", float64(n)/d.Seconds()) }
