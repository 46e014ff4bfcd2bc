package api

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
	"github.com/crvault/crvault/vault/supervision"
)

// The OpenAPI document is the published contract: these tests keep it in
// lock-step with the routes New registers, so a route cannot be added (or
// removed) without the document saying so.

var oaMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatalf("read openapi.yaml: %v", err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	m, ok := oaMap(doc)
	if !ok {
		t.Fatalf("openapi.yaml is not a mapping")
	}
	return m
}

// oaMap accepts both map shapes yaml.v3 produces (string keys, or any keys
// when a key such as an unquoted 200 is not a string).
func oaMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}

func oaMustMap(t *testing.T, v any, where string) map[string]any {
	t.Helper()
	m, ok := oaMap(v)
	if !ok {
		t.Fatalf("%s: want a mapping, got %T", where, v)
	}
	return m
}

// resolve follows a local "$ref" (JSON pointer into doc) if v is a reference.
func oaResolve(doc map[string]any, v any) (any, error) {
	for range 16 {
		m, ok := oaMap(v)
		if !ok {
			return v, nil
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v, nil
		}
		target, err := oaPointer(doc, ref)
		if err != nil {
			return nil, err
		}
		v = target
	}
	return nil, fmt.Errorf("reference chain too long")
}

func oaPointer(doc map[string]any, ref string) (any, error) {
	frag, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("%q is not a local reference", ref)
	}
	var cur any = doc
	for _, tok := range strings.Split(frag, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := oaMap(cur)
		if !ok {
			return nil, fmt.Errorf("%q: %q is not inside a mapping", ref, tok)
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("%q: no %q", ref, tok)
		}
	}
	return cur, nil
}

func TestOpenAPIIsVersion31(t *testing.T) {
	doc := loadOpenAPI(t)
	v, _ := doc["openapi"].(string)
	if !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Fatalf("openapi = %q, want 3.1.x", v)
	}
	info := oaMustMap(t, doc["info"], "info")
	for _, k := range []string{"title", "version"} {
		if s, _ := info[k].(string); s == "" {
			t.Errorf("info.%s is missing", k)
		}
	}
	schemes := oaMustMap(t, oaMustMap(t, doc["components"], "components")["securitySchemes"], "securitySchemes")
	bearer := oaMustMap(t, schemes["bearerAuth"], "bearerAuth")
	if bearer["type"] != "http" || bearer["scheme"] != "bearer" {
		t.Errorf("bearerAuth = %v, want type http, scheme bearer", bearer)
	}
}

var oaGinParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// oaEngineRoutes builds the real engine and lists "METHOD /path" with Gin's
// :param and *param written as OpenAPI {param}.
func oaEngineRoutes(t *testing.T, d Deps) []string {
	t.Helper()
	h, err := New(d)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	eng, ok := h.(*gin.Engine)
	if !ok {
		t.Fatalf("New returned %T, want *gin.Engine", h)
	}
	var out []string
	for _, r := range eng.Routes() {
		out = append(out, r.Method+" "+oaGinParam.ReplaceAllString(r.Path, "{$1}"))
	}
	sort.Strings(out)
	return out
}

// oaDocumentedRoutes lists "METHOD /path" for every operation, with the
// service (x-requires) it needs to be registered, "" when always.
func oaDocumentedRoutes(t *testing.T, doc map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for path, item := range oaMustMap(t, doc["paths"], "paths") {
		for method, op := range oaMustMap(t, item, path) {
			if !slices.Contains(oaMethods, method) {
				continue
			}
			route := strings.ToUpper(method) + " " + path
			req, _ := oaMustMap(t, op, route)["x-requires"].(string)
			switch req {
			case "", "metrics", "supervision":
			default:
				t.Errorf("%s: x-requires %q is not metrics or supervision", route, req)
			}
			out[route] = req
		}
	}
	return out
}

func TestOpenAPIDocumentsExactlyTheRegisteredRoutes(t *testing.T) {
	documented := oaDocumentedRoutes(t, loadOpenAPI(t))
	// Route registration only takes method values of the handler, so an
	// empty service is enough to make New register the supervision routes.
	sv := &supervision.Service{}
	tests := []struct {
		name string
		deps Deps
		// served are the optional services this configuration has.
		served []string
	}{
		{name: "everything", deps: Deps{Gatherer: prometheus.NewRegistry(), MetricsToken: "metrics-token-123456", Supervision: sv}, served: []string{"metrics", "supervision"}},
		{name: "without metrics", deps: Deps{Supervision: sv}, served: []string{"supervision"}},
		{name: "metrics without a token", deps: Deps{Gatherer: prometheus.NewRegistry(), Supervision: sv}, served: []string{"supervision"}},
		{name: "without supervision", deps: Deps{Gatherer: prometheus.NewRegistry(), MetricsToken: "metrics-token-123456"}, served: []string{"metrics"}},
		{name: "bare", deps: Deps{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			registered := oaEngineRoutes(t, tc.deps)
			var want []string
			for r, req := range documented {
				if req == "" || slices.Contains(tc.served, req) {
					want = append(want, r)
				}
			}
			sort.Strings(want)
			for _, r := range registered {
				if !slices.Contains(want, r) {
					if _, ok := documented[r]; ok {
						t.Errorf("route %s is registered here but its x-requires says it should not be", r)
					} else {
						t.Errorf("route %s is registered but not documented in openapi.yaml", r)
					}
				}
			}
			for _, r := range want {
				if !slices.Contains(registered, r) {
					t.Errorf("openapi.yaml documents %s, which is not registered (x-requires %q)", r, documented[r])
				}
			}
		})
	}
}

