// Package e2e holds the end-to-end tests of the service as a whole (all in
// its _test files; this package has no code of its own): messages produced
// to Kafka go through the indexer into OpenSearch and come back out of the
// API, against the real services the harness provides.
package e2e
