package wire

import (
	"reflect"
	"testing"
)

func TestSourceNamesAreSanitizedIntoSafeFieldNames(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Extra Col.1", "extra_col_1"}, {"会员卡号", "会员卡号"}, {"__private", "private"}, {"", ""}, {"...", ""},
		{"a.b.c", "a_b_c"}, {string(make([]byte, 100)), ""},
	}
	for _, tt := range tests {
		if got := SanitizeKey(tt.in); got != tt.want {
			t.Errorf("SanitizeKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := SanitizeKey(string(make([]rune, 0)) + "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"); len(got) != maxKeyLen {
		t.Errorf("a long name is cut to %d characters, got %d", maxKeyLen, len(got))
	}
}

func TestObjectsAndMixedListsAreKeptAsJSONText(t *testing.T) {
	if got := SanitizeValue(map[string]any{"a": 1.0}); got != `{"a":1}` {
		t.Errorf("object: %v", got)
	}
	if got := SanitizeValue([]any{"a", 1.0}); got != `["a",1]` {
		t.Errorf("mixed list: %v", got)
	}
	if got := SanitizeValue([]any{"a", "b"}); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("list of strings: %#v", got)
	}
}
