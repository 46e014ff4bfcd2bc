package web

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
	"github.com/crvault/crvault/vault/supervision"
)

func (a *app) caseRoutes(g *gin.RouterGroup) {
	g.GET("/cases", a.cases)
	g.GET("/cases/new", a.newCase)
	g.POST("/cases", a.csrf, a.createCase)
	g.GET("/cases/:case", a.showCase)
	g.POST("/cases/:case/submit", a.csrf, a.submitCase)
	g.POST("/cases/:case/materials", a.csrfStreamed, a.uploadMaterial)
	g.POST("/cases/:case/assignments", a.csrf, a.assign)
	g.POST("/cases/:case/assignments/:id/revoke", a.csrf, a.revoke)
	g.POST("/cases/:case/declarations", a.csrf, a.declare)
	g.POST("/cases/:case/transitions", a.csrf, a.transition)
	g.POST("/cases/:case/opinions", a.csrf, a.opinion)
	g.POST("/cases/:case/commitments", a.csrf, a.addCommitment)
	g.POST("/cases/:case/commitments/:id/urge", a.csrf, a.urgeCommitment)
	g.POST("/cases/:case/measure-reports", a.csrf, a.reportMeasure)
	g.GET("/materials/:id", a.viewMaterial)
	g.GET("/deadlines", a.deadlines)
}

type dashboardView struct {
	Cases  []vault.Case
	Intake []vault.Case
	// IntakeNext is the cursor of the submitted cases after Intake, which
	// the cases page lists on from (filtered to submitted).
	IntakeNext string
	Deadlines  []vault.Deadline
	// Proposals are the member units' proposals awaiting the Commission's
	// approval, which the office records (the first page; ProposalsNext
	// says there are more).
	Proposals     []proposalRow
	ProposalsNext string
	Next          string
	Status        string
	Statuses      []review.Status
}

// dashboard is the signed-in home page: what the person's role works on.
func (a *app) dashboard(c *gin.Context) {
	p := pageOf(c)
	ctx := c.Request.Context()
	v := dashboardView{}
	if p.Is("office_admin") {
		intake, err := a.Vault.ListCases(ctx, a.actor(c), string(review.Submitted), 50, "")
		if err != nil {
			a.fail(c, err)
			return
		}
		v.Intake, v.IntakeNext = intake.Items, intake.NextCursor
		// The soonest 20: the deadlines page lists the rest a page at a time.
		due, err := a.Vault.DeadlinesPage(ctx, a.actor(c), review.DueSoonWorkingDays, 20, "")
		if err != nil {
			a.fail(c, err)
			return
		}
		v.Deadlines = due.Items
		pending, err := a.Vault.Proposals(ctx, a.actor(c), vault.ProposalProposed, 20, "")
		if err != nil {
			a.fail(c, err)
			return
		}
		for _, pr := range pending.Items {
			v.Proposals = append(v.Proposals, proposalRow{Proposal: pr, MemberName: a.orgName(ctx, pr.MemberOrg), PartyName: a.orgName(ctx, pr.PartyOrg)})
		}
		v.ProposalsNext = pending.NextCursor
	}
	if p.Is("operator") || p.Is("provider") || p.Is("reviewer") || p.Is("member_unit") {
		page, err := a.Vault.ListCases(ctx, a.actor(c), "", 20, "")
		if err != nil {
			a.fail(c, err)
			return
		}
		v.Cases, v.Next = page.Items, page.NextCursor
	}
	p.Data = v
	a.render(c, http.StatusOK, "dashboard", p)
}

func (a *app) cases(c *gin.Context) {
	p := pageOf(c)
	status := c.Query("status")
	page, err := a.Vault.ListCases(c.Request.Context(), a.actor(c), status, 50, c.Query("cursor"))
	if err != nil {
		a.fail(c, err)
		return
	}
	p.Data = dashboardView{Cases: page.Items, Next: page.NextCursor, Status: status, Statuses: review.Statuses()}
	a.render(c, http.StatusOK, "cases", p)
}

type newCaseForm struct {
	Title, Product, Providers string
	// Type, and for a listing abroad its venue and user count (2021).
	Type, ListingVenue, Users string
}

func (a *app) newCase(c *gin.Context) {
	p := pageOf(c)
	p.Data = newCaseForm{}
	a.render(c, http.StatusOK, "case_new", p)
}