func TestOpenAPIRefsResolve(t *testing.T) {
	doc := loadOpenAPI(t)
	used := map[string]bool{}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		if m, ok := oaMap(v); ok {
			if ref, ok := m["$ref"]; ok {
				s, isString := ref.(string)
				if !isString {
					t.Errorf("%s: $ref is %T, want a string", where, ref)
				} else if _, err := oaPointer(doc, s); err != nil {
					t.Errorf("%s: unresolved $ref: %v", where, err)
				} else {
					used[s] = true
				}
			}
			for k, v := range m {
				walk(where+"/"+k, v)
			}
			return
		}
		if l, ok := v.([]any); ok {
			for i, v := range l {
				walk(where+"/"+strconv.Itoa(i), v)
			}
		}
	}
	walk("#", doc)
	if len(used) == 0 {
		t.Fatal("no $ref found; the walk is broken")
	}
	// A component nobody refers to is usually a typo in a $ref.
	comps := oaMustMap(t, doc["components"], "components")
	for _, kind := range []string{"schemas", "responses", "parameters", "headers"} {
		for name := range oaMustMap(t, comps[kind], kind) {
			if ref := "#/components/" + kind + "/" + name; !used[ref] {
				t.Errorf("%s is never referenced", ref)
			}
		}
	}
}

var oaPathParam = regexp.MustCompile(`\{([^}]+)\}`)

// TestOpenAPIOperations checks what every operation must say: a success
// answer, X-Request-ID on every response, problem+json errors built on
// Problem, and path parameters that match the template.
func TestOpenAPIOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	opIDs := map[string]string{}
	for path, rawItem := range oaMustMap(t, doc["paths"], "paths") {
		item := oaMustMap(t, rawItem, path)
		for method, rawOp := range item {
			if !slices.Contains(oaMethods, method) {
				continue
			}
			where := strings.ToUpper(method) + " " + path
			op := oaMustMap(t, rawOp, where)

			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s: no operationId", where)
			} else if prev, dup := opIDs[id]; dup {
				t.Errorf("%s: operationId %q already used by %s", where, id, prev)
			}
			opIDs[id] = where

			declared := map[string]bool{}
			for _, params := range []any{item["parameters"], op["parameters"]} {
				list, _ := params.([]any)
				for _, p := range list {
					rp, err := oaResolve(doc, p)
					if err != nil {
						t.Fatalf("%s: %v", where, err)
					}
					pm := oaMustMap(t, rp, where+" parameter")
					if pm["in"] == "path" {
						declared[pm["name"].(string)] = true
						if pm["required"] != true {
							t.Errorf("%s: path parameter %v must be required", where, pm["name"])
						}
					}
				}
			}
			inTemplate := map[string]bool{}
			for _, m := range oaPathParam.FindAllStringSubmatch(path, -1) {
				inTemplate[m[1]] = true
				if !declared[m[1]] {
					t.Errorf("%s: path parameter {%s} is not declared", where, m[1])
				}
			}
			for name := range declared {
				if !inTemplate[name] {
					t.Errorf("%s: declares path parameter %q that is not in the path", where, name)
				}
			}

			responses := oaMustMap(t, op["responses"], where+" responses")
			success := false
			for code, rawResp := range responses {
				rwhere := where + " " + code
				if !regexp.MustCompile(`^[1-5][0-9][0-9]$`).MatchString(code) {
					t.Errorf("%s: response key %q is not a status code", rwhere, code)
					continue
				}
				success = success || code[0] == '2' || code == "302" // a redirect (single sign-on) succeeds too
				rv, err := oaResolve(doc, rawResp)
				if err != nil {
					t.Fatalf("%s: %v", rwhere, err)
				}
				resp := oaMustMap(t, rv, rwhere)
				if d, _ := resp["description"].(string); d == "" {
					t.Errorf("%s: no description", rwhere)
				}
				headers, _ := oaMap(resp["headers"])
				if _, ok := headers["X-Request-ID"]; !ok {
					t.Errorf("%s: does not declare the X-Request-ID header", rwhere)
				}
				content, _ := oaMap(resp["content"])
				if code[0] == '4' || code[0] == '5' {
					pj, ok := oaMap(content["application/problem+json"])
					if !ok {
						t.Errorf("%s: error response is not application/problem+json", rwhere)
						continue
					}
					if !oaRefersTo(pj["schema"], "#/components/schemas/Problem") {
						t.Errorf("%s: problem schema does not build on #/components/schemas/Problem", rwhere)
					}
				}
			}
			if !success {
				t.Errorf("%s: no 2xx response", where)
			}
		}
	}
}

