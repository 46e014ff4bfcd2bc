package web

import (
	"errors"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/vault/supervision"
)

// publicRoutes are for members of the public, with no account (Art. 6 and
// 18): a report with attachments, and the follow-up by receipt. They work
// without JavaScript. The receipt travels only in form bodies, never in a
// URL, so it stays out of logs and browser history.
// reporterPages are the report desk's pages that take a form: as on the
// API's desk routes (reporterRoutes in package api), no audit event of a
// request to them records the visitor's address.
var reporterPages = map[string]bool{"POST /report": true, "POST /report/status": true, "POST /report/messages": true}

func (a *app) publicRoutes(g *gin.RouterGroup) {
	if a.Supervision == nil {
		return
	}
	g.GET("/report", a.reportForm)
	g.POST("/report", a.csrfStreamed, a.fileReport)
	g.GET("/report/status", a.reportStatusForm)
	g.POST("/report/status", a.csrf, a.reporterStatus)
	g.POST("/report/messages", a.csrf, a.reporterMessage)
}

const maxReportFiles = 10

func (a *app) reportForm(c *gin.Context) {
	p := pageOf(c)
	p.Data = map[string]any{"MaxFiles": maxReportFiles}
	a.render(c, http.StatusOK, "public_report", p)
}

// fileReport streams the multipart form: csrf, subject_org, commitment and
// description first (the report is filed as soon as they are read), then
// each attached file straight into the encrypted store.
func (a *app) fileReport(c *gin.Context) {
	p := pageOf(c)
	ctx := c.Request.Context()
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxReportFiles*(a.Supervision.MaxAttachmentSize()+1<<16)+1<<20)
	mr, err := multipartReader(c)
	if err != nil {
		a.errorPage(c, http.StatusBadRequest, "error.bad_form")
		return
	}
	if !a.multipartCSRF(c, mr) {
		return
	}
	in := supervision.NewReport{}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"subject_org", &in.SubjectOrg}, {"commitment", &in.Commitment}, {"description", &in.Description}} {
		v, ok := smallField(mr, f.name)
		if !ok {
			a.errorPage(c, http.StatusBadRequest, "error.bad_form")
			return
		}
		*f.dst = v
	}
	filed, err := a.Supervision.FileReport(ctx, a.client(c), in)
	if err != nil {
		status, msg := a.formError(c, err)
		p.Error = msg
		p.Data = map[string]any{"MaxFiles": maxReportFiles, "Form": in}
		a.render(c, status, "public_report", p)
		return
	}
	var names []string
	var failed string
	for i := 0; i < maxReportFiles; i++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			failed = p.L.T("error.bad_form")
			break
		}
		if part.FormName() != "files" || part.FileName() == "" {
			continue // an empty file input sends an empty part
		}
		info, err := a.Supervision.AddAttachment(ctx, a.client(c), filed.Receipt, supervision.Attachment{Filename: part.FileName(),
			ContentType: part.Header.Get("Content-Type"), Body: part, Size: -1})
		if err != nil {
			_, failed = a.formError(c, err)
			break
		}
		names = append(names, info.Filename)
	}
	// The receipt is shown this once; only its hash is stored.
	p.Data = map[string]any{"Filed": filed, "Files": names, "Failed": failed}
	a.render(c, http.StatusCreated, "public_filed", p)
}

func (a *app) reportStatusForm(c *gin.Context) {
	a.render(c, http.StatusOK, "public_status", pageOf(c))
}

func (a *app) reporterStatus(c *gin.Context) {
	a.showReporterStatus(c, c.PostForm("receipt"), http.StatusOK, "")
}

// showReporterStatus shows the report a receipt opens, with status; text
// fills the message form back in after a refusal.
func (a *app) showReporterStatus(c *gin.Context, receipt string, status int, text string) {
	p := pageOf(c)
	v, err := a.Supervision.ReporterStatus(c.Request.Context(), a.client(c), receipt)
	if err != nil {
		st, msg := a.formError(c, err)
		p.Error = msg
		a.render(c, st, "public_status", p)
		return
	}
	p.Data = map[string]any{"Report": v, "Receipt": receipt, "Text": text}
	a.render(c, status, "public_status", p)
}

// reporterMessage sends the reporter's message. Refused, the status page
// comes back with the reason and the message as it was typed.
func (a *app) reporterMessage(c *gin.Context) {
	p := pageOf(c)
	receipt := c.PostForm("receipt")
	if _, err := a.Supervision.ReporterMessage(c.Request.Context(), a.client(c), receipt, supervision.MessageRequest{Text: c.PostForm("text")}); err != nil {
		status, msg := a.formError(c, err)
		p.Error = msg
		a.showReporterStatus(c, receipt, status, c.PostForm("text"))
		return
	}
	p.Flash = "flash.message_sent"
	a.showReporterStatus(c, receipt, http.StatusOK, "")
}
