// Package wire decodes the two formats messages arrive in (CONTRACT §1):
// Segment-spec SDK events (ParseEvent) and Debezium CDC change events of
// the source tables (ParseChange), and sanitizes the names and values they
// bring into what the customer document can hold. It is pure: no Kafka, no
// OpenSearch, no row store, so a reader and a test can use it on bytes
// alone.
package wire

import (
	"errors"
	"fmt"
)

// ErrBad marks a message that can never be applied: the indexer sends it
// to the dead-letter topic with the error's text as the reason.
var ErrBad = errors.New("bad message")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBad, fmt.Sprintf(format, args...))
}

// maxIDBytes bounds every identifier a message brings (message ids, user
// and device ids, row keys): they become parts of OpenSearch document ids,
// which may not exceed 512 bytes.
const maxIDBytes = 256
