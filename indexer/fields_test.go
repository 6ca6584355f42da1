package indexer

import (
	"reflect"
	"testing"

	"cdp/mapping"
)

func TestARejectedDynamicFieldIsMovedToTheUnindexedTwin(t *testing.T) {
	d := newDynamicFields(nil, "i", "attrs", 10, nil)
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
	d := newDynamicFields(nil, "i", "attrs", 10, nil)
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
		v    any
		want mapping.Type
	}{
		{"s", mapping.Keyword}, {[]string{"a"}, mapping.KeywordArray}, {1.5, mapping.Number}, {true, mapping.Boolean}, {nil, ""}, {[]string{}, ""},
	}
	for _, tt := range tests {
		if got := typeOf(tt.v); got != tt.want {
			t.Errorf("typeOf(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
