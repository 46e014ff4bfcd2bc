package web

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault/supervision"
)

func (a *app) supervisionRoutes(g *gin.RouterGroup) {
	if a.Supervision == nil {
		return
	}
	g.GET("/complaints", a.complaints)
	g.POST("/complaints", a.csrf, a.fileComplaint)
	g.GET("/complaints/:id", a.complaint)
	g.POST("/complaints/:id/status", a.csrf, a.investigateComplaint)
	g.POST("/complaints/:id/resolution", a.csrf, a.resolveComplaint)
	g.GET("/commitments", a.commitments)
	g.GET("/reports", a.reports)
	g.GET("/reports/:id", a.report)
	g.POST("/reports/:id/messages", a.csrf, a.inspectorMessage)
	g.POST("/reports/:id/status", a.csrf, a.reportStatus)
	g.GET("/reports/:id/attachments/:aid", a.reportAttachment)
	g.GET("/workload", a.workload)
}

// queueView is one of the inspectors' queues as the workload page shows
// it: every status in its order, with how many are in it.
type queueView struct {
	Title, List, Enum string // the queue's heading, its list page, its statuses' message group
	Rows              []queueRow
	Queue             supervision.Queue
	// Open is how many are open; OldestDays how many whole days the
	// oldest open one has waited.
	Open, OldestDays int
}

type queueRow struct {
	Status string
	Count  int64
}

