package indexer

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"cdp/customer"
	"cdp/schema"
	"cdp/wire"
)

func TestARejectedDynamicFieldIsMovedToTheUnindexedTwin(t *testing.T) {
	d := newDynamicFields(nil, "i", "attrs", 10, nil, nil)
	doc := map[string]any{"name": "x", "attrs": map[string]any{"vip": "maybe", "score": 1.0}}
	reason := "failed to parse field [attrs.vip] of type [boolean] in document with id 'c1'. Preview of field's value: 'maybe'"
	if !d.demoteRejected(doc, reason) {
		t.Fatal("a rejection naming attrs.vip must demote it")
	}
	want := map[string]any{"name": "x", "attrs": map[string]any{"score": 1.0}, "attrs_unindexed": map[string]any{"vip": "maybe"}}
	if !reflect.DeepEqual(doc, want) {
		t.Fatalf("doc = %v, want %v", doc, want)
	}
}

func TestARejectionOutsideTheDynamicObjectCannotBeHelped(t *testing.T) {
	d := newDynamicFields(nil, "i", "attrs", 10, nil, nil)
	for _, reason := range []string{
		"failed to parse field [birthday] of type [date] in document with id 'c1'",
		"failed to parse field [attrs.gone] of type [long]",
		"document contains at least one immense term",
	} {
		doc := map[string]any{"attrs": map[string]any{"vip": true}}
		if d.demoteRejected(doc, reason) {
			t.Errorf("%q: demoted, but it names no field of the document's attrs", reason)
		}
	}
}

func TestDynamicKeysAreTypedByTheirFirstJSONValue(t *testing.T) {
	tests := []struct {
		name, json string
		want       schema.Type
	}{
		{"a string is a keyword", `"s"`, schema.Keyword},
		{"a list of strings is a keyword array", `["a","b"]`, schema.KeywordArray},
		{"a list of one string is a keyword array", `["a"]`, schema.KeywordArray},
		{"an empty list types nothing yet", `[]`, ""},
		{"a number is a number", `1.5`, schema.Number},
		{"a boolean is a boolean", `true`, schema.Boolean},
		{"null types nothing yet", `null`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Documents are rebuilt from rows read back from the row store:
			// values reach typeOf as JSON decoding gives them.
			var v any
			if err := json.Unmarshal([]byte(tt.json), &v); err != nil {
				t.Fatal(err)
			}
			if got := typeOf(v); got != tt.want {
				t.Errorf("typeOf(%s) = %q, want %q", tt.json, got, tt.want)
			}
			// Event documents are typed straight from the sanitized values.
			if got := typeOf(wire.SanitizeValue(v)); got != tt.want {
				t.Errorf("typeOf(SanitizeValue(%s)) = %q, want %q", tt.json, got, tt.want)
			}
		})
	}
}

// A list column of a CDC customers row, and a list trait of an identify,
// are typed on the way real messages take: decoded, stored as a row, read
// back from the row store as JSON, and built into the document's attrs.
func TestListsFromCDCRowsAndIdentifyTraitsAreTypedAsKeywordArrays(t *testing.T) {
	tests := []struct {
		name, topic, msg string
		want             schema.Type
	}{
		{"a CDC column holding a list of strings", TopicCustomers,
			`{"after":{"id":1,"name":"a","labels":["vip","b2b"]},"source":{"lsn":1,"ts_ms":1},"op":"c"}`, schema.KeywordArray},
		{"a CDC column holding an empty list", TopicCustomers,
			`{"after":{"id":1,"name":"a","labels":[]},"source":{"lsn":1,"ts_ms":1},"op":"c"}`, ""},
		{"a CDC column holding a string", TopicCustomers,
			`{"after":{"id":1,"name":"a","labels":"vip"},"source":{"lsn":1,"ts_ms":1},"op":"c"}`, schema.Keyword},
		{"an identify trait holding a list of strings", TopicEvents,
			`{"type":"identify","messageId":"m1","userId":"1","traits":{"labels":["vip","b2b"]}}`, schema.KeywordArray},
		{"an identify trait holding an empty list", TopicEvents,
			`{"type":"identify","messageId":"m1","userId":"1","traits":{"labels":[]}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s customer.Sources
			if tt.topic == TopicEvents {
				e, err := wire.ParseEvent([]byte(tt.msg), time.Now())
				if err != nil {
					t.Fatal(err)
				}
				u := newProfileUpdate()
				foldEvent(u, e, identities(nil, e))
				// What profileMerge leaves in the row store.
				s.Profile = readBack(t, map[string]any{"rid": rowID(customer.KindProfile, "c1"), "kind": customer.KindProfile,
					"customer_id": "c1", "traits": u.traits, "first_seen": u.firstSeen, "last_seen": u.lastSeen}).Profile
			} else {
				c, err := parseChange(tt.topic, []byte("1"), []byte(tt.msg))
				if err != nil {
					t.Fatal(err)
				}
				row := newRow(c, nil, map[string]string{"1": "c1"})
				s.Customer = &readBack(t, row).Row
			}
			doc, ok := customer.Build("c1", s)
			if !ok {
				t.Fatal("no document")
			}
			v, ok := doc["attrs"].(map[string]any)["labels"]
			if !ok {
				t.Fatalf("attrs = %v, want labels", doc["attrs"])
			}
			if got := typeOf(v); got != tt.want {
				t.Errorf("attrs.labels = %#v is typed %q, want %q", v, got, tt.want)
			}
		})
	}
}

// readBack returns a row as the second stage reads it: the JSON the row
// store holds, decoded again.
func readBack(t *testing.T, row any) *hit {
	t.Helper()
	src, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	h, err := decodeHit(src)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
