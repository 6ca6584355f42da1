package indexer

import (
	"reflect"
	"testing"

	"cdp/schema"
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
		want schema.Type
	}{
		{"s", schema.Keyword}, {[]string{"a"}, schema.KeywordArray}, {1.5, schema.Number}, {true, schema.Boolean}, {nil, ""}, {[]string{}, ""},
	}
	for _, tt := range tests {
		if got := typeOf(tt.v); got != tt.want {
			t.Errorf("typeOf(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestSourceNamesAreSanitizedIntoSafeFieldNames(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Extra Col.1", "extra_col_1"}, {"会员卡号", "会员卡号"}, {"__private", "private"}, {"", ""}, {"...", ""},
		{"a.b.c", "a_b_c"}, {string(make([]byte, 100)), ""},
	}
	for _, tt := range tests {
		if got := sanitizeKey(tt.in); got != tt.want {
			t.Errorf("sanitizeKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := sanitizeKey(string(make([]rune, 0)) + "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"); len(got) != maxKeyLen {
		t.Errorf("a long name is cut to %d characters, got %d", maxKeyLen, len(got))
	}
}

func TestObjectsAndMixedListsAreKeptAsJSONText(t *testing.T) {
	if got := sanitizeValue(map[string]any{"a": 1.0}); got != `{"a":1}` {
		t.Errorf("object: %v", got)
	}
	if got := sanitizeValue([]any{"a", 1.0}); got != `["a",1]` {
		t.Errorf("mixed list: %v", got)
	}
	if got := sanitizeValue([]any{"a", "b"}); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("list of strings: %#v", got)
	}
}