// createCase files a case. Providers are named as the operator knows them
// (organisation names or ids, one a line, or listed on a line) and looked
// up.
func (a *app) createCase(c *gin.Context) {
	p := pageOf(c)
	ctx := c.Request.Context()
	form := newCaseForm{Title: c.PostForm("title"), Product: c.PostForm("product"), Providers: c.PostForm("providers"),
		Type: c.PostForm("type"), ListingVenue: strings.TrimSpace(c.PostForm("listing_venue")), Users: strings.TrimSpace(c.PostForm("users_with_personal_info"))}
	again := func(status int, msg string) {
		p.Error, p.Data = msg, form
		a.render(c, status, "case_new", p)
	}
	ids := []string{}
	for _, line := range lines(form.Providers) {
		// A whole line is one organisation when one has that name ("Acme,
		// Inc."); otherwise it is a list.
		// An organisation that is not a provider is refused as one that
		// does not exist: the form is no way to learn what else is
		// registered.
		isProvider := func(o access.Org) bool { return o.Kind == access.OrgKind("provider") }
		org, err := a.Access.OrgByRef(ctx, line)
		if err == nil && isProvider(org) {
			ids = append(ids, org.ID)
			continue
		}
		if err == nil {
			err = access.ErrNotFound
		}
		if !errors.Is(err, access.ErrNotFound) {
			a.fail(c, err)
			return
		}
		for _, name := range listedNames(line) {
			org, err := a.Access.OrgByRef(ctx, name)
			if errors.Is(err, access.ErrNotFound) || err == nil && !isProvider(org) {
				again(http.StatusUnprocessableEntity, p.L.T("case.unknown_provider", "Name", name))
				return
			}
			if err != nil {
				a.fail(c, err)
				return
			}
			ids = append(ids, org.ID)
		}
	}
	nc := vault.NewCase{Title: form.Title, Product: form.Product, Providers: ids, Type: form.Type}
	// The listing fields are on the form whatever the type (it works
	// without scripts): they count only for a listing abroad.
	if form.Type == review.TypeListingAbroad {
		nc.ListingVenue = form.ListingVenue
		if form.Users != "" {
			n, err := strconv.ParseInt(strings.ReplaceAll(strings.ReplaceAll(form.Users, ",", ""), "，", ""), 10, 64)
			if err != nil || n < 0 {
				again(http.StatusUnprocessableEntity, p.L.T("case.bad_users"))
				return
			}
			nc.UsersWithPersonalInfo = &n
		}
	}
	cs, err := a.Vault.CreateCase(ctx, a.actor(c), nc)
	if err != nil {
		again(a.formError(c, err))
		return
	}
	c.Redirect(http.StatusSeeOther, "/cases/"+cs.ID+"?done=case_created")
}

type caseView struct {
	Case        vault.Case
	Clock       *review.Clock
	DaysLeft    int
	ClockError  string
	Materials   []vault.Material
	Notices     []vault.Material // the written notices among them (Art. 8, 14, ...)
	History     []review.Event
	Assignments []access.Assignment
	People      map[string]person // the case's organisations and assigned accounts, by id
	Assignable  []person          // suggestions for the assignment form (office admins)
	Actions     []string
	Commitments []supervision.Commitment
	// CommitmentsNext is the cursor of the commitments after those shown,
	// which the commitments page lists on from (filtered to the case).
	CommitmentsNext string
	// Declaration is where a reviewer or member unit stands on conflicts
	// of interest (Declared false: not yet).
	Declaration *access.Declaration
	// Kinds are the kinds of material the viewer may upload to the case
	// now (vault.UploadKinds); no upload form when none.
	Kinds       []string
	Roles       []string
	Outcomes    []string
	CommitKinds []string
	MaxUpload   int64
	// OpinionDue: the viewer's member unit is asked in the round open now
	// and has not answered it (review.OpinionDue).
	OpinionDue bool
	// OverdueUnits are the member units of the open round silent past
	// their deadline: those whose written answer the office may record.
	OverdueUnits []string
	// Conclusion is the event that concluded the case (its outcome and
	// conditions), nil while the review runs.
	Conclusion *review.Event
	// ClosedOn is the day the case was concluded or found not to need a
	// review: the clock stopped then.
	ClosedOn calendar.Date
	// NoContent: the viewer's role reads no material's content but
	// complaint evidence (an inspector; vault.Service.material), so the
	// page links no other document.
	NoContent bool
	// MaxSpecialDays bounds the special review's extension field, as the
	// service does (review.MaxSpecialExtension).
	MaxSpecialDays int
	// OpenItems are the requested supplementary items still outstanding,
	// which a supplementary upload names the one it answers of.
	OpenItems []review.RequestedItem
	// Measures are the risk prevention and mitigation measures the
	// review requires (record_measures, numbered across the history as
	// the service numbers them), each with the party's reports on it.
	Measures []measureView
	// PartyDraft: a draft seen by someone other than its party (the
	// office, which opened it after a proposal): no materials or
	// assignments to show until the party submits.
	PartyDraft bool
	// CaseOpen: the review runs, and so takes the party's reports.
	CaseOpen bool
	// Form is what was typed into a form of the page that was refused,
	// by form and field ("transition.reason"), shown again with the
	// reason above.
	Form map[string]string
}

