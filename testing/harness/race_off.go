//go:build !race

package harness

// RaceDetector says the binary was built with -race. Tests at the
// acceptance sizes of their issues, which take minutes under the race
// detector, run those sizes only without it (make test runs them in its
// second, race-free pass) and a smaller one with it.
const RaceDetector = false
