package access

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// MaskPhone keeps a phone's country code, its first 3 and last 4 digits:
// +8613800000000 → +86138****0000. Chinese numbers (+86) have a 2-digit
// country code; other E.164 numbers keep their first 3 digits after the
// plus as code and the next 3.
func MaskPhone(p string) string {
	if p == "" {
		return p
	}
	plus := strings.HasPrefix(p, "+")
	digits := strings.TrimPrefix(p, "+")
	cc := ""
	if plus {
		n := 2
		if !strings.HasPrefix(digits, "86") {
			n = 1
			if len(digits) > 11 {
				n = len(digits) - 10
			}
		}
		if n > len(digits) {
			n = len(digits)
		}
		cc, digits = "+"+digits[:n], digits[n:]
	}
	if len(digits) <= 7 {
		keep := len(digits) / 3
		return cc + digits[:keep] + strings.Repeat("*", len(digits)-keep)
	}
	return cc + digits[:3] + strings.Repeat("*", len(digits)-7) + digits[len(digits)-4:]
}

// MaskEmail keeps an email's first character and its domain:
// zhang@example.com → z***@example.com.
func MaskEmail(e string) string {
	local, domain, ok := strings.Cut(e, "@")
	if !ok {
		return MaskName(e)
	}
	if local == "" {
		return "***@" + domain
	}
	r, _ := utf8.DecodeRuneInString(local)
	return string(r) + "***@" + domain
}

// MaskName keeps a name's first character and puts one * for each other
// character: 张三 → 张*, 欧阳娜娜 → 欧***, Emily → E****.
func MaskName(n string) string {
	n = strings.TrimSpace(n)
	r, size := utf8.DecodeRuneInString(n)
	if size == 0 {
		return n
	}
	return string(r) + strings.Repeat("*", utf8.RuneCountInString(n)-1)
}

// MaskValue masks a value of one personal field or identity type (name,
// phone, email); other fields come back as they are.
func MaskValue(field, v string) string {
	switch field {
	case "phone":
		return MaskPhone(v)
	case "email":
		return MaskEmail(v)
	case "name":
		return MaskName(v)
	}
	return v
}

// MaskDoc masks, in place, a customer document (or any answer about
// one: a 360 view, a history entry) decoded into a map: its masked
// top-level fields, and everywhere below them (see MaskTree) identities
// of masked types and the masked keys of personal objects. Highlights of
// masked fields are dropped.
func (v View) MaskDoc(doc map[string]any) {
	if !v.Masks() {
		return
	}
	if h, ok := doc["highlight"].(map[string]any); ok {
		for k := range h {
			if v.Masked(k) {
				delete(h, k)
			}
		}
	}
	v.maskMap(doc, true)
}

// MaskTree masks, in place, any decoded JSON: every {"type", "value"}
// identity and every "type:value" string of a masked type; and, under
// the keys attrs, properties and traits (objects that hold what people
// said about themselves), every masked key. keys says whether node is
// such an object itself.
func (v View) MaskTree(node any, keys bool) any {
	switch x := node.(type) {
	case map[string]any:
		v.maskMap(x, keys)
	case []any:
		for i, e := range x {
			x[i] = v.MaskTree(e, keys)
		}
	case string:
		if t, val, ok := strings.Cut(x, ":"); ok && v.Mask[t] {
			return t + ":" + MaskValue(t, val)
		}
	}
	return node
}

func (v View) maskMap(m map[string]any, keys bool) {
	if t, ok := m["type"].(string); ok && v.Mask[t] {
		if s, ok := m["value"].(string); ok {
			m["value"] = MaskValue(t, s)
		}
	}
	for k, e := range m {
		if keys && v.Mask[k] {
			switch x := e.(type) {
			case string:
				m[k] = MaskValue(k, x)
				continue
			case []any:
				for i, s := range x {
					if str, ok := s.(string); ok {
						x[i] = MaskValue(k, str)
					}
				}
				continue
			}
		}
		switch k {
		case "attrs", "properties", "traits":
			m[k] = v.MaskTree(e, true)
		default:
			m[k] = v.MaskTree(e, false)
		}
	}
}

// Masked reports whether a field path (or a subfield of it, such as
// name.pinyin) is masked.
func (v View) Masked(path string) bool {
	root, _, _ := strings.Cut(path, ".")
	return v.Mask[root] || v.Mask[path]
}

// MaskJSON masks one customer document given as JSON; the document comes
// back as it was when the view masks nothing.
func (v View) MaskJSON(doc []byte) ([]byte, error) {
	if !v.Masks() {
		return doc, nil
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	v.MaskDoc(m)
	return json.Marshal(m)
}