// oaRefersTo reports whether schema is ref or an allOf containing it.
func oaRefersTo(schema any, ref string) bool {
	m, ok := oaMap(schema)
	if !ok {
		return false
	}
	if m["$ref"] == ref {
		return true
	}
	all, _ := m["allOf"].([]any)
	for _, s := range all {
		if oaRefersTo(s, ref) {
			return true
		}
	}
	return false
}

// TestOpenAPIServed checks the server hands out the very file in the repo,
// without authentication, with a request id.
func TestOpenAPIServed(t *testing.T) {
	want, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tests := []struct {
		name, sentID string
		echoed       bool
	}{
		{name: "no request id", sentID: ""},
		{name: "sane request id echoed", sentID: "client-42.a:b", echoed: true},
		{name: "insane request id replaced", sentID: "bad id\twith spaces"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/openapi.yaml", nil)
			if tc.sentID != "" {
				req.Header.Set("X-Request-ID", tc.sentID)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200", rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/yaml") {
				t.Errorf("Content-Type %q, want application/yaml", ct)
			}
			if !bytes.Equal(rec.Body.Bytes(), want) {
				t.Errorf("served document differs from api/openapi.yaml (%d vs %d bytes)", rec.Body.Len(), len(want))
			}
			got := rec.Header().Get("X-Request-ID")
			if !saneRequestID.MatchString(got) {
				t.Errorf("X-Request-ID %q is not a sane id", got)
			}
			if tc.echoed != (got == tc.sentID) {
				t.Errorf("X-Request-ID %q for sent %q; echoed=%v, want %v", got, tc.sentID, got == tc.sentID, tc.echoed)
			}
		})
	}
}

// oaJSONFields lists a struct's JSON member names and which are always present
// (no omitempty).
func oaJSONFields(t *testing.T, typ reflect.Type) (all, always []string) {
	t.Helper()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			// encoding/json promotes an untagged embedded struct's members.
			a, al := oaJSONFields(t, f.Type)
			all, always = append(all, a...), append(always, al...)
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		all = append(all, name)
		if !slices.Contains(strings.Split(opts, ","), "omitempty") {
			always = append(always, name)
		}
	}
	sort.Strings(all)
	sort.Strings(always)
	return all, always
}

