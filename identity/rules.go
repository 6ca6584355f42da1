package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
)

// Rule is how one identity type links people (CONTRACT §6).
type Rule struct {
	// Type is the identity type's name ("crm_id", "phone", …).
	Type string
	// Priority orders the types: 1 comes first. When a message's
	// identities point at different customers, the first known one in
	// priority order decides.
	Priority int
	// MaxPerProfile is the most values of the type one profile may hold.
	MaxPerProfile int
	// BlockedValues are values that identify nobody, compared after
	// trimming, case-insensitively (kept lowercased).
	BlockedValues []string
	// BlockedPatterns are RE2 expressions, matched case-insensitively:
	// a value any of them matches identifies nobody. Write the anchors
	// (^…$) you mean.
	BlockedPatterns []string

	patterns []*regexp.Regexp
}

// Blocklist defaults (CONTRACT §6): values that never identify anyone.
var (
	// DefaultBlockedValues apply to every type.
	// "-1" is not in CONTRACT §6's list but is the placeholder SDKs and
	// CRMs send most after 0 (issue 11 names it among the blocked values).
	DefaultBlockedValues = []string{"", "null", "undefined", "none", "unknown", "anonymous", "-1"}
	// DefaultBlockedPatterns apply to every type: values made only of 0
	// and '-'.
	DefaultBlockedPatterns = []string{`^[0-]+$`}
	// DefaultPhonePatterns apply to phones, judged also on the national
	// number: one digit repeated (11111111111, +86 000 0000 0000).
	DefaultPhonePatterns = []string{`^(?:0+|1+|2+|3+|4+|5+|6+|7+|8+|9+)$`}
)

// defaults are the contract's four types: crm_id before phone before
// email before anonymous_id, as Types lists them.
var defaults = map[string]Rule{
	CRMID:       {Type: CRMID, Priority: 1, MaxPerProfile: 1},
	Phone:       {Type: Phone, Priority: 2, MaxPerProfile: 3},
	Email:       {Type: Email, Priority: 3, MaxPerProfile: 3},
	AnonymousID: {Type: AnonymousID, Priority: 4, MaxPerProfile: 50},
}

func defaultBlocklist(t string) (values, patterns []string) {
	patterns = slices.Clone(DefaultBlockedPatterns)
	if t == Phone {
		patterns = append(patterns, DefaultPhonePatterns...)
	}
	return slices.Clone(DefaultBlockedValues), patterns
}

// Rules are the rules of every identity type. The zero of *Rules (nil) is
// the defaults, so that a caller that never configured any still follows
// the contract.
type Rules struct {
	byType map[string]*Rule
	order  []string // types by priority
}

var defaultRules = func() *Rules {
	r, err := build(nil)
	if err != nil {
		panic(err) // the defaults are constants
	}
	return r
}()

// DefaultRules returns the contract's rules.
func DefaultRules() *Rules { return defaultRules }

func (r *Rules) get() *Rules {
	if r == nil {
		return defaultRules
	}
	return r
}

// Rule returns the rule of type t.
func (r *Rules) Rule(t string) (Rule, bool) {
	x, ok := r.get().byType[t]
	if !ok {
		return Rule{}, false
	}
	return *x, true
}

// Known reports whether t is a declared identity type.
func (r *Rules) Known(t string) bool {
	_, ok := r.get().byType[t]
	return ok
}

// Types returns the declared types, first priority first.
func (r *Rules) Types() []string { return slices.Clone(r.get().order) }

// MaxPerProfile returns the most values of type t a profile may hold, 0
// for an unknown type.
func (r *Rules) MaxPerProfile(t string) int {
	if x, ok := r.get().byType[t]; ok {
		return x.MaxPerProfile
	}
	return 0
}

// rank is t's place in priority order; unknown types come last.
func (r *Rules) rank(t string) int {
	if x, ok := r.get().byType[t]; ok {
		return x.Priority
	}
	return int(^uint(0) >> 1)
}