// workload is the inspectors' queue (supervision.Workload, which refuses
// anyone else and audits the look): complaints and reports by status, and
// how long the oldest open one has waited.
func (a *app) workload(c *gin.Context) {
	p := pageOf(c)
	wl, err := a.Supervision.Workload(c.Request.Context(), a.actor(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	queue := func(title, list, enum string, q supervision.Queue, statuses []string) queueView {
		v := queueView{Title: title, List: list, Enum: enum, Queue: q, Open: int(q.Open), OldestDays: int(q.OldestOpenAgeSec / 86400)}
		for _, s := range statuses {
			v.Rows = append(v.Rows, queueRow{s, q.ByStatus[s]})
		}
		// Complaints whose stored row does not authenticate are counted
		// apart (supervision's complainttags.go): shown only when there
		// are some, listed unfiltered (no status selects them).
		if n := q.ByStatus["damaged"]; n > 0 {
			v.Rows = append(v.Rows, queueRow{"damaged", n})
		}
		return v
	}
	p.Data = []queueView{
		queue("workload.complaints", "/complaints", "cstatus", wl.Complaints, complaintStatuses),
		queue("workload.reports", "/reports", "rstatus", wl.Reports, reportStatuses),
	}
	a.render(c, http.StatusOK, "workload", p)
}

func (a *app) complaints(c *gin.Context) {
	p := pageOf(c)
	ctx := c.Request.Context()
	list, err := a.Supervision.ListComplaints(ctx, a.actor(c), supervision.ComplaintFilter{Status: c.Query("status"),
		CaseID: c.Query("case"), Limit: 50, Cursor: c.Query("cursor")})
	if err != nil {
		a.fail(c, err)
		return
	}
	// The filters go on to the next page with its cursor.
	v := complaintsView{Items: list.Items, NextCursor: list.NextCursor, Case: c.Query("case"), Status: c.Query("status"), Statuses: complaintStatuses}
	ids := make([]string, 0, len(list.Items))
	for _, cp := range list.Items {
		ids = append(ids, cp.CaseID)
	}
	// Titles only name the cases: a page that cannot have them shows ids.
	if v.Titles, err = a.Vault.CaseTitles(ctx, a.actor(c), ids); err != nil {
		a.log.WarnContext(ctx, "complaints page without case titles", "err", err)
	}
	p.Data = v
	a.render(c, http.StatusOK, "complaints", p)
}

// complaintsView is a page of complaints with the titles of the cases the
// viewer may list.
type complaintsView struct {
	Items        []supervision.Complaint
	NextCursor   string
	Titles       map[string]string
	Case, Status string // the filters the page was asked for
	Statuses     []string
}

var complaintStatuses = []string{supervision.StatusOpen, supervision.StatusInvestigating, supervision.StatusUpheld, supervision.StatusDismissed}

func (a *app) fileComplaint(c *gin.Context) {
	in := supervision.NewComplaint{Case: c.PostForm("case"), Subject: strings.TrimSpace(c.PostForm("subject")), Kind: c.PostForm("kind"),
		Description: c.PostForm("description")}
	cp, err := a.Supervision.FileComplaint(c.Request.Context(), a.actor(c), in)
	if err != nil {
		// Filed from the case page: that page again, the text kept.
		if status, msg := a.formError(c, err); isID(in.Case) && (status == http.StatusUnprocessableEntity || status == http.StatusBadRequest || status == http.StatusConflict) {
			pageOf(c).Error = msg
			a.renderCase(c, in.Case, status, keptForm(c, "complaint", "kind", "subject", "description"))
			return
		}
		a.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/complaints/"+cp.ID+"?done=complaint_filed")
}

type complaintView struct {
	Complaint supervision.Complaint
	Evidence  *supervision.Evidence
	// People names the subject for the inspector; the complainant knows
	// the subject by the pseudonym it was shown.
	People map[string]person
	// Form is a refused form as it was sent ("resolution.note",
	// "investigate.note").
	Form map[string]string
	// CaseTitle names the complaint's case when the viewer may list it
	// (vault.CaseTitles), and the page then links to it; else "".
	CaseTitle string
}

func (a *app) complaint(c *gin.Context) {
	a.renderComplaint(c, http.StatusOK, nil)
}

// renderComplaint shows the complaint page with status; form, when not
// nil, fills a refused resolution back in.
func (a *app) renderComplaint(c *gin.Context, status int, form map[string]string) {
	p := pageOf(c)
	ctx := c.Request.Context()
	cp, err := a.Supervision.GetComplaint(ctx, a.actor(c), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	v := complaintView{Complaint: cp}
	// A damaged complaint has no evidence bundle (supervision refuses
	// every action on it): its page shows it damaged, and nothing more.
	if p.Is("inspector") && !cp.Damaged {
		ev, err := a.Supervision.ComplaintEvidence(ctx, a.actor(c), cp.ID)
		if err != nil {
			a.fail(c, err)
			return
		}
		v.Evidence = &ev
		v.People = a.people(ctx, []string{cp.Subject}, nil)
	}
	// The title only names the case: a page that cannot have it shows the id.
	if titles, err := a.Vault.CaseTitles(ctx, a.actor(c), []string{cp.CaseID}); err != nil {
		a.log.WarnContext(ctx, "complaint page without its case's title", "err", err)
	} else {
		v.CaseTitle = titles[cp.CaseID]
	}
	v.Form = form
	p.Data = v
	a.render(c, status, "complaint", p)
}

func (a *app) resolveComplaint(c *gin.Context) {
	in := supervision.Resolution{Outcome: c.PostForm("outcome"), Note: c.PostForm("note")}
	if c.PostForm("recuse") == "1" {
		// Recusing ends the subject's part in the case: asked first.
		L := pageOf(c).L
		v := confirmView{Title: L.T("confirm.recuse_title"), Summary: L.T("confirm.recuse_summary", "Outcome", L.Enum("cstatus", in.Outcome)),
			Consequence: L.T("confirm.recuse_consequence"), Button: L.T("complaints.resolve"),
			Action: "/complaints/" + c.Param("id") + "/resolution", Back: "/complaints/" + c.Param("id")}
		if !a.confirmFirst(c, v, "outcome", "recuse", "note") {
			return
		}
		in.Actions = []string{supervision.ActionRecuseSubject}
	}
	if _, err := a.Supervision.Resolve(c.Request.Context(), a.actor(c), c.Param("id"), in); err != nil {
		a.refusedComplaintForm(c, err, keptForm(c, "resolution", "outcome", "recuse", "note"))
		return
	}
	c.Redirect(http.StatusSeeOther, "/complaints/"+c.Param("id")+"?done=resolved")
}

// investigateComplaint puts an open complaint under investigation, the step
// before it can be resolved.
func (a *app) investigateComplaint(c *gin.Context) {
	in := supervision.StatusRequest{Status: supervision.StatusInvestigating, Note: c.PostForm("note")}
	if _, err := a.Supervision.SetComplaintStatus(c.Request.Context(), a.actor(c), c.Param("id"), in); err != nil {
		a.refusedComplaintForm(c, err, keptForm(c, "investigate", "note"))
		return
	}
	c.Redirect(http.StatusSeeOther, "/complaints/"+c.Param("id")+"?done=investigating")
}

// refusedComplaintForm shows the complaint page again with what was typed
// when the service refused a form on it, and the error page otherwise. A
// refused step names the complaint's status, not a case's.
func (a *app) refusedComplaintForm(c *gin.Context, err error, form map[string]string) {
	status, msg := a.formError(c, err)
	if status != http.StatusUnprocessableEntity && status != http.StatusBadRequest && status != http.StatusConflict {
		a.fail(c, err)
		return
	}
	if _, code, _ := a.Classify(err); code == "illegal_transition" {
		msg = a.locale(c).T("error.complaint_illegal_transition")
	}
	pageOf(c).Error = msg
	a.renderComplaint(c, status, form)
}

// commitments lists commitments, filtered by case and provider. The
// provider may be typed as its name, as people know it; a name that names
// no provider is passed on as typed and finds nothing, as an unknown id
// does, so the filter tells no one what else is registered.
func (a *app) commitments(c *gin.Context) {
	p := pageOf(c)
	ctx := c.Request.Context()
	caseID, provider := strings.TrimSpace(c.Query("case")), strings.TrimSpace(c.Query("provider"))
	f := supervision.CommitmentFilter{Provider: provider, CaseID: caseID, Limit: 50, Cursor: c.Query("cursor")}
	if provider != "" && !p.Is("provider") {
		if org, err := a.Access.OrgByRef(ctx, provider); err == nil && org.Kind == access.OrgProvider {
			f.Provider = org.ID
		}
	}
	list, err := a.Supervision.ListCommitments(ctx, a.actor(c), f)
	if err != nil {
		a.fail(c, err)
		return
	}
	orgs := make([]string, 0, len(list.Items))
	for _, cm := range list.Items {
		orgs = append(orgs, cm.ProviderOrg)
	}
	// The filters go on to the next page with its cursor, as typed.
	p.Data = map[string]any{"Items": list.Items, "NextCursor": list.NextCursor, "People": a.people(ctx, nil, orgs),
		"Case": caseID, "Provider": provider}
	a.render(c, http.StatusOK, "commitments", p)
}

func (a *app) reports(c *gin.Context) {
	p := pageOf(c)
	list, err := a.Supervision.ListReports(c.Request.Context(), a.actor(c), supervision.ReportFilter{Status: c.Query("status"),
		Limit: 50, Cursor: c.Query("cursor")})
	if err != nil {
		a.fail(c, err)
		return
	}
	orgs := make([]string, 0, len(list.Items))
	for _, r := range list.Items {
		orgs = append(orgs, r.SubjectOrg)
	}
	p.Data = map[string]any{"Items": list.Items, "NextCursor": list.NextCursor, "People": a.people(c.Request.Context(), nil, orgs),
		"Status": c.Query("status"), "Statuses": reportStatuses}
	a.render(c, http.StatusOK, "reports", p)
}

var reportStatuses = []string{supervision.ReportReceived, supervision.ReportTriaged, supervision.ReportInvestigating, supervision.ReportClosed}

func (a *app) report(c *gin.Context) {
	a.renderReport(c, http.StatusOK, nil)
}

// reportView is a report for the inspector, with its two forms: a
// message to the reporter and a change of status, each filled in as it
// was sent when the service refused it.
type reportView struct {
	Report   supervision.Report
	Statuses []string
	People   map[string]person
	Message  string // the message form's text
	// Status and Outcome are the status form's choice and text.
	Status, Outcome string
}

// renderReport shows the report page with status; form, when not nil,
// fills a refused form back in ("message.text", "status.status" and
// "status.outcome"; the status form is kept only if it was the one sent).
func (a *app) renderReport(c *gin.Context, status int, form map[string]string) {
	p := pageOf(c)
	r, err := a.Supervision.GetReport(c.Request.Context(), a.actor(c), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	v := reportView{Report: r, Statuses: reportStatuses, People: a.people(c.Request.Context(), nil, []string{r.SubjectOrg}),
		Message: form["message.text"], Status: r.Status, Outcome: r.Outcome}
	if st, sent := form["status.status"]; sent {
		v.Status, v.Outcome = st, form["status.outcome"]
	}
	p.Data = v
	a.render(c, status, "report", p)
}

// reportFormRefused answers a form of the report page that the service
// refused for what was typed in it: the page again, the reason above and
// the form as it was sent. Other refusals are the error page.
func (a *app) reportFormRefused(c *gin.Context, err error, form map[string]string) {
	status, msg := a.formError(c, err)
	switch status {
	case http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity:
		pageOf(c).Error = msg
		a.renderReport(c, status, form)
	default:
		a.fail(c, err)
	}
}

func (a *app) inspectorMessage(c *gin.Context) {
	if _, err := a.Supervision.InspectorMessage(c.Request.Context(), a.actor(c), c.Param("id"), supervision.MessageRequest{Text: c.PostForm("text")}); err != nil {
		a.reportFormRefused(c, err, map[string]string{"message.text": c.PostForm("text")})
		return
	}
	c.Redirect(http.StatusSeeOther, "/reports/"+c.Param("id")+"?done=message_sent")
}

func (a *app) reportStatus(c *gin.Context) {
	in := supervision.ReportStatusChange{Status: c.PostForm("status"), Outcome: c.PostForm("outcome")}
	if _, err := a.Supervision.SetReportStatus(c.Request.Context(), a.actor(c), c.Param("id"), in); err != nil {
		a.reportFormRefused(c, err, keptForm(c, "status", "status", "outcome"))
		return
	}
	c.Redirect(http.StatusSeeOther, "/reports/"+c.Param("id")+"?done=status_changed")
}

// reportAttachment downloads evidence a reporter attached (never inline:
// it comes from anyone on the internet).
func (a *app) reportAttachment(c *gin.Context) {
	ct, err := a.Supervision.OpenAttachment(c.Request.Context(), a.actor(c), c.Param("id"), c.Param("aid"))
	if err != nil {
		a.fail(c, err)
		return
	}
	defer ct.Close()
	serveContent(c, ct.Info.ContentType, ct.Info.Filename, ct.Info.SHA256, ct.Info.Size, false, ct.Body, a, nil)
}
