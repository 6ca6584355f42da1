package wire

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseEventAcceptsEveryCallTheContractNames(t *testing.T) {
	fallback := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name, msg, wantName string
		wantIDs             int
	}{
		{"track", `{"type":"track","messageId":"m1","timestamp":"2026-11-20T08:00:00Z","userId":"1001","anonymousId":"dev-9f2","event":"view_product","properties":{"price":399}}`, "view_product", 2},
		{"identify", `{"type":"identify","messageId":"m2","userId":"1001","traits":{"name":"张三"}}`, "identify", 1},
		{"page", `{"type":"page","messageId":"m3","anonymousId":"a1","timestamp":"2026-11-20T08:00:00+08:00"}`, "page", 1},
		{"screen", `{"type":"screen","messageId":"m4","anonymousId":"a1"}`, "screen", 1},
		{"alias", `{"type":"alias","messageId":"m5","userId":"1001","previousId":"a1"}`, "alias", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseEvent([]byte(tt.msg), fallback)
			if err != nil {
				t.Fatal(err)
			}
			if e.Name() != tt.wantName || len(e.Identities()) != tt.wantIDs {
				t.Fatalf("name %q ids %v", e.Name(), e.Identities())
			}
			if e.Timestamp.IsZero() || e.Timestamp.Location() != time.UTC {
				t.Fatalf("timestamp %v", e.Timestamp)
			}
		})
	}
}

func TestParseEventFillsWhatTheMessageLeavesOut(t *testing.T) {
	fallback := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	msg := []byte(`{"type":"track","userId":"1","event":"x"}`)
	e, err := ParseEvent(msg, fallback)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Timestamp.Equal(fallback) {
		t.Errorf("timestamp %v, want the Kafka time %v", e.Timestamp, fallback)
	}
	again, _ := ParseEvent(msg, fallback)
	if e.MessageID == "" || e.MessageID != again.MessageID {
		t.Errorf("message ids %q and %q: a redelivery must get the same id", e.MessageID, again.MessageID)
	}
}

func TestParseEventRejectsBadMessagesWithAReason(t *testing.T) {
	tests := []struct{ name, msg, reason string }{
		{"invalid json", `{"type":`, "invalid JSON"},
		{"empty", ``, "empty"},
		{"unknown type", `{"type":"group","userId":"1"}`, `unknown type "group"`},
		{"missing type", `{"userId":"1"}`, "missing type"},
		{"no ids", `{"type":"track","event":"x"}`, "neither userId nor anonymousId"},
		{"bad timestamp", `{"type":"track","userId":"1","event":"x","timestamp":"yesterday"}`, "not RFC 3339"},
		{"numeric timestamp", `{"type":"track","userId":"1","event":"x","timestamp":12}`, "not an RFC 3339 string"},
		{"track without name", `{"type":"track","userId":"1"}`, "no event name"},
		{"alias without previous", `{"type":"alias","userId":"1"}`, "previousId"},
		{"overlong message id", `{"type":"track","userId":"1","event":"x","messageId":"` + strings.Repeat("m", 600) + `"}`, "messageId is longer"},
		{"overlong user id", `{"type":"track","userId":"` + strings.Repeat("u", 300) + `","event":"x"}`, "userId is longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEvent([]byte(tt.msg), time.Now())
			if !errors.Is(err, ErrBad) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %v, want a bad-message error mentioning %q", err, tt.reason)
			}
		})
	}
}

func TestAnIdentifyCarriesItsPhoneAndEmailTraitsAsIdentities(t *testing.T) {
	long := strings.Repeat("e", 300) + "@example.com"
	tests := []struct {
		name, msg string
		want      []Identity
	}{
		{"phone and email traits with a user and a device",
			`{"type":"identify","userId":"1001","anonymousId":"dev-9","traits":{"phone":" 13800000000 ","email":"Zhang@Example.com","name":"张三"}}`,
			[]Identity{{CRMID, "1001"}, {Phone, "13800000000"}, {Email, "Zhang@Example.com"}, {AnonymousID, "dev-9"}}},
		{"a phone trait from a new device alone",
			`{"type":"identify","anonymousId":"dev-9","traits":{"phone":"13800000000"}}`,
			[]Identity{{Phone, "13800000000"}, {AnonymousID, "dev-9"}}},
		{"a phone sent as a number",
			`{"type":"identify","anonymousId":"dev-9","traits":{"phone":13800000000}}`,
			[]Identity{{Phone, "13800000000"}, {AnonymousID, "dev-9"}}},
		{"blank and null traits name no one",
			`{"type":"identify","anonymousId":"dev-9","traits":{"phone":"  ","email":null}}`,
			[]Identity{{AnonymousID, "dev-9"}}},
		{"a trait longer than an identifier names no one",
			`{"type":"identify","anonymousId":"dev-9","traits":{"email":"` + long + `"}}`,
			[]Identity{{AnonymousID, "dev-9"}}},
		{"blocked values are still given: blocking is package identity's",
			`{"type":"identify","anonymousId":"anonymous","traits":{"phone":"00000000000"}}`,
			[]Identity{{Phone, "00000000000"}, {AnonymousID, "anonymous"}}},
		{"a track's properties are no identities",
			`{"type":"track","event":"x","anonymousId":"dev-9","properties":{"phone":"13800000000"},"traits":{"phone":"13800000000"}}`,
			[]Identity{{AnonymousID, "dev-9"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseEvent([]byte(tt.msg), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Identities(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Identities = %v, want %v", got, tt.want)
			}
		})
	}
}
