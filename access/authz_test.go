package access

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// world is a populated vault: every kind of relation to case "case-1".
type world struct {
	*fixture
	p                map[string]Principal
	submitted, draft CaseFacts
}

func newWorld(t *testing.T, dialect string) *world {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t, dialect, nil)
	w := &world{fixture: f, p: map[string]Principal{}}
	opA, opB := f.org(t, "Operator A", OrgOperator), f.org(t, "Operator B", OrgOperator)
	prov, prov2 := f.org(t, "Provider", OrgProvider), f.org(t, "Provider 2", OrgProvider)
	office, mu, sup := f.org(t, "Office", OrgOffice), f.org(t, "Ministry", OrgMemberUnit), f.org(t, "Supervision", OrgSupervision)
	for name, spec := range map[string]struct {
		org   Org
		roles []Role
	}{
		"sysadmin": {office, []Role{RoleSysadmin}}, "inspector": {sup, []Role{RoleInspector}},
		"operA": {opA, []Role{RoleOperator}}, "operB": {opB, []Role{RoleOperator}},
		"prov": {prov, []Role{RoleProvider}}, "prov2": {prov2, []Role{RoleProvider}},
		"admin": {office, []Role{RoleOfficeAdmin}},
		"rev":   {office, []Role{RoleReviewer}}, "revUndecl": {office, []Role{RoleReviewer}},
		"revSusp": {office, []Role{RoleReviewer}}, "revExp": {office, []Role{RoleReviewer}},
		"revRevoked": {office, []Role{RoleReviewer}}, "revNone": {office, []Role{RoleReviewer}},
		"muDecl": {mu, []Role{RoleMemberUnit}}, "muUndecl": {mu, []Role{RoleMemberUnit}},
		"adminRev": {office, []Role{RoleOfficeAdmin, RoleReviewer}}, "adminRevDecl": {office, []Role{RoleOfficeAdmin, RoleReviewer}},
	} {
		w.p[name] = f.user(t, strings.ToLower(name), spec.org, spec.roles...)
	}
	w.submitted = CaseFacts{ID: "case-1", OperatorOrg: opA.ID, ProviderOrgs: []string{prov.ID}, Status: "submitted"}
	w.draft = CaseFacts{ID: "case-2", OperatorOrg: opA.ID, ProviderOrgs: []string{prov.ID}, Status: "draft"}

	expiry := f.clock.Now().Add(48 * time.Hour)
	for _, a := range []struct {
		who, role string
		expires   *time.Time
		declare   *bool
	}{
		{"rev", "reviewer", nil, ptr(false)},
		{"revUndecl", "reviewer", nil, nil},
		{"revSusp", "reviewer", nil, ptr(true)},
		{"revExp", "reviewer", &expiry, ptr(false)},
		{"revRevoked", "reviewer", nil, ptr(false)},
		{"muDecl", "member_unit", nil, ptr(false)},
		{"muUndecl", "member_unit", nil, nil},
		{"adminRev", "reviewer", nil, nil},
		{"adminRevDecl", "reviewer", nil, ptr(false)},
	} {
		got, err := f.svc.Assign(ctx, w.p["admin"], "case-1", w.p[a.who].User.ID, a.role, "Art. 16 review of "+a.who, a.expires)
		if err != nil {
			t.Fatalf("assign %s: %v", a.who, err)
		}
		if a.declare != nil {
			if _, err := f.svc.Declare(ctx, w.p[a.who], "case-1", *a.declare, "I declare."); err != nil {
				t.Fatalf("declare %s: %v", a.who, err)
			}
		}
		if a.who == "revRevoked" {
			if err := f.svc.Revoke(ctx, w.p["admin"], "case-1", got.ID); err != nil {
				t.Fatalf("revoke: %v", err)
			}
		}
	}
	f.clock.Advance(72 * time.Hour) // revExp's assignment is now expired
	return w
}

func ptr[T any](v T) *T { return &v }

