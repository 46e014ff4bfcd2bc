package web

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault"
)

func (a *app) auditRoutes(g *gin.RouterGroup) {
	g.GET("/audit", a.auditSearch)
	g.POST("/audit/verify", a.csrf, a.auditVerify)
	g.GET("/audit/export", a.auditExport)
}

type auditView struct {
	Filter     map[string]string
	Events     []audit.Event
	Next       string
	Checkpoint *checkpointView
	// Verifying is the background verification running now, Verified the
	// last that ended (nil: none since the server started); shown to
	// those who may start one.
	Verifying, Verified *VerifyRun
	Outcomes            []string
	// Actions are the actions the filter offers: every one to those who
	// read the whole trail, the ones a party may be shown to a party.
	Actions []string
	// People names the organisations, and the actors for those who may
	// read the whole trail; parties see people by pseudonym.
	People map[string]person
	// Materials names the materials the events refer to, those the
	// viewer may list (vault.MaterialNames): which document was read.
	Materials map[string]string
	// CanExport: the viewer may download the export for offline
	// verification; ExportFrom and ExportTo are the first and last event
	// the page lists, for a download of the run of the log that holds them.
	CanExport            bool
	ExportFrom, ExportTo int64
}

// materialOf is the material an event's resource names ("material/ID",
// perhaps with a byte range or an upload after it), or "".
func materialOf(resource string) string {
	rest, ok := strings.CutPrefix(resource, "material/")
	if !ok {
		return ""
	}
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

type checkpointView struct {
	Origin, Size, Root string
}

// parseCheckpoint reads the body of a signed note (origin, size, root).
func parseCheckpoint(b []byte) *checkpointView {
	lines := bytes.SplitN(b, []byte("\n"), 4)
	if len(lines) < 3 {
		return nil
	}
	return &checkpointView{Origin: string(lines[0]), Size: string(lines[1]), Root: string(lines[2])}
}

// auditSearch is the audit log as the service lets this user see it: all
// of it for inspectors, the access log of their own materials for operators
// and providers. Filters and paging are the API's.
func (a *app) auditSearch(c *gin.Context) {
	p := pageOf(c)
	ctx := c.Request.Context()
	q := map[string]string{}
	for _, k := range []string{"case", "actor", "action", "outcome", "since", "until"} {
		q[k] = c.Query(k)
	}
	readAll := a.Access.Can(principalOf(c), "audit", "read_all")
	f := audit.Filter{CaseID: strings.TrimSpace(q["case"]), Actor: strings.TrimSpace(q["actor"]), Action: strings.TrimSpace(q["action"]),
		Outcome: audit.Outcome(q["outcome"]), Limit: 50, Cursor: c.Query("cursor")}
	if readAll && f.Actor != "" {
		// An inspector looks for a person by the name they know.
		f.Actor = a.accountID(ctx, f.Actor)
	}
	switch f.Outcome {
	case "", audit.Allowed, audit.Denied, audit.Errored:
	default:
		a.errorPage(c, http.StatusUnprocessableEntity, "error.invalid")
		return
	}
	for k, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if q[k] == "" {
			continue
		}
		// A date picker gives a day; it means that day in Asia/Shanghai.
		d, err := time.ParseInLocation("2006-01-02", q[k], shanghai)
		if err != nil {
			a.errorPage(c, http.StatusUnprocessableEntity, "error.invalid")
			return
		}
		if k == "until" {
			d = d.Add(24*time.Hour - time.Nanosecond)
		}
		*dst = d.UTC()
	}
	events, next, err := a.Vault.AuditEvents(ctx, a.actor(c), f)
	if err != nil {
		a.fail(c, err)
		return
	}
	v := auditView{Filter: q, Events: events, Next: next, Outcomes: []string{"allowed", "denied", "error"}, CanExport: readAll,
		Actions: vault.PartyAuditActions()}
	if readAll {
		v.Actions = vault.AuditActions()
	}
	if f.Action != "" && !slices.Contains(v.Actions, f.Action) {
		// An action typed into the address (a family's new one) stays the
		// filter shown.
		v.Actions = append(v.Actions, f.Action)
	}
	for _, e := range events {
		if v.ExportFrom == 0 || e.Seq < v.ExportFrom {
			v.ExportFrom = e.Seq
		}
		v.ExportTo = max(v.ExportTo, e.Seq)
	}
	users, orgs := make([]string, 0, len(events)+2), make([]string, 0, len(events)+2)
	for _, e := range events {
		users, orgs = append(users, e.Actor), append(orgs, e.ActorOrg)
	}
	if readAll && a.Verifier != nil {
		v.Verifying, v.Verified = a.Verifier.Status()
		for _, r := range []*VerifyRun{v.Verifying, v.Verified} {
			if r != nil {
				users, orgs = append(users, r.By), append(orgs, r.ByOrg)
			}
		}
	}
	if !readAll {
		// A party is shown each reader's organisation and role, the person
		// only by pseudonym.
		users = nil
	}
	v.People = a.people(ctx, users, orgs)
	var materials []string
	for _, e := range events {
		if m := materialOf(e.Resource); m != "" {
			materials = append(materials, m)
		}
	}
	if v.Materials, err = a.Vault.MaterialNames(ctx, a.actor(c), materials); err != nil {
		a.fail(c, err)
		return
	}
	if readAll {
		cp, ok := a.checkpoint(c)
		if !ok {
			return
		}
		v.Checkpoint = cp
	}
	p.Data = v
	a.render(c, http.StatusOK, "audit", p)
}