// TestOpenAPISchemasMatchGoTypes keeps each schema's members equal to the
// json tags of the Go type the handlers encode or decode. For answers, the
// members without omitempty must be exactly the required ones; requests are
// strict (additionalProperties false) because decode refuses unknown fields.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	schemas := oaMustMap(t, oaMustMap(t, loadOpenAPI(t)["components"], "components")["schemas"], "schemas")
	tests := []struct {
		schema  string
		goType  any
		request bool
	}{
		{"Problem", Problem{}, false},
		{"LoginRequest", loginRequest{}, true},
		{"Session", sessionResponse{}, false},
		{"NewOrg", orgRequest{}, true},
		{"Org", access.Org{}, false},
		{"NewUser", userRequest{}, true},
		{"User", access.User{}, false},
		{"UserPage", vault.Page[access.User]{}, false},
		{"TOTPEnrolment", access.TOTPEnrolment{}, false},
		{"TOTPCodeRequest", totpCodeRequest{}, true},
		{"OIDCTOTPRequest", oidcTOTPRequest{}, true},
		{"RecoveryCodes", recoveryCodes{}, false},
		{"PasswordChange", passwordChange{}, true},
		{"NewCase", vault.NewCase{}, true},
		{"Case", vault.Case{}, false},
		{"Retention", vault.Retention{}, false},
		{"LegalHold", vault.LegalHold{}, true},
		{"CasePage", vault.Page[vault.Case]{}, false},
		{"Material", vault.Material{}, false},
		{"MaterialPage", vault.Page[vault.Material]{}, false},
		{"NewUpload", vault.NewUpload{}, true},
		{"UploadSession", vault.UploadSession{}, false},
		{"UploadSessionPage", vault.Page[vault.UploadSession]{}, false},
		{"NewConsent", vault.NewConsent{}, true},
		{"Consent", vault.Consent{}, false},
		{"ConsentPage", vault.Page[vault.Consent]{}, false},
		{"NewAssignment", vault.NewAssignment{}, true},
		{"Assignment", access.Assignment{}, false},
		{"AssignmentPage", vault.Page[access.Assignment]{}, false},
		{"NewDeclaration", vault.NewDeclaration{}, true},
		{"Declaration", access.Declaration{}, false},
		{"Event", audit.Event{}, false},
		{"EventPage", vault.Page[audit.Event]{}, false},

		{"TransitionRequest", vault.TransitionRequest{}, true},
		{"OpinionRequest", vault.OpinionRequest{}, true},
		{"TransitionResult", vault.TransitionResult{}, false},
		{"CaseEvent", review.Event{}, false},
		{"Clock", review.Clock{}, false},
		{"Pause", review.Pause{}, false},
		{"Extension", review.Extension{}, false},
		{"Deadline", vault.Deadline{}, false},
		{"CalendarDue", calendar.Due{}, false},
		{"FactorFinding", review.FactorFinding{}, true},
		{"RequestedItem", review.RequestedItem{}, false},
		{"MemberOpinion", review.MemberOpinion{}, false},
		{"MeasureReport", vault.MeasureReport{}, true},
		{"Member", review.Member{}, false},
		{"Factor", review.Factor{}, false},
		{"EditionInfo", vault.EditionInfo{}, false},
		{"NewMemberUnit", vault.NewMemberUnit{}, true},
		{"MemberUnit", vault.MemberUnit{}, false},
		{"MemberUnitPage", vault.Page[vault.MemberUnit]{}, false},
		{"NewProposal", vault.NewProposal{}, true},
		{"ProposalApproval", vault.ProposalApproval{}, false},
		{"Proposal", vault.Proposal{}, false},
		{"ProposalPage", vault.Page[vault.Proposal]{}, false},
		{"ApprovalRequest", vault.ApprovalRequest{}, true},
		{"ApprovedProposal", vault.ApprovedProposal{}, false},
		{"CalendarCoverage", calendar.Coverage{}, false},

		{"InclusionProof", audit.InclusionProof{}, false},
		{"ConsistencyProof", audit.ConsistencyProof{}, false},

		{"NewComplaint", supervision.NewComplaint{}, true},
		{"ComplaintStatusRequest", supervision.StatusRequest{}, true},
		{"Resolution", supervision.Resolution{}, true},
		{"Complaint", supervision.Complaint{}, false},
		{"StatusChange", supervision.StatusChange{}, false},
		{"ComplaintPage", supervision.Page[supervision.Complaint]{}, false},
		{"Evidence", supervision.Evidence{}, false},
		{"EvidenceEvent", supervision.EvidenceEvent{}, false},
		{"NewCommitment", supervision.NewCommitment{}, true},
		{"UrgeRequest", supervision.UrgeRequest{}, true},
		{"CommitmentStatusRequest", supervision.CommitmentStatusRequest{}, true},
		{"Commitment", supervision.Commitment{}, false},
		{"Urge", supervision.Urge{}, false},
		{"CommitmentPage", supervision.Page[supervision.Commitment]{}, false},
		{"NewReport", supervision.NewReport{}, true},
		{"FiledReport", supervision.Filed{}, false},
		{"MessageRequest", supervision.MessageRequest{}, true},
		{"Message", supervision.Message{}, false},
		{"AttachmentInfo", supervision.AttachmentInfo{}, false},
		{"Link", supervision.Link{}, false},
		{"ReportStatusChange", supervision.ReportStatusChange{}, true},
		{"Report", supervision.Report{}, false},
		{"ReportPage", supervision.Page[supervision.Report]{}, false},
		{"ReporterView", supervision.ReporterView{}, false},
		{"Workload", supervision.Workload{}, false},
		{"Queue", supervision.Queue{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.schema, func(t *testing.T) {
			s := oaMustMap(t, schemas[tc.schema], tc.schema)
			var props []string
			for name := range oaMustMap(t, s["properties"], tc.schema+" properties") {
				props = append(props, name)
			}
			sort.Strings(props)
			var required []string
			list, _ := s["required"].([]any)
			for _, r := range list {
				required = append(required, fmt.Sprint(r))
			}
			sort.Strings(required)

			all, always := oaJSONFields(t, reflect.TypeOf(tc.goType))
			if !slices.Equal(props, all) {
				t.Errorf("properties %v, Go json members %v", props, all)
			}
			if tc.request {
				if s["additionalProperties"] != false {
					t.Errorf("request schema must set additionalProperties: false (decode refuses unknown fields)")
				}
				return
			}
			if !slices.Equal(required, always) {
				t.Errorf("required %v, Go members always present %v", required, always)
			}
		})
	}
}
