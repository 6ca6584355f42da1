package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// OIDCConfig says whose JWTs are accepted.
type OIDCConfig struct {
	Issuer   string
	Audience string
	// JWKSURL is where the issuer's keys are; empty: its discovery
	// document's jwks_uri.
	JWKSURL string
}

// OIDC verifies JWTs of one issuer against its JWKS (refreshed by
// keyfunc when a token names an unknown key id).
type OIDC struct {
	cfg  OIDCConfig
	keys keyfunc.Keyfunc
}

// algorithms are the signing algorithms accepted: asymmetric ones only,
// so a token signed with the public key as an HMAC secret is refused.
var algorithms = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"}

// NewOIDC fetches the issuer's JWKS (finding it by discovery when
// cfg.JWKSURL is empty) and returns the verifier.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if cfg.JWKSURL == "" {
		u, err := discoverJWKS(ctx, cfg.Issuer)
		if err != nil {
			return nil, err
		}
		cfg.JWKSURL = u
	}
	k, err := keyfunc.NewDefaultCtx(ctx, []string{cfg.JWKSURL})
	if err != nil {
		return nil, fmt.Errorf("oidc: jwks %s: %w", cfg.JWKSURL, err)
	}
	return &OIDC{cfg: cfg, keys: k}, nil
}

func discoverJWKS(ctx context.Context, issuer string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return "", fmt.Errorf("oidc: issuer %q: %w", issuer, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("oidc: discovery: %w", err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("oidc: discovery: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return "", fmt.Errorf("oidc: discovery: %w", err)
	}
	if doc.Issuer != issuer || doc.JWKSURI == "" {
		return "", fmt.Errorf("oidc: discovery names issuer %q and jwks_uri %q, want issuer %q", doc.Issuer, doc.JWKSURI, issuer)
	}
	return doc.JWKSURI, nil
}

// ErrInvalidToken is a JWT that does not verify: bad signature, another
// issuer or audience, expired, or without sub or cdp_role.
var ErrInvalidToken = errors.New("invalid token")

type claims struct {
	jwt.RegisteredClaims
	Role string `json:"cdp_role"`
}

// Verify checks a JWT's signature, algorithm, issuer, audience and
// expiry, and returns its caller: the user from sub, the role from
// cdp_role.
func (o *OIDC) Verify(token string) (Principal, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, o.keys.Keyfunc,
		jwt.WithValidMethods(algorithms), jwt.WithIssuer(o.cfg.Issuer), jwt.WithAudience(o.cfg.Audience),
		jwt.WithExpirationRequired(), jwt.WithLeeway(30*time.Second))
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" || c.Role == "" {
		return Principal{}, fmt.Errorf("%w: no sub or cdp_role", ErrInvalidToken)
	}
	return Principal{Actor: c.Subject, User: c.Subject, Role: c.Role}, nil
}