// measureView is one measure the review requires, with the reports on it.
type measureView struct {
	No      int
	Text    string
	Reports []review.Event
}

// measuresOf lists the measures of a history, numbered from 1 in the
// order recorded (as review.Apply numbers them), with the reports on each.
func measuresOf(h []review.Event) []measureView {
	var out []measureView
	for _, e := range h {
		switch e.Action {
		case review.RecordMeasures:
			for _, m := range e.Measures {
				out = append(out, measureView{No: len(out) + 1, Text: m})
			}
		case review.ReportMeasures:
			if e.Measure >= 1 && e.Measure <= len(out) {
				out[e.Measure-1].Reports = append(out[e.Measure-1].Reports, e)
			}
		}
	}
	return out
}

// ProvisionalDates reports whether the clock shows a date computed for a
// year without an official holiday schedule, which the page then explains.
func (v caseView) ProvisionalDates() bool {
	if v.Clock == nil {
		return false
	}
	if v.Clock.DueOnProvisional {
		return true
	}
	for _, o := range v.Clock.Opinions {
		if o.DueOnProvisional {
			return true
		}
	}
	return false
}

// PausedSince is the first day of the stop of the clock under way (the
// day after the supplements were requested), zero when none is.
func (v caseView) PausedSince() calendar.Date {
	if v.Clock == nil || !v.Clock.Paused || len(v.Clock.Pauses) == 0 {
		return calendar.Date{}
	}
	return v.Clock.Pauses[len(v.Clock.Pauses)-1].From
}

// Opens says whether the page links m's content: not for a viewer who
// would only be refused (and audited as trying), but evidence, which an
// inspector reads once a complaint cites it.
func (v caseView) Opens(m vault.Material) bool { return !v.NoContent || m.Kind == "evidence" }

// showCase shows one case. Which service calls it makes depends on the
// role (an office admin is shown assignments and actions, a party the
// upload form); each call decides itself what this user may see.
func (a *app) showCase(c *gin.Context) {
	a.renderCase(c, c.Param("case"), http.StatusOK, nil)
}

// caseFormRefused answers a form of the case page that the service
// refused for what was typed in it: the case page again, the reason above
// and the form filled in as it was sent (form names the values, by form
// and field). A refusal that typing cannot mend (no such case, no right,
// no session) is the error page, which links back to the case.
func (a *app) caseFormRefused(c *gin.Context, err error, form map[string]string) {
	status, _, _ := a.Classify(err)
	switch status {
	case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		// Translated by renderCase, in the case's edition (its articles).
		pageOf(c).refused = err
		a.renderCase(c, c.Param("case"), status, form)
	default:
		a.fail(c, err)
	}
}

// keptForm is the named fields of the posted form, kept under prefix for
// the page's form of that name.
func keptForm(c *gin.Context, prefix string, fields ...string) map[string]string {
	out := make(map[string]string, len(fields))
	for _, f := range fields {
		out[prefix+"."+f] = c.PostForm(f)
	}
	return out
}

// caseCommitments is how many commitments the case page lists; the
// commitments page, filtered to the case, lists the rest.
const caseCommitments = 50