// checkpoint fetches the newest signed checkpoint as GET /audit/checkpoint
// does: permitted by the access service and audited.
func (a *app) checkpoint(c *gin.Context) (*checkpointView, bool) {
	ctx := c.Request.Context()
	pr := principalOf(c)
	if !a.Access.Can(pr, "audit", "verify") {
		return nil, true
	}
	if _, err := a.Audit.Append(ctx, audit.Event{Actor: pr.User.ID, ActorOrg: pr.User.OrgID, Action: "audit.checkpoint", Outcome: audit.Allowed,
		Resource: "audit/checkpoint", IP: c.ClientIP(), RequestID: a.RequestID(c)}); err != nil {
		a.fail(c, err)
		return nil, false
	}
	b, err := a.Audit.Checkpoint(ctx)
	if err != nil {
		a.fail(c, err)
		return nil, false
	}
	return parseCheckpoint(b), true
}

// auditVerify starts the background verification of the whole log (hash
// chain, Merkle tree, every stored and witnessed checkpoint) for an
// inspector, or, while one runs, leaves that one to run: see Verifier. The
// press is audited before anything else, allowed or refused, and a press
// that cannot be recorded starts nothing (fail closed). The answer is the
// audit page (303), which shows the run: a short log's result at once (the
// run is given a moment to end first), a long one's progress.
func (a *app) auditVerify(c *gin.Context) {
	ctx := c.Request.Context()
	pr := principalOf(c)
	outcome := audit.Allowed
	if !a.Access.Can(pr, "audit", "read_all") {
		outcome = audit.Denied
	}
	if _, err := a.Audit.Append(ctx, audit.Event{Actor: pr.User.ID, ActorOrg: pr.User.OrgID, Action: "audit.verify", Outcome: outcome,
		Resource: "audit", IP: c.ClientIP(), RequestID: a.RequestID(c)}); err != nil {
		a.fail(c, err)
		return
	}
	if outcome == audit.Denied {
		a.errorPage(c, http.StatusForbidden, "error.forbidden")
		return
	}
	if a.Verifier == nil {
		a.errorPage(c, http.StatusServiceUnavailable, "error.unavailable")
		return
	}
	run, started, err := a.Verifier.Start(pr.User.ID, pr.User.OrgID)
	if err != nil {
		a.errorPage(c, http.StatusServiceUnavailable, "error.unavailable")
		return
	}
	done := "verify_running"
	if started {
		done = "verify_started"
		a.Verifier.Wait(ctx, run.ID, verifyGrace)
	}
	c.Redirect(http.StatusSeeOther, "/audit?done="+done+"#verify")
}

// verifyGrace is how long the button waits for the run it started before
// showing the page: a short log's result comes back with it.
const verifyGrace = 2 * time.Second

// auditExport downloads the whole log, or the run of events from..to, as
// the JSON API's export (GET /audit/export): the NDJSON that vaultctl
// verifies offline against a checkpoint. The API decides who may, checks
// the range and records the download; this page only carries the range
// there and says in words why it was refused. The page's other filters do
// not apply: verification needs every event of the run, unbroken.
func (a *app) auditExport(c *gin.Context) {
	q := url.Values{}
	for _, k := range []string{"from", "to"} {
		if v := strings.TrimSpace(c.Query(k)); v != "" {
			q.Set(k, v)
		}
	}
	path := "/audit/export"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	ans, ok := a.streamAPI(c, path)
	if ok {
		return
	}
	switch {
	case ans.Status == http.StatusUnauthorized:
		a.apiFail(c, ans)
	case ans.Code == "invalid_field" || ans.Code == "invalid_tree_size":
		a.errorPageBack(c, ans.Status, a.locale(c).T("audit.export_range"), "/audit#export", "error.back")
	default:
		a.errorPageBack(c, ans.Status, a.locale(c).T(a.errorMessage(ans.Code, ans.Status)), "/audit", "error.back")
	}
}
