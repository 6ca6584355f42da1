package access

import "testing"

func TestMaskingKeepsWhatTheContractSays(t *testing.T) {
	for _, c := range []struct{ field, in, want string }{
		{"phone", "+8613800000000", "+86138****0000"},
		{"phone", "+8613912345678", "+86139****5678"},
		{"phone", "+14155552671", "+1415***2671"},
		{"phone", "13800000000", "138****0000"},
		{"phone", "12345", "1****"},
		{"email", "zhang@example.com", "z***@example.com"},
		{"email", "a@b.cn", "a***@b.cn"},
		{"email", "王五@例子.中国", "王***@例子.中国"},
		{"email", "noat", "n***"},
		{"name", "张三", "张*"},
		{"name", "欧阳娜娜", "欧***"},
		{"name", "Emily", "E****"},
		{"name", "李", "李"},
		{"name", "", ""},
		{"city", "北京", "北京"},
	} {
		if got := MaskValue(c.field, c.in); got != c.want {
			t.Errorf("MaskValue(%s, %q) = %q, want %q", c.field, c.in, got, c.want)
		}
	}
}

func TestAMaskedDocumentKeepsNoPersonalValueInClear(t *testing.T) {
	v := NewView([]string{"name", "phone", "email"})
	got, err := v.MaskJSON([]byte(`{"customer_id":"c1","name":"张三","phone":"+8613800000000","email":"zhang@example.com","city":"北京",
		"identities":[{"type":"phone","value":"+8613800000000"},{"type":"email","value":"zhang@example.com"},{"type":"crm_id","value":"1001"}],
		"highlight":{"name":["<em>张</em>三"],"city":["x"]},"metrics":{"total_spend":199.5}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"city":"北京","customer_id":"c1","email":"z***@example.com","highlight":{"city":["x"]},"identities":[{"type":"phone","value":"+86138****0000"},{"type":"email","value":"z***@example.com"},{"type":"crm_id","value":"1001"}],"metrics":{"total_spend":199.5},"name":"张*","phone":"+86138****0000"}`
	if string(got) != want {
		t.Errorf("masked:\n got  %s\n want %s", got, want)
	}
}

func TestAFilterOnAMaskedFieldIsForbiddenButIsSet(t *testing.T) {
	v := NewView([]string{"name", "phone", "email"})
	for _, c := range []struct{ filter, path string }{
		{`{"field":"phone","op":"eq","value":"+8613800000000"}`, "field"},
		{`{"field":"phone","op":"is_set"}`, ""},
		{`{"all":[{"field":"city","op":"eq","value":"x"},{"not":{"field":"email","op":"starts_with","value":"z"}}]}`, "all[1].not.field"},
		{`{"any":[{"field":"name","op":"is_not_set"},{"field":"name.pinyin","op":"matches","value":"zh"}]}`, "any[1].field"},
		{`{"nested":"orders","match":"any","where":{"field":"orders.status","op":"eq","value":"paid"}}`, ""},
	} {
		err := v.CheckFilter([]byte(c.filter))
		var path string
		if f, ok := err.(*ForbiddenField); ok {
			path = f.Path
		} else if err != nil {
			t.Fatalf("%s: %v", c.filter, err)
		}
		if path != c.path {
			t.Errorf("%s: forbidden at %q, want %q", c.filter, path, c.path)
		}
	}
	if err := (View{}).CheckFilter([]byte(`{"field":"phone","op":"eq","value":"1"}`)); err != nil {
		t.Errorf("a view that masks nothing forbade a filter: %v", err)
	}
}

func TestTheDefaultRolesAllowWhatSection7Says(t *testing.T) {
	p := NewPolicy(DefaultRoles())
	for _, c := range []struct {
		role, method, route string
		want                bool
	}{
		{"admin", "GET", "/v1/audit", true},
		{"admin", "POST", "/v1/keys", true},
		{"marketer", "POST", "/v1/filters/preview", true},
		{"marketer", "POST", "/v1/exports", true},
		{"marketer", "GET", "/v1/customers/:customer_id", true},
		{"marketer", "GET", "/v1/customers", false},
		{"marketer", "GET", "/v1/keys", false},
		{"marketer", "GET", "/v1/audit", false},
		{"sales", "GET", "/v1/customers", true},
		{"sales", "POST", "/v1/customers/count", true},
		{"sales", "POST", "/v1/customers/:customer_id/tags", true},
		{"sales", "POST", "/v1/exports", false},
		{"sales", "POST", "/v1/segments", false},
		{"service", "GET", "/v1/customers/lookup", true},
		{"service", "POST", "/v1/customers/search", false},
		{"ingest", "GET", "/v1/fields", false},
		{"nobody", "GET", "/v1/fields", false},
		{"marketer", "GET", "/v1/not-a-route", false},
	} {
		if got := p.Allows(c.role, c.method, c.route); got != c.want {
			t.Errorf("%s %s %s: allowed %v, want %v", c.role, c.method, c.route, got, c.want)
		}
	}
}

func TestASavedFilterShownToAMaskingRoleHasItsPersonalValuesMasked(t *testing.T) {
	v := NewView([]string{"name", "phone", "email"})
	for _, c := range []struct{ filter, want string }{
		{`{"field":"phone","op":"eq","value":"+8613812345678"}`, `{"field":"phone","op":"eq","value":"+86138****5678"}`},
		{`{"all":[{"field":"city","op":"eq","value":"北京"},{"not":{"field":"email","op":"in","value":["zhang@example.com","li@example.org"]}}]}`,
			`{"all":[{"field":"city","op":"eq","value":"北京"},{"not":{"field":"email","op":"in","value":["z***@example.com","l***@example.org"]}}]}`},
		{`{"any":[{"field":"name.pinyin","op":"matches","value":"zhangsan"},{"field":"name","op":"is_set"}]}`,
			`{"any":[{"field":"name.pinyin","op":"matches","value":"z*******"},{"field":"name","op":"is_set"}]}`},
		{`{"field":"phone","op":"eq","value":13812345678}`, `{"field":"phone","op":"eq","value":"***"}`},
		{`{"field":"city","op":"eq","value":"上海"}`, `{"field":"city","op":"eq","value":"上海"}`},
		{`not json`, `not json`},
	} {
		if got := string(v.MaskFilter([]byte(c.filter))); got != c.want {
			t.Errorf("%s masked: %s, want %s", c.filter, got, c.want)
		}
	}
	raw := `{"field":"phone","op":"eq","value":"+8613812345678"}`
	if got := string((View{}).MaskFilter([]byte(raw))); got != raw {
		t.Errorf("a view that masks nothing changed a filter: %s", got)
	}
}
