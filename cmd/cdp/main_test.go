package main

import (
	"os"
	"testing"

	"cdp/testing/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveBinaries()
	os.Exit(code)
}
