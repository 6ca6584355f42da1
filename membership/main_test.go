package membership_test

import (
	"os"
	"testing"

	"cdp/testing/harness"
)

// TestMain removes the cdp binary the process tests build.
func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveBinaries()
	os.Exit(code)
}
