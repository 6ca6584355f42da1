// Package access decides who is calling and what they may do (CONTRACT
// §7): API keys, OIDC tokens, the roles with their permissions, masked
// fields and data scope, in one Policy.
package access

import (
	"fmt"
	"os"

	"github.com/goccy/go-yaml"
)

// Permission names what a route does; a role holds a set of them.
type Permission string

// The permissions the routes need (routes.go maps each route to one).
const (
	PermFilters    Permission = "filters"     // translate, preview
	PermCount      Permission = "count"       // POST /v1/customers/count
	PermSearch     Permission = "search"      // POST /v1/customers/search
	PermSearchBox  Permission = "searchbox"   // GET /v1/customers?q=
	PermView       Permission = "view"        // 360, lookup, identity history
	PermSegments   Permission = "segments"    // segments and their streams
	PermTags       Permission = "tags"        // tag rules
	PermManualTags Permission = "manual_tags" // POST /v1/customers/{id}/tags
	PermExports    Permission = "exports"     // export jobs
	PermFields     Permission = "fields"      // the catalog and candidate values
	PermFieldsEdit Permission = "fields.edit" // POST /v1/fields
	PermSplit      Permission = "split"       // POST /v1/customers/{id}/split
	PermKeys       Permission = "keys"        // /v1/keys
	PermAudit      Permission = "audit"       // /v1/audit
	PermAll        Permission = "*"           // everything
)

// Scope is the set of customers a role sees.
type Scope string

const (
	// ScopeAll sees every customer.
	ScopeAll Scope = "all"
	// ScopeOwner sees the customers whose owner_id is the caller or none.
	ScopeOwner Scope = "owner"
)

// Role is what one role may do.
type Role struct {
	// Permissions are the routes' permissions it holds ("*": all).
	Permissions []Permission `yaml:"permissions" json:"permissions"`
	// Mask lists the personal fields (name, phone, email) it sees masked.
	Mask []string `yaml:"mask" json:"mask"`
	// Scope is "all" (default) or "owner".
	Scope Scope `yaml:"scope" json:"scope"`
	// RatePerSecond and Burst bound the requests of one caller (0: no
	// limit).
	RatePerSecond float64 `yaml:"rate_per_second" json:"rate_per_second"`
	Burst         int     `yaml:"burst" json:"burst"`
}

// Roles are the roles by name.
type Roles map[string]Role

// personal are the fields a role may mask.
var personal = []string{"name", "phone", "email"}

// DefaultRoles are the roles of CONTRACT §7.
func DefaultRoles() Roles {
	return Roles{
		// Admin keys are the operators' and the bench's: not rate limited
		// unless a roles file says so.
		"admin": {Permissions: []Permission{PermAll}, Scope: ScopeAll},
		"marketer": {Permissions: []Permission{PermFilters, PermCount, PermSearch, PermSegments, PermTags, PermExports, PermView, PermFields, PermFieldsEdit},
			Mask: personal, Scope: ScopeAll, RatePerSecond: 50, Burst: 100},
		"sales":   {Permissions: []Permission{PermSearchBox, PermView, PermSearch, PermCount, PermManualTags}, Scope: ScopeOwner, RatePerSecond: 50, Burst: 100},
		"service": {Permissions: []Permission{PermSearchBox, PermView}, Scope: ScopeAll, RatePerSecond: 200, Burst: 400},
		"ingest":  {Scope: ScopeAll, RatePerSecond: 10, Burst: 20},
	}
}

// LoadRoles reads a roles file (YAML or JSON: role name → Role); the
// roles it names replace the defaults of the same name, the others stay.
// An empty path gives the defaults.
func LoadRoles(path string) (Roles, error) {
	roles := DefaultRoles()
	if path == "" {
		return roles, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("roles file: %w", err)
	}
	var file map[string]Role
	if err := yaml.Unmarshal(b, &file); err != nil {
		return nil, fmt.Errorf("roles file %s: %w", path, err)
	}
	for name, r := range file {
		if r.Scope == "" {
			r.Scope = ScopeAll
		}
		if r.Scope != ScopeAll && r.Scope != ScopeOwner {
			return nil, fmt.Errorf("roles file %s: role %s: scope %q is neither all nor owner", path, name, r.Scope)
		}
		for _, m := range r.Mask {
			if !isPersonal(m) {
				return nil, fmt.Errorf("roles file %s: role %s: cannot mask %q (only name, phone, email)", path, name, m)
			}
		}
		roles[name] = r
	}
	return roles, nil
}

func isPersonal(f string) bool {
	for _, p := range personal {
		if p == f {
			return true
		}
	}
	return false
}
