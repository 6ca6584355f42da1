// Package mapping defines the OpenSearch indices the service owns: their
// names, versions, aliases and mappings.
//
// The settings of each index and the mappings of the fields outside the
// field schema are JSON files embedded from this folder. The customer
// index's catalog fields, its dynamic objects with their templates and its
// join field are not written there: they are generated from package
// schema, so the mapping and the catalog cannot drift apart.
package mapping

import (
	"embed"
	"encoding/json"
	"fmt"

	"cdp/schema"
)

//go:embed *.json
var files embed.FS

// Index describes one index the service owns. Its physical name is
// "<prefix>-<Name>-v<Version>" and it is always reached through aliases,
// so a new mapping version can be rolled out by reindexing behind them.
// An index without Views has the one alias "<prefix>-<Name>".
type Index struct {
	Name    string
	Version int
	file    string
	// alias is the name clients use, when it is not Name (a view).
	alias string
	// Views are filtered aliases over the index: each name maps to the
	// filter its searches see.
	Views map[string]map[string]any
	// generate, if set, adds what the schema declares to the mappings
	// read from file.
	generate func(mappings map[string]any) error
}

// View returns the index reached through one of its filtered aliases.
func (i Index) View(name string) Index {
	v := i
	v.alias = name
	v.Views = nil
	return v
}

// Customers holds the customer documents and, as their join children,
// their events: event conditions of filters are has_child queries, which
// count a customer's matching events exactly, with no cap on how many
// customers match (see package query). Searches go through two filtered
// aliases, "<prefix>-customers" and "<prefix>-events", so neither ever
// sees the other's documents.
var Customers = Index{Name: "customers", Version: 1, file: "customers.json", generate: customerMappings, Views: map[string]map[string]any{
	"customers": {"term": map[string]any{schema.JoinField: schema.CustomerRelation}},
	"events":    {"term": map[string]any{schema.JoinField: schema.EventRelation}},
}}

// The indices the service creates.
var (
	// Events is the events view of the customers index.
	Events     = Customers.View("events")
	Identities = Index{Name: "identities", Version: 1, file: "identities.json"}
	// Rows is the indexer's row store: every source row it has seen, with
	// its source position, from which customer documents are rebuilt.
	Rows = Index{Name: "rows", Version: 1, file: "rows.json"}
	// Fields holds the dynamic fields of the catalog: declared through the
	// API or discovered by the indexer.
	Fields = Index{Name: "fields", Version: 1, file: "fields.json"}
	// Settings holds what every process of a deployment must share, such
	// as the key that signs search cursors.
	Settings = Index{Name: "settings", Version: 1, file: "settings.json"}
	// People holds what OneID knows of each customer id: the identities
	// it holds, when it was first seen, the profiles merged into it or it
	// into, the profiles a split keeps it apart from, and its conflicts.
	People = Index{Name: "people", Version: 1, file: "people.json"}
	// IdentityHistory lists the merges, splits and conflicts of OneID,
	// each with the message or the API caller that caused it.
	IdentityHistory = Index{Name: "identity-history", Version: 1, file: "identity_history.json"}
	// Segments holds the saved segments (CONTRACT §4.1): each one's
	// filter as it was sent, kept in _source and not indexed, and refs,
	// the ids of the segments its filter names, so that a delete finds
	// who refers to the segment it removes.
	Segments = Index{Name: "segments", Version: 1, file: "segments.json"}
	// ExportJobs holds the export jobs (CONTRACT §4.3): each one's plan
	// (the compiled query, format and destination), its status and
	// progress, and its checkpoint (the last customer id written, the
	// file's length or the Kafka offsets then, and the fencing token of
	// the runner that wrote it); see package exportjob.
	ExportJobs = Index{Name: "export-jobs", Version: 1, file: "export_jobs.json"}
	// Tags holds the smart-tag rules (CONTRACT §4.2), by name, each with
	// its filter (kept in _source, not indexed) and the ids of the
	// segments the filter names (refs), as for Segments.
	Tags = Index{Name: "tags", Version: 1, file: "tags.json"}
	// Membership holds, per customer, the saved segments and tag rules it
	// belongs to as last published, its manual tags, a version that every
	// change of them moves on, and the membership records written but not
	// yet published (pending), which a restart publishes again.
	Membership = Index{Name: "membership", Version: 1, file: "membership.json"}
	// MembershipSweeps holds the definition sweeps under way (package
	// membership): the definitions each one walks, how far it got (the
	// last customer id done), and until when its process holds it, so
	// that a sweep cut short by a restart resumes where it stopped.
	MembershipSweeps = Index{Name: "membership-sweeps", Version: 1, file: "membership_sweeps.json"}
	// APIKeys holds the API keys (CONTRACT §7): name, role, the SHA-256
	// of the token (never the token), creation, last use and revocation.
	APIKeys = Index{Name: "api-keys", Version: 1, file: "api_keys.json"}
	// Audit holds the audit records of §7, appended and never changed.
	Audit = Index{Name: "audit", Version: 1, file: "audit.json"}
)

// All lists every physical index the service creates on start.
var All = []Index{Customers, Identities, Rows, Fields, Settings, People, IdentityHistory, Segments, ExportJobs, Tags, Membership, MembershipSweeps, APIKeys, Audit}

// Alias is the name clients use: "<prefix>-<name>".
func (i Index) Alias(prefix string) string {
	if i.alias != "" {
		return prefix + "-" + i.alias
	}
	return prefix + "-" + i.Name
}

// Physical is the versioned index name behind the aliases.
func (i Index) Physical(prefix string) string {
	return fmt.Sprintf("%s-%s-v%d", prefix, i.Name, i.Version)
}

// Body returns the settings and mappings JSON used to create the index.
func (i Index) Body() []byte {
	body, err := i.body()
	if err != nil {
		panic(err.Error())
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(fmt.Sprintf("mapping: %s: %v", i.file, err))
	}
	return b
}

// body reads the embedded file and adds the generated mappings.
func (i Index) body() (map[string]any, error) {
	b, err := files.ReadFile(i.file)
	if err != nil {
		return nil, fmt.Errorf("mapping: embedded %s missing: %w", i.file, err)
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, fmt.Errorf("mapping: %s: %w", i.file, err)
	}
	if i.generate != nil {
		m, ok := body["mappings"].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("mapping: %s has no mappings object", i.file)
		}
		if err := i.generate(m); err != nil {
			return nil, fmt.Errorf("mapping: %s: %w", i.file, err)
		}
	}
	return body, nil
}

// CreateBody returns Body with the alias added, ready for PUT /<physical>.
func (i Index) CreateBody(prefix string) ([]byte, error) {
	body, err := i.body()
	if err != nil {
		return nil, err
	}
	aliases := map[string]any{}
	if len(i.Views) == 0 {
		aliases[i.Alias(prefix)] = map[string]any{}
	}
	for name, filter := range i.Views {
		aliases[prefix+"-"+name] = map[string]any{"filter": filter}
	}
	body["aliases"] = aliases
	return json.Marshal(body)
}
