package mapping

import (
	"embed"
	"encoding/json"
	"fmt"
)

//go:embed *.json
var files embed.FS

// Index describes one index the service owns. Its physical name is
// "<prefix>-<Name>-v<Version>" and it is always reached through the alias
// "<prefix>-<Name>", so a new mapping version can be rolled out by
// reindexing behind the alias.
type Index struct {
	Name    string
	Version int
	file    string
}

// The indices the service creates.
var (
	Customers  = Index{Name: "customers", Version: 1, file: "customers.json"}
	Events     = Index{Name: "events", Version: 1, file: "events.json"}
	Identities = Index{Name: "identities", Version: 1, file: "identities.json"}
	// Rows is the indexer's row store: every source row it has seen, with
	// its source position, from which customer documents are rebuilt.
	Rows = Index{Name: "rows", Version: 1, file: "rows.json"}
)

// All lists every index the service creates on start.
var All = []Index{Customers, Events, Identities, Rows}

// Alias is the name clients use: "<prefix>-<name>".
func (i Index) Alias(prefix string) string { return prefix + "-" + i.Name }

// Physical is the versioned index name behind the alias.
func (i Index) Physical(prefix string) string {
	return fmt.Sprintf("%s-%s-v%d", prefix, i.Name, i.Version)
}

// Body returns the settings and mappings JSON used to create the index.
func (i Index) Body() []byte {
	b, err := files.ReadFile(i.file)
	if err != nil {
		panic(fmt.Sprintf("mapping: embedded %s missing: %v", i.file, err))
	}
	return b
}

// CreateBody returns Body with the alias added, ready for PUT /<physical>.
func (i Index) CreateBody(prefix string) ([]byte, error) {
	var body map[string]any
	if err := json.Unmarshal(i.Body(), &body); err != nil {
		return nil, fmt.Errorf("mapping: %s: %w", i.file, err)
	}
	body["aliases"] = map[string]any{i.Alias(prefix): map[string]any{}}
	return json.Marshal(body)
}
