package api

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestACursorOpensOnlyForTheSearchItWasSealedFor(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	search := cursorSearch(&searchRequest{Filter: json.RawMessage(`{"all": []}`)}, "customer_id:asc,")
	c := cursor{After: []json.RawMessage{json.RawMessage(`"c7"`)}, Sort: "customer_id:asc,"}
	sealed := sealCursor(key, c, search)
	if got, err := openCursor(key, sealed, search); err != nil || string(got.After[0]) != `"c7"` {
		t.Fatalf("openCursor = %v, %v; want the cursor back", got, err)
	}
	// The same filter with other white space is the same search.
	same := cursorSearch(&searchRequest{Filter: json.RawMessage(`{ "all" : [ ] }`)}, "customer_id:asc,")
	if _, err := openCursor(key, sealed, same); err != nil {
		t.Errorf("the filter with other white space: %v", err)
	}
	tests := []struct {
		name, text string
		search     []byte
		key        []byte
	}{
		{"another filter", sealed, cursorSearch(&searchRequest{Filter: json.RawMessage(`{"any": []}`)}, "customer_id:asc,"), key},
		{"another sort", sealed, cursorSearch(&searchRequest{Filter: json.RawMessage(`{"all": []}`)}, "city:asc,"), key},
		{"another key", sealed, search, []byte("another key of thirty-two bytes!")},
		{"bytes appended", sealed + "x", search, key},
		{"no signature", sealed[:len(sealed)-23], search, key},
		{"not a cursor", "not-a-cursor", search, key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := openCursor(tt.key, tt.text, tt.search); !errors.Is(err, errBadCursor) {
				t.Errorf("openCursor = %v, want errBadCursor", err)
			}
		})
	}
}