// renderCase shows the case page with status; form, when not nil, fills
// a refused form back in.
func (a *app) renderCase(c *gin.Context, id string, status int, form map[string]string) {
	p := pageOf(c)
	ctx := c.Request.Context()
	act := a.actor(c)
	cs, err := a.Vault.GetCase(ctx, act, id)
	if err != nil {
		a.fail(c, err)
		return
	}
	// The page cites the articles of the case's own edition.
	p.L = p.L.ForEdition(cs.Edition)
	if p.refused != nil {
		p.Error = a.caseRefusal(c, p.refused)
	}
	v := caseView{Case: cs, Roles: []string{"reviewer", "member_unit"}, CommitKinds: supervision.CommitmentKinds, Outcomes: review.Outcomes(),
		MaxUpload: a.Vault.MaxMaterialSize(), MaxSpecialDays: review.MaxSpecialExtension, NoContent: p.Is("inspector")}
	if clk, err := a.Vault.Clock(ctx, act, id); err == nil {
		if clk.Phase != review.PhaseNone {
			v.Clock = &clk
			v.DaysLeft = clk.AllowedWorkingDays - clk.UsedWorkingDays
		}
	} else if status, _, _ := a.Classify(err); status == http.StatusServiceUnavailable || status >= 500 {
		a.fail(c, err)
		return
	} else {
		v.ClockError = p.L.T("case.clock_unknown")
	}
	// A draft the office opened after a proposal is the office's to see,
	// but its materials and assignments are the party's until it submits:
	// the page shows the case and says so, and asks for none of them.
	v.PartyDraft = cs.Status == vault.StatusDraft && !p.Is("operator") && !p.Is("provider")
	if v.PartyDraft {
		// nothing to list yet
	} else if v.Materials, err = a.Vault.ListMaterials(ctx, act, id); err != nil {
		a.fail(c, err)
		return
	}
	for _, m := range v.Materials {
		if m.Kind == "notice" {
			v.Notices = append(v.Notices, m)
		}
	}
	if v.History, err = a.Vault.History(ctx, act, id); err != nil {
		a.fail(c, err)
		return
	}
	for i, e := range v.History {
		switch e.Action {
		case review.Conclude:
			v.Conclusion, v.ClosedOn = &v.History[i], e.On
		case review.NotRequiredAction:
			v.ClosedOn = e.On
		}
	}
	v.Measures = measuresOf(v.History)
	switch review.Status(cs.Status) {
	case review.Draft, review.Concluded, review.NotRequired:
	default:
		v.CaseOpen = true
	}
	if v.Clock != nil && cs.Status == string(review.AwaitingSupplement) {
		for _, it := range v.Clock.SupplementItems {
			if !it.Received {
				v.OpenItems = append(v.OpenItems, it)
			}
		}
	}
	if p.Is("office_admin") && !v.PartyDraft {
		if v.Assignments, err = a.Vault.Assignments(ctx, act, id); err != nil {
			a.fail(c, err)
			return
		}
		if v.Actions, err = a.Vault.Offered(ctx, act, id); err != nil {
			a.fail(c, err)
			return
		}
		v.Assignable = a.assignable(ctx)
	}
	if p.Is("reviewer") || p.Is("member_unit") {
		d, found, err := a.Vault.OwnDeclaration(ctx, act, id)
		if err != nil {
			a.fail(c, err)
			return
		}
		if found {
			v.Declaration = &d
		}
		v.OpinionDue = p.Is("member_unit") && review.OpinionDue(review.Status(cs.Status), act.P.User.OrgID, v.History)
	}
	v.Kinds = vault.UploadKinds(act.P, cs)
	if v.Declaration == nil && (p.Is("reviewer") || p.Is("member_unit")) && !p.Is("office_admin") {
		// Their kinds (a recommendation, an opinion) need a declared
		// assignment: the declaration form comes first.
		v.Kinds = nil
	}
	if a.Supervision != nil && (p.Is("provider") || p.Is("operator")) {
		cm, err := a.Supervision.ListCommitments(ctx, act, supervision.CommitmentFilter{CaseID: id, Limit: caseCommitments})
		if err != nil {
			a.fail(c, err)
			return
		}
		v.Commitments, v.CommitmentsNext = cm.Items, cm.NextCursor
	}
	// Names for what the page shows by id: the operator and providers
	// (which every viewer of the case is shown), the member units asked
	// (on clocks shown only to the review's own side) and the assigned
	// accounts (office admins).
	orgs := append([]string{v.Case.OperatorOrg}, v.Case.Providers...)
	if v.Clock != nil {
		for _, o := range v.Clock.Opinions {
			orgs = append(orgs, o.Org)
			if o.Overdue {
				v.OverdueUnits = append(v.OverdueUnits, o.Org)
			}
		}
	}
	users := make([]string, 0, len(v.Assignments))
	for _, as := range v.Assignments {
		users = append(users, as.UserID)
	}
	v.People = a.people(ctx, users, orgs)
	v.Form = form
	p.Data = v
	a.render(c, status, "case", p)
}

// done redirects back to the case after a change, with a notice.
func done(c *gin.Context, caseID, flash string) {
	c.Redirect(http.StatusSeeOther, "/cases/"+caseID+"?done="+flash)
}

func (a *app) submitCase(c *gin.Context) {
	if _, err := a.Vault.Submit(c.Request.Context(), a.actor(c), c.Param("case")); err != nil {
		// Say which materials are missing, in the upload form's words,
		// under the edition the submission follows.
		var ve *vault.Error
		if errors.As(err, &ve) && ve.Code == review.CodeMaterialsIncomplete && len(ve.Missing) > 0 {
			status, _, _ := a.Classify(err)
			L := a.locale(c)
			a.errorPageText(c, status, L.T("error.materials_missing", "Kinds", L.MaterialsMissing(ve.Missing)))
			return
		}
		a.fail(c, err)
		return
	}
	done(c, c.Param("case"), "submitted")
}

// maxUploadFiles is how many files one upload form may carry.
const maxUploadFiles = 50

// uploadResult is what an upload form stored and what it did not, by
// file name, with the reason.
type uploadResult struct {
	CaseID string
	Stored []string
	Failed []failedUpload
	// Broken: the form broke off (too large, or the connection), so files
	// after the last one named were not read.
	Broken bool
}

