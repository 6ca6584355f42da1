package access

import "slices"

// Principal is an authenticated caller.
type Principal struct {
	// Actor is who calls: "key:<name>" for an API key, the token's sub
	// for OIDC.
	Actor string
	// User is the id owner_id is compared with: the key's name, or sub.
	User string
	// Role is the role's name.
	Role string
	// KeyID is the API key's id (empty for OIDC); rate limits go by it.
	KeyID string
}

// Policy answers what a principal may do: the one place of the rules.
type Policy struct {
	roles Roles
}

// NewPolicy returns the policy of roles.
func NewPolicy(roles Roles) *Policy { return &Policy{roles: roles} }

// Role returns the named role and whether it exists.
func (p *Policy) Role(name string) (Role, bool) {
	r, ok := p.roles[name]
	return r, ok
}

// Allows reports whether role may use the route (method and Gin path
// template). A route the table does not know is allowed to no one but a
// role holding "*".
func (p *Policy) Allows(role, method, route string) bool {
	r, ok := p.roles[role]
	if !ok {
		return false
	}
	need, known := routes[method+" "+route]
	for _, have := range r.Permissions {
		if have == PermAll || known && have == need {
			return true
		}
	}
	return false
}

// SeesEveryonesJobs reports whether role sees the export jobs of every
// caller (a role holding "*"); any other caller sees only its own, since
// a job's filter and file are its creator's.
func (p *Policy) SeesEveryonesJobs(role string) bool {
	return slices.Contains(p.roles[role].Permissions, PermAll)
}

// View is what a principal's role does to the data: which fields come
// back masked and which customers exist for it.
type View struct {
	// Mask is the set of masked fields (name, phone, email).
	Mask map[string]bool
	// Owner, when not empty, limits the customers to those whose owner_id
	// is Owner or none.
	Owner string
}

// ViewOf returns the view of a principal. A principal with an unknown
// role gets everything masked and an impossible owner.
func (p *Policy) ViewOf(pr Principal) View {
	r, ok := p.roles[pr.Role]
	if !ok {
		return View{Mask: map[string]bool{"name": true, "phone": true, "email": true}, Owner: "\x00"}
	}
	v := View{Mask: map[string]bool{}}
	for _, m := range r.Mask {
		v.Mask[m] = true
	}
	if r.Scope == ScopeOwner {
		v.Owner = pr.User
		if v.Owner == "" {
			v.Owner = "\x00"
		}
	}
	return v
}

// Masks reports whether the view masks anything.
func (v View) Masks() bool { return len(v.Mask) > 0 }

// routes maps every /v1 route to the permission it needs.
var routes = map[string]Permission{
	"GET /v1/customers":                               PermSearchBox,
	"GET /v1/customers/lookup":                        PermView,
	"POST /v1/customers/search":                       PermSearch,
	"POST /v1/customers/count":                        PermCount,
	"POST /v1/filters/translate":                      PermFilters,
	"POST /v1/filters/preview":                        PermFilters,
	"POST /v1/segments":                               PermSegments,
	"GET /v1/segments":                                PermSegments,
	"GET /v1/segments/:id":                            PermSegments,
	"PUT /v1/segments/:id":                            PermSegments,
	"DELETE /v1/segments/:id":                         PermSegments,
	"GET /v1/segments/:id/export":                     PermExports,
	"POST /v1/tags":                                   PermTags,
	"GET /v1/tags":                                    PermTags,
	"GET /v1/tags/:name":                              PermTags,
	"PUT /v1/tags/:name":                              PermTags,
	"DELETE /v1/tags/:name":                           PermTags,
	"POST /v1/customers/:customer_id/tags":            PermManualTags,
	"GET /v1/exports/:id/download":                    PermExports,
	"POST /v1/exports":                                PermExports,
	"GET /v1/exports":                                 PermExports,
	"GET /v1/exports/:id":                             PermExports,
	"DELETE /v1/exports/:id":                          PermExports,
	"GET /v1/fields":                                  PermFields,
	"POST /v1/fields":                                 PermFieldsEdit,
	"GET /v1/fields/:name/values":                     PermFields,
	"GET /v1/customers/:customer_id":                  PermView,
	"GET /v1/customers/:customer_id/identity-history": PermView,
	"POST /v1/customers/:customer_id/split":           PermSplit,
	"POST /v1/keys":                                   PermKeys,
	"GET /v1/keys":                                    PermKeys,
	"DELETE /v1/keys/:id":                             PermKeys,
	"GET /v1/audit":                                   PermAudit,
}
