package identity

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestTheDefaultRulesAreTheContracts(t *testing.T) {
	r := DefaultRules()
	if got, want := r.Types(), []string{CRMID, Phone, Email, AnonymousID}; !reflect.DeepEqual(got, want) {
		t.Errorf("types by priority = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(r.Types(), Types) {
		t.Errorf("Types = %v, the rules order %v", Types, r.Types())
	}
	for typ, max := range map[string]int{CRMID: 1, Phone: 3, Email: 3, AnonymousID: 50} {
		rule, ok := r.Rule(typ)
		if !ok || rule.MaxPerProfile != max || rule.Type != typ {
			t.Errorf("Rule(%s) = %+v, %v; want max_per_profile %d", typ, rule, ok, max)
		}
		if !r.Known(typ) || r.MaxPerProfile(typ) != max {
			t.Errorf("%s: Known %v MaxPerProfile %d", typ, r.Known(typ), r.MaxPerProfile(typ))
		}
	}
	if r.Known("wechat_openid") {
		t.Error("an undeclared type is known")
	}
	var none *Rules
	if !reflect.DeepEqual(none.Types(), r.Types()) || !none.Blocked(Identity{CRMID, "null"}) {
		t.Error("nil rules are not the defaults")
	}
}

func TestEveryDefaultBlockedClassIsBlocked(t *testing.T) {
	tests := []struct {
		name string
		id   Identity
	}{
		{"an empty value", Identity{AnonymousID, ""}},
		{"a blank value", Identity{CRMID, "   "}},
		{"null", Identity{AnonymousID, "null"}},
		{"NULL in capitals", Identity{CRMID, "NULL"}},
		{"undefined", Identity{AnonymousID, "undefined"}},
		{"None", Identity{Email, " None "}},
		{"unknown", Identity{Phone, "unknown"}},
		{"anonymous", Identity{AnonymousID, "anonymous"}},
		{"Anonymous as a crm id", Identity{CRMID, "Anonymous"}},
		{"a zero crm id", Identity{CRMID, "0"}},
		{"zeros and dashes", Identity{AnonymousID, "00000000-0000-0000-0000-000000000000"}},
		{"dashes only", Identity{CRMID, "---"}},
		{"a phone of zeros", Identity{Phone, "00000000000"}},
		{"a phone of ones", Identity{Phone, "11111111111"}},
		{"a phone of nines", Identity{Phone, "99999999999"}},
		{"a repeated digit with a country code", Identity{Phone, "+86 111 1111 1111"}},
		{"a repeated digit, normalized", Identity{Phone, "+8611111111111"}},
		{"a repeated digit with spaces", Identity{Phone, "888 8888 8888"}},
		{"a phone of zeros, normalized", Identity{Phone, "+860000000000"}},
		{"an unknown type", Identity{"wechat_openid", "o-123"}},
		{"a value too long for a key", Identity{Email, strings.Repeat("a", MaxValueBytes) + "@example.com"}},
	}
	r := DefaultRules()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !r.Blocked(tt.id) {
				t.Errorf("%v is not blocked", tt.id)
			}
		})
	}
}

func TestValuesThatIdentifySomeoneAreNotBlocked(t *testing.T) {
	tests := []struct {
		name string
		id   Identity
	}{
		{"a real phone with many zeros", Identity{Phone, "13800000000"}},
		{"a real phone of one digit after the first", Identity{Phone, "13333333333"}},
		{"a real phone, normalized", Identity{Phone, "+8613800000000"}},
		{"a foreign phone", Identity{Phone, "+1 415 555 2671"}},
		{"a crm id of ones", Identity{CRMID, "1111"}},
		{"a crm id with zeros", Identity{CRMID, "1000"}},
		{"a crm id ending in a dash", Identity{CRMID, "0-1"}},
		{"an email", Identity{Email, "zhang@example.com"}},
		{"an email of an unknown person", Identity{Email, "unknown@example.com"}},
		{"a device id containing null", Identity{AnonymousID, "nullable-device"}},
		{"a device id", Identity{AnonymousID, "dev-9f2"}},
		{"a uuid", Identity{AnonymousID, "0000aaaa-0000-0000-0000-000000000000"}},
	}
	r := DefaultRules()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r.Blocked(tt.id) {
				t.Errorf("%v is blocked", tt.id)
			}
		})
	}
}

func TestLinkingNormalizesDropsBlockedValuesAndOrdersByPriority(t *testing.T) {
	got := DefaultRules().Linking([]Identity{
		{AnonymousID, "dev-1"}, {AnonymousID, "anonymous"}, {Email, " Zhang@Example.com "},
		{Phone, "00000000000"}, {Phone, "138 0000 0000"}, {CRMID, "1001"}, {Phone, "+8613800000000"},
		{"wechat_openid", "o-1"},
	})
	want := []Identity{{CRMID, "1001"}, {Phone, "+8613800000000"}, {Email, "zhang@example.com"}, {AnonymousID, "dev-1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Linking = %v, want %v", got, want)
	}
}