type failedUpload struct {
	Name, Reason string
}

// uploadMaterial is the upload without JavaScript: a multipart form whose
// parts come in page order (csrf, kind, the requested item a supplementary
// upload answers when supplements are outstanding, then each chosen file),
// each file streamed into the vault as the API's upload is, all under the
// chosen kind (and item). Scripts send files to the JSON API instead, with a progress bar.
// One file stored goes back to the case; several, to the case with their
// count; if any failed, a page names the files stored and those that were
// not, with why, since the person must send those again.
func (a *app) uploadMaterial(c *gin.Context) {
	p := pageOf(c)
	caseID := c.Param("case")
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxUploadFiles*(a.Vault.MaxMaterialSize()+1<<16)+1<<20)
	mr, err := multipartReader(c)
	if err != nil {
		a.errorPage(c, http.StatusBadRequest, "error.bad_form")
		return
	}
	if !a.multipartCSRF(c, mr) {
		return
	}
	kind, ok := smallField(mr, "kind")
	if !ok {
		a.errorPage(c, http.StatusBadRequest, "error.bad_form")
		return
	}
	res := uploadResult{CaseID: caseID}
	status := http.StatusOK
	item := 0
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res.Broken, status = true, http.StatusBadRequest
			break
		}
		if part.FormName() == "item" && part.FileName() == "" && len(res.Stored)+len(res.Failed) == 0 {
			v, ok := partValue(part)
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if !ok || v != "" && (err != nil || n < 1) {
				a.errorPage(c, http.StatusBadRequest, "error.bad_form")
				return
			}
			if kind == "supplementary" {
				item = n // the service ignores it for any other kind
			}
			continue
		}
		if part.FormName() != "file" || part.FileName() == "" {
			continue // an empty file input sends an empty part
		}
		if len(res.Stored)+len(res.Failed) == maxUploadFiles {
			res.Failed = append(res.Failed, failedUpload{part.FileName(), p.L.T("upload.too_many", "Max", maxUploadFiles)})
			status = http.StatusRequestEntityTooLarge
			continue
		}
		_, err = a.Vault.Upload(c.Request.Context(), a.actor(c), caseID, vault.Upload{Kind: kind, Filename: part.FileName(),
			ContentType: part.Header.Get("Content-Type"), Body: part, Size: -1, Item: item})
		if err != nil {
			st, msg := a.formError(c, err)
			if st == http.StatusUnauthorized || st == http.StatusNotFound {
				a.fail(c, err) // no session, or no such case: nothing to list
				return
			}
			if st >= 500 {
				a.log.ErrorContext(c.Request.Context(), "web upload failed", "request_id", a.RequestID(c), "err", err)
			}
			res.Failed = append(res.Failed, failedUpload{part.FileName(), msg})
			if status == http.StatusOK {
				status = st
			}
			continue
		}
		res.Stored = append(res.Stored, part.FileName())
	}
	switch {
	case len(res.Stored) == 0 && len(res.Failed) == 0 && !res.Broken:
		a.errorPage(c, http.StatusBadRequest, "error.no_file")
	case len(res.Failed) == 0 && !res.Broken && len(res.Stored) == 1:
		done(c, caseID, "uploaded")
	case len(res.Failed) == 0 && !res.Broken:
		c.Redirect(http.StatusSeeOther, "/cases/"+caseID+"?done=uploaded_n&count="+strconv.Itoa(len(res.Stored)))
	default:
		p.Data = res
		a.render(c, status, "upload_result", p)
	}
}

func multipartReader(c *gin.Context) (*multipart.Reader, error) {
	mt, params, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, errors.New("not multipart")
	}
	return multipart.NewReader(c.Request.Body, params["boundary"]), nil
}

// smallField reads the next part, which must be the named short field.
func smallField(mr *multipart.Reader, name string) (string, bool) {
	part, err := mr.NextPart()
	if err != nil || part.FormName() != name || part.FileName() != "" {
		return "", false
	}
	return partValue(part)
}

// partValue reads a short field's value (16 KiB at most).
func partValue(part *multipart.Part) (string, bool) {
	b, err := io.ReadAll(io.LimitReader(part, 16<<10+1))
	if err != nil || len(b) > 16<<10 {
		return "", false
	}
	return string(b), true
}

// multipartCSRF checks the token of a streamed form: its first part (or
// the header a script sent).
func (a *app) multipartCSRF(c *gin.Context, mr *multipart.Reader) bool {
	token, ok := smallField(mr, csrfField)
	if !ok || !tokenEqual(token, pageOf(c).CSRF) {
		a.csrfRefused(c)
		return false
	}
	return true
}

