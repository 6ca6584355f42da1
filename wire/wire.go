// Package wire decodes the two formats messages arrive in (CONTRACT §1):
// Segment-spec SDK events (ParseEvent) and Debezium CDC change events of
// the source tables (ParseChange), and sanitizes the names and values they
// bring into what the customer document can hold. It is pure: no Kafka, no
// OpenSearch, no row store, so a reader and a test can use it on bytes
// alone.
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode"
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

// jsonProblem says what is wrong with a message's JSON in the words of
// the wire format, not of the Go types it is decoded into.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	if te.Field == "" {
		return "the message is a JSON " + te.Value + ", not an object"
	}
	want := "an object"
	switch te.Type.Kind() {
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		want = "true or false"
	case reflect.Slice, reflect.Array:
		want = "a list"
	case reflect.Int, reflect.Int64, reflect.Float64:
		want = "a number"
	}
	// The path names the JSON keys, but an embedded Go struct adds its
	// own name ("Event.type"): keys of both formats start in lowercase.
	field := te.Field
	for first, rest, ok := strings.Cut(field, "."); ok && first != "" && unicode.IsUpper(rune(first[0])); first, rest, ok = strings.Cut(rest, ".") {
		field = rest
	}
	return field + " must be " + want + ", not a JSON " + te.Value
}
