package vault

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault/review"
)

// Every material kind and case history action has a row in the one table.
func TestVisibilityRowsForKindsAndHistory(t *testing.T) {
	for _, k := range Kinds {
		if _, ok := kindRules[k]; !ok {
			t.Errorf("material kind %q has no row in kindRules", k)
		}
	}
	for k := range kindRules {
		if !slices.Contains(Kinds, k) {
			t.Errorf("kindRules has a row for unknown kind %q", k)
		}
	}
	for _, a := range review.Actions() {
		if _, ok := historyRules[a]; !ok {
			t.Errorf("history action %q has no row in historyRules", a)
		}
	}
}

// actionLike matches what an audit action looks like: "object.verb" in
// lower snake case, possibly with more dotted parts.
var actionLike = regexp.MustCompile(`^[a-z]+(_[a-z]+)*(\.[a-z]+(_[a-z]+)*)+$`)

// notActions are dotted literals of the code that are not audit actions:
// file names, keys of other namespaces, Casbin-only actions.
var notActions = map[string]bool{
	"vault.db": true, "openapi.yaml": true, "vault.yaml": true, "casbin.conf": true,
	"crvault.request_id": true, "crvault.principal": true, "crvault.audit": true, "crvault.cut_short": true, "crvault.case_hidden": true,
	"link.provider": true, "link.case": true, "link.commitment": true,
	"assignment.manage": true, "audit.read_all": true, "case.hold": true,
	"t.user_id":                    true, // a column of a backfill query (access/rowtags.go)
	"cases.status":                 true, // the status tag's table label and backfill marker (vault/rowtags.go)
	"case_events.texts":            true, // the backfill marker of the events' second tags (vault/eventtags.go)
	"cases.due":                    true, // the due tag's table label and backfill marker (vault/duetags.go)
	"supervision_complaints.state": true, // a complaint's state tag's domain (vault/supervision/complainttags.go)
}

var fileExt = regexp.MustCompile(`\.(txt|json|ndjson|yaml|yml|db|pdf|bin|csv|conf|key|html|md|go|sql|tmpl|js|css|pem|pgdump)$`)

// recorders are the functions whose string arguments name audit actions.
var recorders = map[string]bool{"record": true, "RecordDenied": true, "recordFailure": true, "event": true,
	"anonEvent": true, "authorize": true, "material": true, "move": true, "permitAudit": true, "complaint": true,
	"inspectorReport": true, "byReceipt": true, "providerMaterial": true}

