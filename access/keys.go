package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"cdp/store"
)

// Key is an API key as stored: never the token, only its hash.
type Key struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Hash       string     `json:"hash,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// Public is the key without its hash, as the API lists it.
func (k Key) Public() Key {
	k.Hash = ""
	return k
}

// tokenPrefix starts every API key, so that a key can be told from a JWT
// (and found by secret scanners).
const tokenPrefix = "cdpk_"

// ErrInvalidKey is a token that is no valid key: malformed, unknown,
// wrong or revoked.
var ErrInvalidKey = errors.New("invalid API key")

// Keys stores the API keys in one index.
type Keys struct {
	st    *store.Client
	index string
	// cache holds keys read recently, so a request does not cost a read;
	// a revocation is seen by this process at once, by others within
	// cacheTTL.
	mu    sync.Mutex
	cache map[string]cachedKey
	// used is when each key's last use was last written.
	used map[string]time.Time
	now  func() time.Time
	// reads is one store read per key at a time.
	reads singleflight.Group
	// revoked are the keys this process revoked: refused at once, even
	// when a read from before the revocation lands in the cache after.
	revoked map[string]bool
}

type cachedKey struct {
	key Key
	at  time.Time
}

const (
	// cacheTTL is the longest a key is taken from the cache; after
	// refreshAfter a use reads it again in the background.
	cacheTTL     = 5 * time.Second
	refreshAfter = 2 * time.Second
	// usedEvery is how often a key's last_used_at is written at most.
	usedEvery = time.Minute
)

// NewKeys returns the key store over index (mapping.APIKeys' alias).
func NewKeys(st *store.Client, index string) *Keys {
	return &Keys{st: st, index: index, cache: map[string]cachedKey{}, used: map[string]time.Time{}, revoked: map[string]bool{}, now: time.Now}
}

// Create makes a key, stores it and returns it with its token, which is
// shown this once and stored only as a hash.
func (k *Keys) Create(ctx context.Context, name, role string) (Key, string, error) {
	key, token, err := k.New(name, role)
	if err != nil {
		return Key{}, "", err
	}
	if err := k.Put(ctx, key); err != nil {
		return Key{}, "", err
	}
	return key, token, nil
}

// New mints a key and its token without storing it, so that a caller
// can do what must come first (write the audit record) before Put.
func (k *Keys) New(name, role string) (Key, string, error) {
	if name == "" || len(name) > 128 {
		return Key{}, "", errors.New("a key needs a name of 1 to 128 characters")
	}
	var id [8]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Key{}, "", err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return Key{}, "", err
	}
	key := Key{ID: hex.EncodeToString(id[:]), Name: name, Role: role, CreatedAt: k.now().UTC().Truncate(time.Millisecond)}
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	key.Hash = hashOf(sec)
	return key, tokenPrefix + key.ID + "_" + sec, nil
}

// Put stores a key New minted; from then on its token is valid.
func (k *Keys) Put(ctx context.Context, key Key) error {
	if err := k.st.Do(ctx, http.MethodPut, "/"+k.index+"/_doc/"+key.ID+"?refresh=true&op_type=create&require_alias=true", key, nil); err != nil {
		return fmt.Errorf("store key: %w", err)
	}
	return nil
}

func hashOf(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// IsKey reports whether token is shaped as an API key (not a JWT).
func IsKey(token string) bool { return strings.HasPrefix(token, tokenPrefix) }

// Verify returns the key a token names, ErrInvalidKey when it is not a
// valid, unrevoked key, or another error when the store fails.
func (k *Keys) Verify(ctx context.Context, token string) (Key, error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return Key{}, ErrInvalidKey
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 16 || secret == "" || len(secret) > 64 {
		return Key{}, ErrInvalidKey
	}
	if _, err := hex.DecodeString(id); err != nil {
		return Key{}, ErrInvalidKey
	}
	key, found, err := k.get(ctx, id)
	if err != nil {
		return Key{}, err
	}
	got := hashOf(secret)
	k.mu.Lock()
	revoked := k.revoked[id]
	k.mu.Unlock()
	if revoked || !found || subtle.ConstantTimeCompare([]byte(got), []byte(key.Hash)) != 1 || key.RevokedAt != nil {
		return Key{}, ErrInvalidKey
	}
	k.touch(key.ID)
	return key, nil
}

func (k *Keys) get(ctx context.Context, id string) (Key, bool, error) {
	now := k.now()
	k.mu.Lock()
	c, ok := k.cache[id]
	k.mu.Unlock()
	age := now.Sub(c.at)
	switch {
	case ok && age < refreshAfter:
		return c.key, true, nil
	case ok && age < cacheTTL:
		// Read again in the background, so that no request of a busy
		// key waits for the store when its entry would expire.
		k.reads.DoChan(id, func() (any, error) { return k.read(context.WithoutCancel(ctx), id) })
		return c.key, true, nil
	}
	// One read per key at a time: the requests of a key that arrive
	// together wait for the same one.
	v, err, _ := k.reads.Do(id, func() (any, error) { return k.read(ctx, id) })
	if err != nil {
		return Key{}, false, err
	}
	r := v.(readKey)
	return r.key, r.found, nil
}

type readKey struct {
	key   Key
	found bool
}

// read reads a key from the store and caches it when found.
func (k *Keys) read(ctx context.Context, id string) (readKey, error) {
	var key Key
	found, err := k.st.GetSource(ctx, k.index, url.PathEscape(id), &key)
	if err != nil {
		return readKey{}, err
	}
	k.mu.Lock()
	if found {
		k.cache[id] = cachedKey{key: key, at: k.now()}
	} else {
		delete(k.cache, id)
	}
	k.mu.Unlock()
	return readKey{key, found}, nil
}

// touch writes a key's last use, at most once a minute, in the
// background: a failed write loses a last-used time, never a request.
func (k *Keys) touch(id string) {
	now := k.now().UTC()
	k.mu.Lock()
	if now.Sub(k.used[id]) < usedEvery {
		k.mu.Unlock()
		return
	}
	k.used[id] = now
	k.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = k.st.Do(ctx, http.MethodPost, "/"+k.index+"/_update/"+id, map[string]any{"doc": map[string]any{"last_used_at": now.Truncate(time.Millisecond)}}, nil)
	}()
}

// List returns every key (without hashes), newest first.
func (k *Keys) List(ctx context.Context) ([]Key, error) {
	res, err := k.st.Search(ctx, k.index, map[string]any{"size": 1000, "sort": []any{map[string]any{"created_at": "desc"}}})
	if err != nil {
		return nil, err
	}
	out := make([]Key, 0, len(res.Hits))
	for _, h := range res.Hits {
		var key Key
		if err := h.Decode(&key); err != nil {
			return nil, err
		}
		out = append(out, key.Public())
	}
	return out, nil
}

// Find reads a key from the store (not the cache), without its hash;
// found is false when there is none with that id.
func (k *Keys) Find(ctx context.Context, id string) (Key, bool, error) {
	var key Key
	found, err := k.st.GetSource(ctx, k.index, url.PathEscape(id), &key)
	if err != nil || !found {
		return Key{}, found, err
	}
	return key.Public(), true, nil
}

// Revoke revokes a key; found is false when there is none with that id.
func (k *Keys) Revoke(ctx context.Context, id string) (Key, bool, error) {
	key, found, err := k.Find(ctx, id)
	if err != nil || !found {
		return Key{}, found, err
	}
	key, err = k.RevokeKey(ctx, key)
	return key, err == nil, err
}

// RevokeKey revokes a key the caller has just read with Find, without
// reading it again; revoking a revoked key changes nothing.
func (k *Keys) RevokeKey(ctx context.Context, key Key) (Key, error) {
	if key.RevokedAt == nil {
		now := k.now().UTC().Truncate(time.Millisecond)
		if err := k.st.Do(ctx, http.MethodPost, "/"+k.index+"/_update/"+url.PathEscape(key.ID)+"?refresh=true", map[string]any{"doc": map[string]any{"revoked_at": now}}, nil); err != nil {
			return Key{}, err
		}
		key.RevokedAt = &now
	}
	k.mu.Lock()
	delete(k.cache, key.ID)
	k.revoked[key.ID] = true
	k.mu.Unlock()
	return key.Public(), nil
}
