//go:build race

package e2e_test

// raceDetector says the test binary was built with -race.
const raceDetector = true