// auditActionsInSource finds the audit actions the code can write: every
// string argument of a recording helper, the Action of every audit.Event
// literal, and every other literal shaped like an action that is not known
// to be something else. The scan reads the whole module's non-test sources,
// so an action added anywhere (api, access, supervision...) is seen.
func auditActionsInSource(t *testing.T) map[string]string {
	t.Helper()
	found := map[string]string{}
	fset := token.NewFileSet()
	root := ".."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		// The web application's dotted literals are message ids and context
		// keys; its audit actions are still found as Action: values.
		anyLiteral := !strings.Contains(filepath.ToSlash(path), "api/web/")
		add := func(lit *ast.BasicLit) {
			if lit == nil || lit.Kind != token.STRING {
				return
			}
			v, err := strconv.Unquote(lit.Value)
			if err != nil {
				return
			}
			if !actionLike.MatchString(v) && !(regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`).MatchString(v)) {
				return
			}
			if _, ok := found[v]; !ok {
				found[v] = fset.Position(lit.Pos()).String()
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ImportSpec, *ast.Field:
				return false // import paths and struct tags
			case *ast.CallExpr:
				name := ""
				switch fn := n.Fun.(type) {
				case *ast.Ident:
					name = fn.Name
				case *ast.SelectorExpr:
					name = fn.Sel.Name
				}
				if recorders[name] {
					for _, arg := range n.Args {
						if lit, ok := arg.(*ast.BasicLit); ok {
							v, _ := strconv.Unquote(lit.Value)
							// only action-shaped arguments: resources and codes are not
							if actionLike.MatchString(v) || v == "auth" {
								add(lit)
							}
						}
					}
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Action" {
					if lit, ok := n.Value.(*ast.BasicLit); ok {
						add(lit)
					}
				}
			case *ast.BasicLit:
				if n.Kind == token.STRING && anyLiteral {
					if v, err := strconv.Unquote(n.Value); err == nil && actionLike.MatchString(v) && !fileExt.MatchString(v) && !notActions[v] {
						add(n)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatalf("scan sources: %v", err)
	}
	for v := range found {
		if notActions[v] || fileExt.MatchString(v) {
			delete(found, v)
		}
	}
	return found
}

// A new audit action without a row in auditRules (or a family of
// auditFamilies) fails here, wherever in the module it is written.
func TestVisibilityRowForEveryAuditAction(t *testing.T) {
	found := auditActionsInSource(t)
	// The scan must see the actions this package and others write, or it
	// proves nothing.
	for _, must := range []string{"material.read", "auth", "session.create", "complaint.resolve", "assignment.recuse", "report.create", "consent.create"} {
		if _, ok := found[must]; !ok {
			t.Errorf("the source scan missed %q; it cannot be trusted", must)
		}
	}
	var missing []string
	for a, where := range found {
		if _, ok := auditRuleOf(a); !ok {
			missing = append(missing, a+" ("+where+")")
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("audit action %s has no row in visibility.go's auditRules", m)
	}
	for a := range auditRules {
		if _, ok := found[a]; !ok {
			t.Errorf("auditRules has a row for %q, which no code writes", a)
		}
	}
}

// The rows that the contract fixes: deliberation never reaches a party.
func TestVisibilityDeliberationRows(t *testing.T) {
	for _, a := range []string{"assignment.create", "assignment.revoke", "assignment.list", "assignment.recuse", "declaration.create",
		"opinion.create", "complaint.status", "complaint.resolve", "complaint.evidence", "case.reassignment_requested", "case.transition"} {
		if r, _ := auditRuleOf(a); r != auditNever {
			t.Errorf("%s is shown to parties (rule %d)", a, r)
		}
	}
	if historyRules[review.Opinion].party {
		t.Error("member units' opinions are shown to parties")
	}
	party := access.Principal{User: access.User{ID: "u", OrgID: "op-org", Roles: []access.Role{access.RoleOperator}}}
	reviewer := access.Principal{User: access.User{ID: "r", OrgID: "office", Roles: []access.Role{access.RoleReviewer}}}
	inspector := access.Principal{User: access.User{ID: "i", OrgID: "sup", Roles: []access.Role{access.RoleInspector}}}
	for _, tc := range []struct {
		who                  access.Principal
		kind, uploader       string
		visible, needConsent bool
	}{
		{party, "recommendation", "office", false, false},
		{party, "opinion", "mu-org", false, false},
		{party, "notice", "office", true, false},
		{party, "procurement", "op-org", true, false},
		{party, "procurement", "prov-org", false, true},
		{party, "evidence", "prov-org", false, false},
		{party, "evidence", "op-org", true, false},
		{party, "nonsense", "op-org", false, false},
		{reviewer, "procurement", "prov-org", true, false},
		{reviewer, "opinion", "mu-org", true, false},
		{reviewer, "evidence", "op-org", false, false},
		{inspector, "evidence", "op-org", true, false},
		{inspector, "opinion", "mu-org", true, false},
	} {
		v, c := kindVisible(tc.who, tc.kind, tc.uploader)
		if v != tc.visible || c != tc.needConsent {
			t.Errorf("%s sees %s of %s: visible %v consent %v, want %v %v", tc.who.User.Roles[0], tc.kind, tc.uploader, v, c, tc.visible, tc.needConsent)
		}
	}
}
