package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"cdp/store"
)

// A cursor is tamper-evident: its payload is signed with a key every API
// process of a deployment shares, together with the search it belongs to
// (the filter as sent, the time zone, the sort and the fields), so that a
// cursor edited by hand, with bytes appended, or taken from another
// search is a 400, never a page of something else.
//
// Its text is base64url(payload) "." base64url(signature).

// errBadCursor is any cursor this service did not hand out for the search.
var errBadCursor = errors.New("cursor is not one this search returned")

// cursorMACBytes is how much of the HMAC-SHA256 a cursor carries.
const cursorMACBytes = 16

// cursorSearch is what a cursor is bound to: a digest of the search it
// belongs to.
func cursorSearch(req *searchRequest, sortKey string) []byte {
	h := sha256.New()
	var filter bytes.Buffer
	if json.Compact(&filter, req.Filter) != nil {
		filter.Write(req.Filter)
	}
	for _, part := range [][]byte{filter.Bytes(), []byte(req.TZ), []byte(sortKey), []byte(strings.Join(req.Fields, ","))} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	return h.Sum(nil)
}

func mac(key, payload, search []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	m.Write([]byte{0})
	m.Write(search)
	return m.Sum(nil)[:cursorMACBytes]
}

// sealCursor encodes and signs a cursor for the search.
func sealCursor(key []byte, c cursor, search []byte) string {
	payload, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac(key, payload, search))
}

// openCursor checks a cursor's signature against the search and decodes
// it.
func openCursor(key []byte, s string, search []byte) (cursor, error) {
	var c cursor
	p, sig, ok := strings.Cut(s, ".")
	if !ok {
		return c, errBadCursor
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	got, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(got, mac(key, payload, search)) {
		return c, errBadCursor
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil || len(c.After) == 0 {
		return c, errBadCursor
	}
	return c, nil
}

// cursorKeyID is the settings document that holds the cursor key.
const cursorKeyID = "cursor_key"

// cursorKeys gives the deployment's cursor key: the one stored in the
// settings index, created at random by whichever process needs it first,
// so every API process signs and checks alike, across restarts. It is
// read once and kept.
type cursorKeys struct {
	st    *store.Client
	index string

	mu  sync.Mutex
	key []byte
}

type keyDoc struct {
	Key       string `json:"key"`
	CreatedAt string `json:"created_at"`
}

func (k *cursorKeys) get(ctx context.Context) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key != nil {
		return k.key, nil
	}
	var fresh [32]byte
	_, _ = rand.Read(fresh[:])
	doc := keyDoc{Key: hex.EncodeToString(fresh[:]), CreatedAt: time.Now().UTC().Format(time.RFC3339)}
	existing, err := k.st.CreateIfAbsent(ctx, []store.Op{{Index: k.index, ID: cursorKeyID, Body: doc}})
	if err != nil {
		return nil, fmt.Errorf("cursor key: %w", err)
	}
	if len(existing) > 0 {
		if found, err := k.st.GetSource(ctx, k.index, cursorKeyID, &doc); err != nil || !found {
			return nil, fmt.Errorf("cursor key: read (found %v): %w", found, err)
		}
	}
	key, err := hex.DecodeString(doc.Key)
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("cursor key: the stored key is not 16 or more hex bytes")
	}
	k.key = key
	return key, nil
}