// Order sorts ids by the priority of their types, stably (the order
// within a type is kept); unknown types go last.
func (r *Rules) Order(ids []Identity) {
	slices.SortStableFunc(ids, func(a, b Identity) int { return r.rank(a.Type) - r.rank(b.Type) })
}

// MaxValueBytes bounds an identity's value: its key is an OpenSearch
// document id, which may not exceed 512 bytes.
const MaxValueBytes = 256

// Blocked reports whether id identifies nobody: its type is unknown, its
// value is longer than MaxValueBytes, or its value, as given or normalized
// (and for a phone, its national number), is on the type's blocklist.
func (r *Rules) Blocked(id Identity) bool {
	_, ok := r.judge(id)
	return !ok
}

// judge returns id's normalized value, and whether it links anyone.
func (r *Rules) judge(id Identity) (string, bool) {
	x, ok := r.get().byType[id.Type]
	if !ok || len(id.Value) > MaxValueBytes {
		return "", false
	}
	raw := strings.TrimSpace(id.Value)
	norm, national := raw, ""
	switch id.Type {
	case Phone:
		if raw != "" {
			f := parsePhone(raw)
			norm, national = f.e164, f.national
		}
	default:
		norm = Normalize(id.Type, raw)
	}
	// The forms a value is judged in: as given (trimmed), as stored, and
	// for a phone the national number alone, where "one repeated digit"
	// is seen ("+86 111 1111 1111" is 11111111111).
	forms := [3]string{raw, norm, national}
	for i, form := range forms {
		if i > 0 && (form == "" || form == raw) {
			continue
		}
		if slices.Contains(x.BlockedValues, strings.ToLower(form)) {
			return norm, false
		}
		for _, p := range x.patterns {
			if p.MatchString(form) {
				return norm, false
			}
		}
	}
	return norm, true
}

// Linking returns the identities of ids that link people, as resolution
// takes them: normalized, without blocked values or unknown types, each
// once, first priority first. What it drops stays on the message as data;
// it only links nobody.
func (r *Rules) Linking(ids []Identity) []Identity {
	out := make([]Identity, 0, len(ids))
	for _, id := range ids {
		norm, ok := r.judge(id)
		if !ok {
			continue
		}
		id.Value = norm
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	r.Order(out)
	return out
}

// The rules file. Every key is optional for the contract's four types
// (what is left out keeps its default); a type the file declares anew
// needs a priority and a max_per_profile.
//
//	types:
//	  phone:
//	    max_per_profile: 2
//	    blocked_values: ["10086"]
//	  wechat_openid:
//	    priority: 5
//	    max_per_profile: 3
//	    blocked_patterns: ["^test-"]
//	    default_blocklist: false
type fileRules struct {
	Types map[string]json.RawMessage `json:"types"`
}

type fileRule struct {
	Priority        *int     `json:"priority"`
	MaxPerProfile   *int     `json:"max_per_profile"`
	BlockedValues   []string `json:"blocked_values"`
	BlockedPatterns []string `json:"blocked_patterns"`
	// DefaultBlocklist (true unless set false) keeps the contract's
	// blocklist under the file's values and patterns.
	DefaultBlocklist *bool `json:"default_blocklist"`
}

// LoadRules reads a rules file, YAML or JSON (by its .json extension, or
// else as YAML, which JSON also is). An empty path gives the defaults.
func LoadRules(path string) (*Rules, error) {
	if path == "" {
		return DefaultRules(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity rules: %w", err)
	}
	r, err := ParseRules(data, strings.EqualFold(filepath.Ext(path), ".json"))
	if err != nil {
		return nil, fmt.Errorf("identity rules %s: %w", path, err)
	}
	return r, nil
}

// ParseRules parses the text of a rules file, JSON when isJSON, else YAML.
// Errors name the type and key at fault.
func ParseRules(data []byte, isJSON bool) (*Rules, error) {
	if !isJSON {
		j, err := yaml.YAMLToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("invalid YAML: %v", err)
		}
		data = j
	}
	if len(bytes.TrimSpace(data)) == 0 || string(bytes.TrimSpace(data)) == "null" {
		return nil, errors.New("the file is empty: give it a types key, or configure no file for the defaults")
	}
	var f fileRules
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("invalid rules: %s (want {\"types\": {\"<type>\": {…}}})", decodeError(err))
	}
	rules := map[string]fileRule{}
	for t, raw := range f.Types {
		var fr fileRule
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fr); err != nil {
			return nil, fmt.Errorf("type %q: %s (keys: priority, max_per_profile, blocked_values, blocked_patterns, default_blocklist)", t, decodeError(err))
		}
		rules[t] = fr
	}
	return build(rules)
}

