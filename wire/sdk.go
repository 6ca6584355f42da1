package wire

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"cdp/schema"
)

// Event is an SDK message (Segment-spec shaped, CONTRACT §1.1).
type Event struct {
	Type        string         `json:"type"`
	MessageID   string         `json:"messageId"`
	Timestamp   time.Time      `json:"-"`
	UserID      string         `json:"userId"`
	AnonymousID string         `json:"anonymousId"`
	PreviousID  string         `json:"previousId"`
	Event       string         `json:"event"`
	Properties  map[string]any `json:"properties"`
	Traits      map[string]any `json:"traits"`
	Context     map[string]any `json:"context"`
}

// Name is the event name kept in the events index: page and screen calls
// are track events of those names (CONTRACT §1.1).
func (e *Event) Name() string {
	switch e.Type {
	case "page", "screen":
		return e.Type
	case "identify", "alias":
		return e.Type
	}
	return e.Event
}

// Identity types an event's ids stand for (CONTRACT §1.1, §6): the same
// names package identity uses.
const (
	CRMID       = "crm_id"       // userId
	AnonymousID = "anonymous_id" // anonymousId, and previousId of an alias
	Phone       = "phone"        // the phone trait of an identify
	Email       = "email"        // the email trait of an identify
)

// Identity is one identifier an event speaks for. It has the shape of
// identity.Identity, so the indexer converts one into the other.
type Identity struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Identities returns the identities the event speaks for, as it gives
// them: the user id (a CRM id); for an identify, its phone and email
// traits; the device id; for alias, the previous id, the same person.
// Values are as sent, only trimmed: normalizing them, ordering them and
// telling which ones identify nobody is package identity's work, done by
// the indexer. A trait that is no string (nor a whole number, for a phone)
// or is longer than an identifier may be is kept as data but names no one.
func (e *Event) Identities() []Identity {
	var out []Identity
	if e.UserID != "" {
		out = append(out, Identity{Type: CRMID, Value: e.UserID})
	}
	if e.Type == "identify" {
		for _, t := range []string{Phone, Email} {
			if v, ok := traitID(e.Traits[t]); ok {
				out = append(out, Identity{Type: t, Value: v})
			}
		}
	}
	for _, a := range []string{e.AnonymousID, e.PreviousID} {
		if a != "" {
			out = append(out, Identity{Type: AnonymousID, Value: a})
		}
	}
	return out
}

// traitID is the identifier a trait's value names: a string, or a phone
// sent as a JSON number (13800000000), trimmed and at most maxIDBytes.
func traitID(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = strings.TrimSpace(x)
	case float64:
		if x != math.Trunc(x) || x < 0 || x >= 1e15 {
			return "", false
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return "", false
	}
	return s, s != "" && len(s) <= maxIDBytes
}

// Channel is context.channel, if given.
func (e *Event) Channel() string {
	s, _ := e.Context["channel"].(string)
	return s
}

// ParseEvent decodes and checks one SDK message. fallback is the time used
// when the message carries no timestamp (the Kafka message's own time).
// An error wraps ErrBad and says what is wrong.
func ParseEvent(value []byte, fallback time.Time) (*Event, error) {
	if len(bytes.TrimSpace(value)) == 0 {
		return nil, bad("empty message")
	}
	var raw struct {
		Event
		Timestamp json.RawMessage `json:"timestamp"`
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, bad("invalid JSON: %s", jsonProblem(err))
	}
	e := raw.Event
	e.UserID, e.AnonymousID, e.PreviousID = strings.TrimSpace(e.UserID), strings.TrimSpace(e.AnonymousID), strings.TrimSpace(e.PreviousID)
	switch e.Type {
	case "identify", "track", "page", "screen":
		if e.UserID == "" && e.AnonymousID == "" {
			return nil, bad("%s event has neither userId nor anonymousId", e.Type)
		}
	case "alias":
		if e.UserID == "" || e.PreviousID == "" {
			return nil, bad("alias event needs both userId and previousId")
		}
	case "":
		return nil, bad("missing type")
	default:
		return nil, bad("unknown type %q", e.Type)
	}
	for name, v := range map[string]string{"messageId": e.MessageID, "userId": e.UserID, "anonymousId": e.AnonymousID, "previousId": e.PreviousID} {
		if len(v) > maxIDBytes {
			return nil, bad("%s is longer than %d bytes", name, maxIDBytes)
		}
	}
	if e.Type == "track" && strings.TrimSpace(e.Event) == "" {
		return nil, bad("track event has no event name")
	}
	switch ts := strings.TrimSpace(string(raw.Timestamp)); ts {
	case "", "null":
		e.Timestamp = fallback.UTC()
	default:
		var s string
		if err := json.Unmarshal(raw.Timestamp, &s); err != nil {
			return nil, bad("timestamp %s is not an RFC 3339 string", ts)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, bad("timestamp %q is not RFC 3339", s)
		}
		if err := inYears(t); err != nil {
			return nil, bad("timestamp: %v", err)
		}
		e.Timestamp = t.UTC()
	}
	if e.MessageID == "" {
		// A redelivery of the same bytes gets the same id, so it is still
		// counted once.
		sum := sha1.Sum(value)
		e.MessageID = "sha1-" + hex.EncodeToString(sum[:])
	}
	if err := checkTraits(e.Traits); err != nil {
		return nil, err
	}
	e.Properties = numbersToFloats(e.Properties)
	e.Traits = numbersToFloats(e.Traits)
	return &e, nil
}

// profileColumns are the columns of the customers table that set a field
// of the document, by name: an identify trait of that name sets the same
// field, so it must be of the same type.
var profileColumns = func() map[string]schema.ColumnType {
	out := map[string]schema.ColumnType{}
	t, _ := schema.TableNamed(TableCustomers)
	for _, c := range t.Columns() {
		if c.Field != "" {
			out[c.Name] = c.Type
		}
	}
	return out
}()

// checkTraits checks the traits that set document fields as the CDC
// columns of the same names are checked: an email that is a number, or a
// birthday in the year 99999, is a bad message, not a value to store.
func checkTraits(traits map[string]any) error {
	for name, v := range traits {
		want, ok := profileColumns[name]
		if !ok {
			continue
		}
		if _, err := decodeColumn(name, want, field{}, v); err != nil {
			return bad("trait %s: %v", name, err)
		}
	}
	return nil
}

// numbersToFloats turns json.Number values into float64 (or keeps them as
// exact strings when they do not fit), recursively.
func numbersToFloats(m map[string]any) map[string]any {
	for k, v := range m {
		m[k] = convertNumber(v)
	}
	return m
}

func convertNumber(v any) any {
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case map[string]any:
		return numbersToFloats(x)
	case []any:
		for i := range x {
			x[i] = convertNumber(x[i])
		}
		return x
	}
	return v
}