func (a *app) assign(c *gin.Context) {
	in := vault.NewAssignment{User: a.accountID(c.Request.Context(), c.PostForm("user")), Role: c.PostForm("role"), Purpose: c.PostForm("purpose")}
	form := keptForm(c, "assign", "user", "role", "purpose", "expires_on")
	if s := c.PostForm("expires_on"); s != "" {
		d, err := time.ParseInLocation("2006-01-02", s, shanghai)
		if err != nil {
			a.caseFormRefused(c, &vault.Error{Kind: vault.ErrInvalid, Code: "invalid_field", Detail: "not a date", Field: "expires_on"}, form)
			return
		}
		t := d.Add(24*time.Hour - time.Second)
		in.ExpiresAt = &t
	}
	if _, err := a.Vault.Assign(c.Request.Context(), a.actor(c), c.Param("case"), in); err != nil {
		a.caseFormRefused(c, err, form)
		return
	}
	done(c, c.Param("case"), "assigned")
}

// revoke ends an assignment, after a page that names whom and says what
// follows: access to the case's materials ends at once.
func (a *app) revoke(c *gin.Context) {
	if c.PostForm("confirm") != "1" {
		a.confirmRevoke(c)
		return
	}
	if err := a.Vault.Revoke(c.Request.Context(), a.actor(c), c.Param("case"), c.Param("id")); err != nil {
		a.fail(c, err)
		return
	}
	done(c, c.Param("case"), "revoked")
}

func (a *app) confirmRevoke(c *gin.Context) {
	L := pageOf(c).L
	ctx := c.Request.Context()
	caseID, id := c.Param("case"), c.Param("id")
	list, err := a.Vault.Assignments(ctx, a.actor(c), caseID)
	if err != nil {
		a.fail(c, err)
		return
	}
	i := slices.IndexFunc(list, func(as access.Assignment) bool { return as.ID == id })
	if i < 0 {
		a.errorPage(c, http.StatusNotFound, "error.not_found")
		return
	}
	as := list[i]
	who := as.UserID
	if n := a.people(ctx, []string{as.UserID}, nil)[as.UserID].Name; n != "" {
		who = n
	}
	a.confirmFirst(c, confirmView{Title: L.T("confirm.revoke_title"),
		Summary:     L.T("confirm.revoke_summary", "User", who, "Role", L.Enum("role", as.Role), "Purpose", as.Purpose),
		Consequence: L.T("confirm.revoke_consequence"), Button: L.T("assign.revoke"),
		Action: "/cases/" + caseID + "/assignments/" + id + "/revoke", Back: "/cases/" + caseID})
}

func (a *app) declare(c *gin.Context) {
	var conflict *bool
	switch c.PostForm("conflict") {
	case "true":
		t := true
		conflict = &t
	case "false":
		f := false
		conflict = &f
	}
	// An opinion refused for want of a declaration rides along in the
	// declaration form, so that it is there to send once declared.
	opinion := map[string]string{"opinion.agree": c.PostForm("opinion_agree"), "opinion.comment": c.PostForm("opinion_comment")}
	if _, err := a.Vault.Declare(c.Request.Context(), a.actor(c), c.Param("case"),
		vault.NewDeclaration{Conflict: conflict, Statement: c.PostForm("statement")}); err != nil {
		form := keptForm(c, "declaration", "conflict", "statement")
		maps.Copy(form, opinion)
		a.caseFormRefused(c, err, form)
		return
	}
	if opinion["opinion.agree"] != "" || opinion["opinion.comment"] != "" {
		// The case page again, the opinion filled in: never through a
		// redirect, which would put what was typed in a URL.
		pageOf(c).Flash = "flash.declared"
		a.renderCase(c, c.Param("case"), http.StatusOK, opinion)
		return
	}
	done(c, c.Param("case"), "declared")
}

func (a *app) transition(c *gin.Context) {
	in := vault.TransitionRequest{Action: c.PostForm("action"), Reason: c.PostForm("reason")}
	fields := []string{"action", "reason", "items", "outcome", "conditions", "reference", "measures", "days",
		"org", "agree", "opinion_reference"}
	for _, k := range factorKeys() {
		fields = append(fields, "factor_"+k)
	}
	form := keptForm(c, "transition", fields...)
	// The form has a field for everything any offered step takes; send the
	// service only those of the chosen step, which refuses the others.
	switch review.Action(in.Action) {
	case review.RequestSupplement, review.MarkIncomplete:
		in.Items = lines(c.PostForm("items"))
	case review.Conclude:
		in.Outcome, in.Conditions = c.PostForm("outcome"), lines(c.PostForm("conditions"))
		// A finding for each factor filled in (the form shows those of
		// the case's edition); the service checks them against it.
		for _, k := range factorKeys() {
			if f := strings.TrimSpace(c.PostForm("factor_" + k)); f != "" {
				in.Factors = append(in.Factors, review.FactorFinding{Factor: k, Finding: f})
			}
		}
	case review.RecordApproval:
		in.Reference = strings.TrimSpace(c.PostForm("reference"))
	case review.RecordMeasures:
		in.Measures = lines(c.PostForm("measures"))
	case review.RecordOpinion:
		in.Org, in.Agree, in.Reference = recordOpinionFields(c.PostForm)
	}
	if s := c.PostForm("days"); s != "" && review.Action(in.Action) == review.ExtendSpecial {
		n, err := strconv.Atoi(s)
		if err != nil {
			a.caseFormRefused(c, &vault.Error{Kind: vault.ErrInvalid, Code: "invalid_field", Detail: "not a number", Field: "days"}, form)
			return
		}
		in.Days = n
	}
	if _, err := a.Vault.Transition(c.Request.Context(), a.actor(c), c.Param("case"), in); err != nil {
		a.caseFormRefused(c, err, form)
		return
	}
	done(c, c.Param("case"), "moved")
}

