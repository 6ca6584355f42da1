package identity

import "testing"

func TestNormalizeGivesTheFormsTheContractStores(t *testing.T) {
	tests := []struct {
		typ, in, want string
	}{
		{Phone, "13800000000", "+8613800000000"},
		{Phone, " 138 0000 0000 ", "+8613800000000"},
		{Phone, "+86 138-0000-0000", "+8613800000000"},
		{Phone, "008613800000000", "+8613800000000"},
		{Phone, "+1 415 555 2671", "+14155552671"},
		{Phone, "12", "12"},
		{Phone, "", ""},
		{Email, " Zhang@Example.COM ", "zhang@example.com"},
		{CRMID, " 1001 ", "1001"},
		{AnonymousID, "dev-9F2", "dev-9F2"},
	}
	for _, tt := range tests {
		if got := Normalize(tt.typ, tt.in); got != tt.want {
			t.Errorf("Normalize(%s, %q) = %q, want %q", tt.typ, tt.in, got, tt.want)
		}
	}
}