var (
	operatorActs = []Action{ActCaseRead, ActCaseSubmit, ActMaterialList, ActMaterialMeta, ActMaterialRead, ActMaterialUpload, ActAssignmentList, ActComplaintCreate}
	providerActs = []Action{ActCaseRead, ActMaterialList, ActMaterialMeta, ActMaterialUpload, ActMaterialRead, ActCommitmentCreate, ActComplaintCreate}
	officeActs   = []Action{ActCaseRead, ActMaterialList, ActMaterialMeta, ActAssignmentManage, ActAssignmentList, ActCaseTransition, ActCaseHold}
	assigneeActs = []Action{ActCaseRead, ActMaterialList, ActMaterialMeta, ActDeclarationCreate}
)

type matrixRow struct {
	who       string
	draft     bool // the draft case instead of the submitted one
	opened    bool // with draft: the office opened it (a proposed review)
	allowed   []Action
	otherwise string            // the code of every other action
	codes     map[Action]string // exceptions to otherwise
}

var matrix = []matrixRow{
	{who: "sysadmin", otherwise: CodeNotFound},
	{who: "sysadmin", draft: true, otherwise: CodeNotFound},
	{who: "inspector", allowed: []Action{ActCaseRead, ActMaterialList, ActMaterialMeta, ActAssignmentList}, otherwise: CodeForbidden},
	{who: "operA", allowed: operatorActs, otherwise: CodeForbidden},
	{who: "operA", draft: true, allowed: operatorActs, otherwise: CodeForbidden},
	{who: "operB", otherwise: CodeNotFound},
	{who: "prov", allowed: providerActs, otherwise: CodeForbidden},
	{who: "prov2", otherwise: CodeNotFound},
	{who: "admin", allowed: officeActs, otherwise: CodeForbidden},
	{who: "admin", draft: true, otherwise: CodeNotFound},
	// The office follows a draft it opened itself, but reads nothing in it.
	{who: "admin", draft: true, opened: true, allowed: []Action{ActCaseRead}, otherwise: CodeNotFound},
	{who: "operA", draft: true, opened: true, allowed: operatorActs, otherwise: CodeForbidden},
	{who: "rev", draft: true, opened: true, otherwise: CodeNotFound},
	{who: "rev", allowed: append(slices.Clone(assigneeActs), ActMaterialRead), otherwise: CodeForbidden},
	{who: "rev", draft: true, otherwise: CodeNotFound},
	{who: "revUndecl", allowed: assigneeActs, otherwise: CodeForbidden,
		codes: map[Action]string{ActMaterialRead: CodeDeclarationRequired}},
	{who: "revSusp", otherwise: CodeAssignmentSuspended},
	{who: "revExp", otherwise: CodeAssignmentExpired},
	{who: "revRevoked", otherwise: CodeNotFound},
	{who: "revNone", otherwise: CodeNotFound},
	{who: "muDecl", allowed: append(slices.Clone(assigneeActs), ActMaterialRead, ActOpinionCreate), otherwise: CodeForbidden},
	{who: "muUndecl", allowed: assigneeActs, otherwise: CodeForbidden,
		codes: map[Action]string{ActMaterialRead: CodeDeclarationRequired, ActOpinionCreate: CodeDeclarationRequired}},
	{who: "adminRev", allowed: append(slices.Clone(officeActs), ActDeclarationCreate), otherwise: CodeForbidden,
		codes: map[Action]string{ActMaterialRead: CodeDeclarationRequired}},
	{who: "adminRevDecl", allowed: append(slices.Clone(officeActs), ActDeclarationCreate, ActMaterialRead), otherwise: CodeForbidden},
	{who: "adminRevDecl", draft: true, otherwise: CodeNotFound},
}

func checkMatrix(t *testing.T, w *world, s *Service) {
	t.Helper()
	ctx := context.Background()
	for _, row := range matrix {
		c := w.submitted
		if row.draft {
			c = w.draft
			c.OpenedByOffice = row.opened
		}
		for _, a := range Actions {
			want := Decision{Allowed: slices.Contains(row.allowed, a)}
			if !want.Allowed {
				want.Code = row.otherwise
				if code, ok := row.codes[a]; ok {
					want.Code = code
				}
			}
			want.Visible = want.Code != CodeNotFound
			got, err := s.Decide(ctx, w.p[row.who], c, a)
			if err != nil {
				t.Fatalf("%s %s on %s: %v", row.who, a, c.Status, err)
			}
			if got.Allowed != want.Allowed || got.Visible != want.Visible || got.Code != want.Code {
				t.Errorf("%s %s on %s case: got allowed=%v visible=%v code=%q, want allowed=%v visible=%v code=%q",
					row.who, a, c.Status, got.Allowed, got.Visible, got.Code, want.Allowed, want.Visible, want.Code)
			}
		}
	}
}

