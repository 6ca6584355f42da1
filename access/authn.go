package access

import (
	"context"
	"errors"
)

// Authenticator turns a bearer token into a caller: an API key, or a JWT
// when an OIDC issuer is configured.
type Authenticator struct {
	Keys *Keys
	// OIDC is nil when no issuer is configured.
	OIDC *OIDC
}

// ErrUnauthenticated is a token that names no caller.
var ErrUnauthenticated = errors.New("unauthenticated")

// Authenticate returns the caller of token: ErrUnauthenticated (wrapped)
// when the token is not valid, another error when a store failed.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrUnauthenticated
	}
	if IsKey(token) {
		k, err := a.Keys.Verify(ctx, token)
		if errors.Is(err, ErrInvalidKey) {
			return Principal{}, errors.Join(ErrUnauthenticated, err)
		}
		if err != nil {
			return Principal{}, err
		}
		return Principal{Actor: "key:" + k.Name, User: k.Name, Role: k.Role, KeyID: k.ID}, nil
	}
	if a.OIDC == nil {
		return Principal{}, ErrUnauthenticated
	}
	p, err := a.OIDC.Verify(token)
	if err != nil {
		return Principal{}, errors.Join(ErrUnauthenticated, err)
	}
	return p, nil
}