// factorKeys are the factors of every edition, each once, in the
// articles' order: the fields the conclusion form may carry.
func factorKeys() []string {
	var out []string
	for _, ed := range review.Editions() {
		for _, f := range ed.Factors {
			if !slices.Contains(out, f.Key) {
				out = append(out, f.Key)
			}
		}
	}
	return out
}

// recordOpinionFields reads record_opinion's fields from the transition
// form: the unit, its answer (nil when not chosen, which the service
// refuses) and the letter's number, which has a field of its own beside the
// Commission's approval's.
func recordOpinionFields(form func(string) string) (org string, agree *bool, reference string) {
	if v := form("agree"); v == "true" || v == "false" {
		b := v == "true"
		agree = &b
	}
	return form("org"), agree, strings.TrimSpace(form("opinion_reference"))
}

// lines splits a textarea into its non-empty lines (nil when none).
// listedNames splits a line listing organisations as people write a list:
// with commas or semicolons of either width, or the enumeration comma
// (华为、中兴).
func listedNames(line string) []string { return splitTrimmed(line, ",，、;；") }

func lines(s string) []string { return splitTrimmed(s, "\n") }

// splitTrimmed splits s at any of seps and keeps the parts that are not
// blank, trimmed.
func splitTrimmed(s, seps string) []string {
	var out []string
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(seps, r) }) {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func (a *app) opinion(c *gin.Context) {
	var agree *bool
	if v := c.PostForm("agree"); v == "true" || v == "false" {
		b := v == "true"
		agree = &b
	}
	if _, err := a.Vault.Opinion(c.Request.Context(), a.actor(c), c.Param("case"), vault.OpinionRequest{Agree: agree, Comment: c.PostForm("comment")}); err != nil {
		form := keptForm(c, "opinion", "agree", "comment")
		if ve := (*vault.Error)(nil); errors.As(err, &ve) && ve.Code == "declaration_required" {
			// Refused until the unit declares, which the page it is sent
			// back to lets it do, its opinion kept (caseRefusal says so).
			status, _, _ := a.Classify(err)
			pageOf(c).refused = err
			a.renderCase(c, c.Param("case"), status, form)
			return
		}
		a.caseFormRefused(c, err, form)
		return
	}
	done(c, c.Param("case"), "opinion")
}

func (a *app) addCommitment(c *gin.Context) {
	if a.Supervision == nil {
		a.errorPage(c, http.StatusNotFound, "error.not_found")
		return
	}
	_, err := a.Supervision.AddCommitment(c.Request.Context(), a.actor(c), c.Param("case"),
		supervision.NewCommitment{Kind: c.PostForm("kind"), Text: c.PostForm("text")})
	if err != nil {
		a.fail(c, err)
		return
	}
	done(c, c.Param("case"), "committed")
}

// reportMeasure records the party's report on one measure the review
// requires; the service refuses anyone but the case's operator, and a
// measure that was not recorded.
func (a *app) reportMeasure(c *gin.Context) {
	form := keptForm(c, "measures", "measure", "report")
	n, err := strconv.Atoi(strings.TrimSpace(c.PostForm("measure")))
	if err != nil {
		a.caseFormRefused(c, &vault.Error{Kind: vault.ErrInvalid, Code: "invalid_field", Detail: "not a number", Field: "measure"}, form)
		return
	}
	if _, err := a.Vault.ReportMeasures(c.Request.Context(), a.actor(c), c.Param("case"), vault.MeasureReport{Measure: n, Report: c.PostForm("report")}); err != nil {
		a.caseFormRefused(c, err, form)
		return
	}
	done(c, c.Param("case"), "measures_reported")
}

// urgeCommitment records the operator's urging of a provider to keep a
// commitment; the service refuses anyone but the case's operator. A note
// refused (none, too long) comes back on the case page, kept.
func (a *app) urgeCommitment(c *gin.Context) {
	if a.Supervision == nil {
		a.errorPage(c, http.StatusNotFound, "error.not_found")
		return
	}
	caseID := c.Param("case")
	_, err := a.Supervision.UrgeCommitment(c.Request.Context(), a.actor(c), caseID, c.Param("id"), supervision.UrgeRequest{Note: c.PostForm("note")})
	if err != nil {
		form := keptForm(c, "urge", "note")
		form["urge.id"] = c.Param("id")
		a.caseFormRefused(c, err, form)
		return
	}
	if c.PostForm("back") == "commitments" {
		// Urged from the commitments page: back to it, on the case.
		c.Redirect(http.StatusSeeOther, "/commitments?case="+caseID+"&done=urged")
		return
	}
	done(c, caseID, "urged")
}

// inlineTypes are shown in the browser; everything else is downloaded.
var inlineTypes = map[string]bool{"application/pdf": true, "image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true}

// viewMaterial sends a document through the vault's one audited road.
// PDFs and images are shown inline, confined by a CSP sandbox; anything
// else is an attachment. ?download=1 downloads any type.
func (a *app) viewMaterial(c *gin.Context) {
	ct, err := a.Vault.OpenContent(c.Request.Context(), a.actor(c), c.Param("id"), nil)
	if err != nil {
		a.materialRefused(c, err)
		return
	}
	defer ct.Close()
	m := ct.Material
	mt, _, _ := mime.ParseMediaType(m.ContentType)
	inline := inlineTypes[mt] && c.Query("download") == ""
	serveContent(c, m.ContentType, m.Filename, m.SHA256, ct.Length, inline, ct.Body, a, func(sent int64) {
		ct.CutShort(c.Request.Context(), sent) // the audit log's error event, beside the read's
	})
}

// materialRefused answers a refused read. A reviewer or member unit who
// has not declared yet is sent to the declaration form on the case page,
// the one next step, when the material's case may be named to them (its
// metadata is theirs to see).
func (a *app) materialRefused(c *gin.Context, err error) {
	var ve *vault.Error
	if !errors.As(err, &ve) || ve.Code != "declaration_required" {
		a.fail(c, err)
		return
	}
	m, merr := a.Vault.GetMaterial(c.Request.Context(), a.actor(c), c.Param("id"))
	if merr != nil {
		a.fail(c, err)
		return
	}
	status, msg := a.formError(c, err)
	a.errorPageBack(c, status, msg, "/cases/"+m.CaseID+"#decl-h", "error.declare_first")
}

// serveContent sends a document; cutShort, if not nil, hears how many bytes
// went out when the transfer breaks off.
func serveContent(c *gin.Context, contentType, filename, sha string, size int64, inline bool, body io.Reader, a *app, cutShort func(sent int64)) {
	h := c.Writer.Header()
	disp := "attachment"
	if inline {
		disp = "inline"
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Disposition", contentDisposition(disp, filename))
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("X-Content-SHA256", sha)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", contentCSP)
	h.Del("X-Frame-Options")
	c.Status(http.StatusOK)
	if n, err := io.Copy(c.Writer, body); err != nil {
		a.log.WarnContext(c.Request.Context(), "content transfer cut short", "request_id", a.RequestID(c), "sent", n, "err", err)
		if cutShort != nil {
			cutShort(n)
		}
		panic(http.ErrAbortHandler)
	}
}

// contentDisposition builds an RFC 6266 header with an ASCII fallback and
// the exact UTF-8 name.
func contentDisposition(disp, name string) string {
	var ascii strings.Builder
	for _, r := range name {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' {
			ascii.WriteByte('_')
		} else {
			ascii.WriteRune(r)
		}
	}
	return fmt.Sprintf(`%s; filename="%s"; filename*=UTF-8''%s`, disp, ascii.String(), pathEscape(name))
}

func pathEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("-._~", ch) >= 0 {
			b.WriteByte(ch)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[ch>>4])
			b.WriteByte(hex[ch&15])
		}
	}
	return b.String()
}

func (a *app) deadlines(c *gin.Context) {
	p := pageOf(c)
	within := review.DueSoonWorkingDays
	if s := c.Query("within"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > vault.MaxWithin {
			a.errorPage(c, http.StatusUnprocessableEntity, "error.invalid")
			return
		}
		within = n
	}
	// A page at a time: each title costs a case key to open.
	ds, err := a.Vault.DeadlinesPage(c.Request.Context(), a.actor(c), within, 50, c.Query("cursor"))
	if err != nil {
		a.fail(c, err)
		return
	}
	p.Data = map[string]any{"Deadlines": ds.Items, "Within": within, "Next": ds.NextCursor}
	a.render(c, http.StatusOK, "deadlines", p)
}