func TestOrderFollowsConfiguredPrioritiesAndKeepsTheOrderWithinAType(t *testing.T) {
	r, err := ParseRules([]byte(`{"types": {"email": {"priority": 1}, "crm_id": {"priority": 2}, "phone": {"priority": 3}}}`), true)
	if err != nil {
		t.Fatal(err)
	}
	ids := []Identity{{AnonymousID, "b"}, {Phone, "p"}, {CRMID, "c"}, {AnonymousID, "a"}, {"other", "x"}, {Email, "e"}}
	r.Order(ids)
	want := []Identity{{Email, "e"}, {CRMID, "c"}, {Phone, "p"}, {AnonymousID, "b"}, {AnonymousID, "a"}, {"other", "x"}}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("Order = %v, want %v", ids, want)
	}
}

func TestARulesFileTunesTheDefaultsAndDeclaresTypes(t *testing.T) {
	yamlText := `
types:
  phone:
    max_per_profile: 2
    blocked_values: ["10086"]
  anonymous_id:
    blocked_patterns: ["^test-"]
  crm_id:
    default_blocklist: false
  wechat_openid:
    priority: 5
    max_per_profile: 3
    blocked_values: [" NoBody "]
`
	jsonText := `{"types": {"phone": {"max_per_profile": 2, "blocked_values": ["10086"]},
	  "anonymous_id": {"blocked_patterns": ["^test-"]}, "crm_id": {"default_blocklist": false},
	  "wechat_openid": {"priority": 5, "max_per_profile": 3, "blocked_values": [" NoBody "]}}}`
	dir := t.TempDir()
	for name, text := range map[string]string{"rules.yaml": yamlText, "rules.json": jsonText} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := LoadRules(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := r.Types(), []string{CRMID, Phone, Email, AnonymousID, "wechat_openid"}; !reflect.DeepEqual(got, want) {
				t.Errorf("types = %v, want %v", got, want)
			}
			if r.MaxPerProfile(Phone) != 2 || r.MaxPerProfile(Email) != 3 || r.MaxPerProfile("wechat_openid") != 3 {
				t.Errorf("max per profile: phone %d email %d wechat_openid %d", r.MaxPerProfile(Phone), r.MaxPerProfile(Email), r.MaxPerProfile("wechat_openid"))
			}
			blocked := []Identity{{Phone, "10086"}, {Phone, "11111111111"}, {AnonymousID, "TEST-1"}, {AnonymousID, "null"},
				{"wechat_openid", "nobody"}, {"wechat_openid", "unknown"}}
			for _, id := range blocked {
				if !r.Blocked(id) {
					t.Errorf("%v is not blocked", id)
				}
			}
			for _, id := range []Identity{{CRMID, "0"}, {CRMID, "null"}, {AnonymousID, "dev-test-1"}, {"wechat_openid", "o-1"}} {
				if r.Blocked(id) {
					t.Errorf("%v is blocked", id)
				}
			}
		})
	}
}

func TestAnEmptyPathGivesTheDefaults(t *testing.T) {
	r, err := LoadRules("")
	if err != nil || r != DefaultRules() {
		t.Fatalf("LoadRules(\"\") = %v, %v", r, err)
	}
}

func TestABadRulesFileIsRefusedNamingTheTypeAndKey(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"a misspelt key", `{"types": {"phone": {"max": 2}}}`, []string{`type "phone"`, `"max"`}},
		{"a misspelt top-level key", `{"typs": {}}`, []string{`"typs"`}},
		{"a max per profile of zero", `{"types": {"email": {"max_per_profile": 0}}}`, []string{`type "email"`, "max_per_profile 0"}},
		{"a negative priority", `{"types": {"crm_id": {"priority": -1}}}`, []string{`type "crm_id"`, "priority -1"}},
		{"a shared priority", `{"types": {"email": {"priority": 2}}}`, []string{"priority 2", `"email"`, `"phone"`}},
		{"a declared type without a priority", `{"types": {"openid": {"max_per_profile": 1}}}`, []string{`type "openid"`, "priority: required"}},
		{"a declared type without a max", `{"types": {"openid": {"priority": 9}}}`, []string{`type "openid"`, "max_per_profile: required"}},
		{"a bad type name", `{"types": {"Open ID": {"priority": 9, "max_per_profile": 1}}}`, []string{`type "Open ID"`, "lowercase"}},
		{"a bad pattern", `{"types": {"phone": {"blocked_patterns": ["^ok$", "("]}}}`, []string{`type "phone"`, `blocked_patterns[1] "("`}},
		{"a string for a number", `{"types": {"phone": {"priority": "high"}}}`, []string{`type "phone"`, "priority"}},
		{"an empty file", ``, []string{"empty"}},
		{"not JSON", `{"types": `, []string{"invalid rules"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRules([]byte(tt.text), true)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
	if _, err := ParseRules([]byte("types:\n  phone:\n    max_per_profile: [\n"), false); err == nil || !strings.Contains(err.Error(), "YAML") {
		t.Errorf("bad YAML: %v", err)
	}
	if _, err := LoadRules(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}