func TestDecideMatrix(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		checkMatrix(t, w, w.svc)

		// Access through an assignment names it, for the audit event.
		d, _ := w.svc.Decide(context.Background(), w.p["rev"], w.submitted, ActMaterialRead)
		if d.Purpose != "Art. 16 review of rev" || d.AssignmentID == "" {
			t.Errorf("decision via assignment = %+v, want purpose and assignment id", d)
		}
		d, _ = w.svc.Decide(context.Background(), w.p["operA"], w.submitted, ActMaterialRead)
		if d.Purpose != "" || d.AssignmentID != "" {
			t.Errorf("operator decision = %+v, want no assignment", d)
		}
		if _, err := w.svc.Decide(context.Background(), w.p["rev"], w.submitted, "material.delete"); !errors.Is(err, ErrInvalid) {
			t.Errorf("unknown action: %v", err)
		}

		t.Run("restart restores grants", func(t *testing.T) {
			checkMatrix(t, w, w.restart(t))
		})
	})
}

func TestCan(t *testing.T) {
	w := newWorld(t, "sqlite")
	for _, tc := range []struct {
		who, obj, act string
		want          bool
	}{
		{"operA", "case", "create", true},
		{"prov", "case", "create", false},
		{"sysadmin", "user", "manage", true},
		{"admin", "user", "manage", false},
		{"inspector", "audit", "read_all", true},
		{"operA", "audit", "read_all", false},
		{"admin", "deadline", "list", true},
		{"rev", "deadline", "list", false},
		// Case-scoped permissions are never granted globally.
		{"operA", "material", "read", false},
		{"admin", "assignment", "manage", false},
	} {
		if got := w.svc.Can(w.p[tc.who], tc.obj, tc.act); got != tc.want {
			t.Errorf("Can(%s, %s, %s) = %v, want %v", tc.who, tc.obj, tc.act, got, tc.want)
		}
	}
}

// TestPermitsMatchesEnforce checks that the direct lookups Decide uses give
// the same answer as Casbin evaluating the model's matcher.
func TestPermitsMatchesEnforce(t *testing.T) {
	w := newWorld(t, "sqlite")
	s := w.svc
	// The reference: Casbin evaluating the model with every live grant as
	// a g rule, as the enforcer held them before issue 10.
	ref := s.enf
	var rules [][]string
	seen := map[[3]string]bool{}
	for caseID, gs := range s.grants {
		for _, g := range gs {
			if r := [3]string{g.user, g.role, caseID}; !g.suspended && !seen[r] {
				seen[r] = true
				rules = append(rules, r[:])
			}
		}
	}
	if len(rules) == 0 {
		t.Fatal("the world holds no grants: the comparison would prove nothing")
	}
	if ok, err := ref.AddGroupingPolicies(rules); err != nil || !ok {
		t.Fatalf("add g rules: %v %v", ok, err)
	}
	subjects := []string{"nobody"}
	for _, p := range w.p {
		subjects = append(subjects, p.User.ID)
	}
	for _, r := range Roles {
		subjects = append(subjects, string(r))
	}
	for _, sub := range subjects {
		for _, r := range Roles {
			for _, dom := range []string{"case-1", "case-2", ""} {
				for _, a := range append(slices.Clone(Actions), "case.create", "audit.read_all") {
					obj, act, _ := strings.Cut(string(a), ".")
					want, err := ref.Enforce(sub, string(r), dom, obj, act)
					if err != nil {
						t.Fatal(err)
					}
					if got, _ := s.permits(sub, string(r), obj, act, s.grants.get(dom, sub)); got != want {
						t.Fatalf("permits(%s, %s, %s, %s) = %v, Enforce = %v", sub, r, dom, a, got, want)
					}
				}
			}
		}
	}
}
