package wire

import (
	"encoding/json"
	"strings"
	"unicode"
)

// maxKeyLen bounds the length of a dynamic field name.
const maxKeyLen = 64

// SanitizeKey turns a source column, trait or property name into a safe
// field name: lowercase letters, digits and '_' (other Unicode letters are
// kept, so Chinese names survive), at most 64 characters. Dots, which
// OpenSearch would read as object paths, become '_'. "" means unusable.
func SanitizeKey(k string) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.TrimSpace(k) {
		if n == maxKeyLen {
			break
		}
		switch {
		case r >= 'A' && r <= 'Z':
			b.WriteRune(unicode.ToLower(r))
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case r > unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		n++
	}
	s := strings.TrimLeft(b.String(), "_")
	if s == "" {
		return ""
	}
	return s
}

// SanitizeValue keeps the JSON value types the dynamic mapping types by
// their first value (string, number, boolean, list of strings); anything
// else (objects, mixed lists) is kept as its JSON text, so that a source
// can never grow the mapping without bound.
func SanitizeValue(v any) any {
	switch x := v.(type) {
	case nil, string, float64, bool:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return jsonText(x)
			}
			out = append(out, s)
		}
		return out
	}
	return jsonText(v)
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// SanitizeMap applies SanitizeKey and SanitizeValue to every entry.
func SanitizeMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k = SanitizeKey(k); k != "" {
			out[k] = SanitizeValue(v)
		}
	}
	return out
}
