package wire

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The package is read and tested on bytes alone: it may use the standard
// library and the declarations of package schema only, never Kafka,
// OpenSearch, the row store, or a package that brings them along.
func TestTheWireFormatsNeedOnlyTheStandardLibrary(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if first, _, _ := strings.Cut(path, "/"); (strings.Contains(first, ".") || first == "cdp") && path != "cdp/schema" {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}

func TestEveryTableNameIsATableOfTheSchema(t *testing.T) {
	for _, name := range []string{TableCustomers, TableOrders, TableOrderItems} {
		if _, ok := cdcTables[name]; !ok {
			t.Errorf("table %q is not declared in schema.Tables", name)
		}
	}
	if len(cdcTables) != 3 {
		t.Errorf("%d tables in the schema, want the contract's 3", len(cdcTables))
	}
}