// decodeError says what encoding/json found wrong in the words of the
// file: keys, not Go struct fields.
func decodeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("key %s: want %s, got a JSON %s", te.Field, te.Type, te.Value)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return "unknown key " + f
	}
	return msg
}

var typeName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// build makes the rules: the defaults, with the file's rules over them.
func build(file map[string]fileRule) (*Rules, error) {
	var errs []error
	r := &Rules{byType: map[string]*Rule{}}
	types := make([]string, 0, len(defaults)+len(file))
	for t := range defaults {
		types = append(types, t)
	}
	for t := range file {
		if _, ok := defaults[t]; !ok {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	for _, t := range types {
		rule, err := buildRule(t, file[t])
		if err != nil {
			errs = append(errs, fmt.Errorf("type %q: %w", t, err))
			continue
		}
		r.byType[t] = rule
		r.order = append(r.order, t)
	}
	slices.SortStableFunc(r.order, func(a, b string) int { return r.byType[a].Priority - r.byType[b].Priority })
	for i := 1; i < len(r.order); i++ {
		a, b := r.byType[r.order[i-1]], r.byType[r.order[i]]
		if a.Priority == b.Priority {
			errs = append(errs, fmt.Errorf("type %q: priority %d is also %q's: priorities decide, so they must differ", b.Type, b.Priority, a.Type))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

func buildRule(t string, fr fileRule) (*Rule, error) {
	var errs []error
	rule, isDefault := defaults[t]
	if !isDefault {
		if !typeName.MatchString(t) {
			return nil, errors.New("a type name is lowercase letters, digits and '_', starting with a letter, at most 64 characters")
		}
		if fr.Priority == nil {
			errs = append(errs, errors.New("priority: required for a type the configuration declares"))
		}
		if fr.MaxPerProfile == nil {
			errs = append(errs, errors.New("max_per_profile: required for a type the configuration declares"))
		}
	}
	rule.Type = t
	if fr.Priority != nil {
		rule.Priority = *fr.Priority
		if rule.Priority < 1 {
			errs = append(errs, fmt.Errorf("priority %d: want 1 or more (1 comes first)", rule.Priority))
		}
	}
	if fr.MaxPerProfile != nil {
		rule.MaxPerProfile = *fr.MaxPerProfile
		if rule.MaxPerProfile < 1 {
			errs = append(errs, fmt.Errorf("max_per_profile %d: want 1 or more", rule.MaxPerProfile))
		}
	}
	if fr.DefaultBlocklist == nil || *fr.DefaultBlocklist {
		rule.BlockedValues, rule.BlockedPatterns = defaultBlocklist(t)
	}
	for _, v := range fr.BlockedValues {
		rule.BlockedValues = append(rule.BlockedValues, strings.ToLower(strings.TrimSpace(v)))
	}
	rule.BlockedPatterns = append(rule.BlockedPatterns, fr.BlockedPatterns...)
	for i, p := range rule.BlockedPatterns {
		re, err := regexp.Compile("(?i)" + p)
		if err != nil {
			errs = append(errs, fmt.Errorf("blocked_patterns[%d] %q: %v", i-(len(rule.BlockedPatterns)-len(fr.BlockedPatterns)), p, err))
			continue
		}
		rule.patterns = append(rule.patterns, re)
	}
	slices.Sort(rule.BlockedValues)
	rule.BlockedValues = slices.Compact(rule.BlockedValues)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &rule, nil
}
