// Package identity resolves the identities of a person (CRM id, device id,
// phone, email) to the one customer_id (OneID) their document is kept
// under.
package identity

import (
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nyaruka/phonenumbers"
)

// Identity types.
const (
	CRMID       = "crm_id"
	AnonymousID = "anonymous_id"
	Phone       = "phone"
	Email       = "email"
)

// Types lists the contract's identity types in their default order of
// precedence (DefaultRules): the first one a message carries decides which
// customer it belongs to. A rules file may declare more and reorder them.
var Types = []string{CRMID, Phone, Email, AnonymousID}

// ValidType reports whether t is a known identity type.
func ValidType(t string) bool {
	for _, x := range Types {
		if x == t {
			return true
		}
	}
	return false
}

// DefaultRegion is the region assumed for phone numbers written without a
// country code.
const DefaultRegion = "CN"

// NormalizePhone returns the number in E.164 form ("+8613800000000"). A
// value that is not a plausible phone number is returned trimmed, so that
// nothing a source sent is lost.
func NormalizePhone(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	return parsePhone(v).e164
}

// phoneForm is what parsing a phone gives: its E.164 form (or the value
// itself when it is no plausible number) and its national number ("" when
// it does not parse).
type phoneForm struct{ e164, national string }

// phones caches parsed phones: parsing takes some 20µs, and a batch
// normalizes and judges the same phones several times (resolution, the
// blocklist, the document).
var phones, _ = lru.New[string, phoneForm](1 << 15)

// parsePhone parses a trimmed, non-empty phone.
func parsePhone(v string) phoneForm {
	if f, ok := phones.Get(v); ok {
		return f
	}
	f := phoneForm{e164: v}
	if num, err := phonenumbers.Parse(v, DefaultRegion); err == nil {
		f.national = phonenumbers.GetNationalSignificantNumber(num)
		if phonenumbers.IsPossibleNumber(num) {
			f.e164 = phonenumbers.Format(num, phonenumbers.E164)
		}
	}
	phones.Add(v, f)
	return f
}

// NormalizeEmail lowercases and trims an email address.
func NormalizeEmail(v string) string { return strings.ToLower(strings.TrimSpace(v)) }

// Normalize returns the canonical form of an identity value of type t, the
// form it is stored and looked up in.
func Normalize(t, v string) string {
	switch t {
	case Phone:
		return NormalizePhone(v)
	case Email:
		return NormalizeEmail(v)
	default:
		return strings.TrimSpace(v)
	}
}

// Identity is one identifier of a person.
type Identity struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Key is the identity's id in the identity index.
func (i Identity) Key() string { return i.Type + ":" + i.Value }
