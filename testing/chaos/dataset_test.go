package chaos_test

import (
	"testing"

	"cdp/testing/workload"
)

func TestTheScaleDatasetHasAtLeast50000Changes(t *testing.T) {
	d := workload.NewDataset(scaleSeed, scaleCustomers)
	if len(d.Messages) < 50000 {
		t.Fatalf("%d messages, want at least 50,000: raise scaleCustomers", len(d.Messages))
	}
	t.Logf("%d messages: %s", len(d.Messages), d.Stats)
}
