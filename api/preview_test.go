package api

import (
	"encoding/json"
	"testing"
)

func TestDropKeyCutsOneTopLevelMemberAndKeepsTheRestAsItWas(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"a middle member", `{"a":1,"relation":"customer","b":[1,2]}`, `{"a":1,"b":[1,2]}`},
		{"the first member", `{"relation":"customer","a":{"relation":"x"}}`, `{"a":{"relation":"x"}}`},
		{"the last member", `{"a":"relation","relation":{"name":"event","parent":"c1"}}`, `{"a":"relation"}`},
		{"the only member", `{"relation":"customer"}`, `{}`},
		{"with white space", "{ \"relation\" : \"customer\" ,\n \"a\" : 1 }", "{ \n \"a\" : 1 }"},
		{"no such member", `{"a":1,"b":{"relation":2}}`, `{"a":1,"b":{"relation":2}}`},
		{"not an object", `[1,2]`, `[1,2]`},
		{"not JSON", `{"a":`, `{"a":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dropKey(json.RawMessage(tt.in), "relation")
			if string(got) != tt.want {
				t.Errorf("dropKey(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
