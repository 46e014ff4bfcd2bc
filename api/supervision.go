package api

import (
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/vault/supervision"
)

// supervisionRoutes registers complaints, commitments and reports from the
// public (API.md "Complaints", "Commitments and reports").
//
// The public report routes identify the caller by the X-Receipt header
// only. They never put the client address anywhere but the supervision
// service's in-memory throttle, which keeps only a keyed hash of it; the
// observe middleware logs no address for any route.
func (h *handler) supervisionRoutes(auth, public *gin.RouterGroup) {
	if h.Supervision == nil {
		return
	}
	auth.POST("/complaints", h.fileComplaint)
	auth.GET("/complaints", h.listComplaints)
	auth.GET("/complaints/:id", h.getComplaint)
	auth.POST("/complaints/:id/status", h.complaintStatus)
	auth.POST("/complaints/:id/resolution", h.resolveComplaint)
	auth.GET("/complaints/:id/evidence", h.complaintEvidence)

	auth.POST("/cases/:case/commitments", h.addCommitment)
	auth.POST("/cases/:case/commitments/:id/urge", h.urgeCommitment)
	auth.GET("/commitments", h.listCommitments)
	auth.POST("/commitments/:id/status", h.commitmentStatus)

	public.POST("/reports", h.fileReport)
	public.GET("/reports/status", h.reporterStatus)
	public.POST("/reports/messages", h.reporterMessage)
	public.POST("/reports/attachments", h.reportAttachment)
	auth.GET("/reports", h.listReports)
	auth.GET("/reports/:id", h.getReport)
	auth.POST("/reports/:id/messages", h.inspectorMessage)
	auth.POST("/reports/:id/status", h.reportStatus)
	auth.GET("/reports/:id/attachments/:aid/content", h.attachmentContent)

	auth.GET("/supervision/workload", h.workload)
}

// reportClient is the anonymous caller: the address goes to the throttle
// and nowhere else.
func reportClient(c *gin.Context) supervision.Client {
	return supervision.Client{Addr: c.ClientIP(), RequestID: requestID(c)}
}

// reply answers v with status, or the error.
func (h *handler) reply(c *gin.Context, status int, v any, err error) {
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(status, v)
}

func (h *handler) fileComplaint(c *gin.Context) {
	var req supervision.NewComplaint
	if !decode(c, &req) {
		return
	}
	v, err := h.Supervision.FileComplaint(c.Request.Context(), actor(c), req)
	h.reply(c, http.StatusCreated, v, err)
}

func (h *handler) listComplaints(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	v, err := h.Supervision.ListComplaints(c.Request.Context(), actor(c), supervision.ComplaintFilter{Status: c.Query("status"),
		CaseID: c.Query("case"), Limit: limit, Cursor: cursor})
	h.reply(c, http.StatusOK, v, err)
}

func (h *handler) getComplaint(c *gin.Context) {
	v, err := h.Supervision.GetComplaint(c.Request.Context(), actor(c), c.Param("id"))
	h.reply(c, http.StatusOK, v, err)
}

func (h *handler) complaintStatus(c *gin.Context) {
	var req supervision.StatusRequest
	if !decode(c, &req) {
		return
	}
	v, err := h.Supervision.SetComplaintStatus(c.Request.Context(), actor(c), c.Param("id"), req)
	h.reply(c, http.StatusOK, v, err)
}

func (h *handler) resolveComplaint(c *gin.Context) {
	var req supervision.Resolution
	if !decode(c, &req) {
		return
	}
	v, err := h.Supervision.Resolve(c.Request.Context(), actor(c), c.Param("id"), req)
	h.reply(c, http.StatusOK, v, err)
}

// complaintEvidence answers the bundle as JSON; ?format=file makes it a
// download (the same JSON document) for supervision.VerifyEvidence.
func (h *handler) complaintEvidence(c *gin.Context) {
	format := c.Query("format")
	if format != "" && format != "json" && format != "file" {
		writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: "invalid_format", Field: "format", Detail: `format must be "json" or "file"`})
		return
	}
	ev, err := h.Supervision.ComplaintEvidence(c.Request.Context(), actor(c), c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	if format == "file" {
		c.Header("Content-Disposition", `attachment; filename="complaint-`+ev.Complaint.ID+`-evidence.json"`)
	}
	h.reply(c, http.StatusOK, ev, nil)
}

func (h *handler) addCommitment(c *gin.Context) {
	var req supervision.NewCommitment
	if !decode(c, &req) {
		return
	}
	v, err := h.Supervision.AddCommitment(c.Request.Context(), actor(c), c.Param("case"), req)
	h.reply(c, http.StatusCreated, v, err)
}

func (h *handler) urgeCommitment(c *gin.Context) {
	var req supervision.UrgeRequest
	if !decode(c, &req) {
		return
	}
	v, err := h.Supervision.UrgeCommitment(c.Request.Context(), actor(c), c.Param("case"), c.Param("id"), req)
	h.reply(c, http.StatusCreated, v, err)
}

func (h *handler) commitmentStatus(c *gin.Context) {
	var req supervision.CommitmentStatusRequest
	if !decode(c, &req) {
		return
	}
	v, err := h.Supervision.SetCommitmentStatus(c.Request.Context(), actor(c), c.Param("id"), req)
	h.reply(c, http.StatusOK, v, err)
}

func (h *handler) listCommitments(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	v, err := h.Supervision.ListCommitments(c.Request.Context(), actor(c), supervision.CommitmentFilter{Provider: c.Query("provider"),
		CaseID: c.Query("case"), Limit: limit, Cursor: cursor})
	h.reply(c, http.StatusOK, v, err)
}

func (h *handler) fileReport(c *gin.Context) {
	var req supervision.NewReport
	if !decode(c, &req) {
		return
	}
	v, err := h.Supervision.FileReport(c.Request.Context(), reportClient(c), req)
	h.reply(c, http.StatusCreated, v, err)
}

func (h *handler) reporterStatus(c *gin.Context) {
	v, err := h.Supervision.ReporterStatus(c.Request.Context(), reportClient(c), c.GetHeader("X-Receipt"))
	h.reply(c, http.StatusOK, v, err)
}

func (h *handler) reporterMessage(c *gin.Context) {
	var req supervision.MessageRequest
	if !decode(c, &req) {
		return
	}
	v, err := h.Supervision.ReporterMessage(c.Request.Context(), reportClient(c), c.GetHeader("X-Receipt"), req)
	h.reply(c, http.StatusCreated, v, err)
}

// reportAttachment takes a raw body (?filename=, the file's own
// Content-Type), streamed into the encrypted store.
func (h *handler) reportAttachment(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, h.Supervision.MaxAttachmentSize()+1)
	up := supervision.Attachment{Filename: c.Query("filename"), ContentType: c.GetHeader("Content-Type"),
		Body: bodyReader{c.Request.Body}, Size: c.Request.ContentLength}
	v, err := h.Supervision.AddAttachment(c.Request.Context(), reportClient(c), c.GetHeader("X-Receipt"), up)
	h.reply(c, http.StatusCreated, v, err)
}

func (h *handler) listReports(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	v, err := h.Supervision.ListReports(c.Request.Context(), actor(c), supervision.ReportFilter{Status: c.Query("status"),
		Provider: c.Query("provider"), Limit: limit, Cursor: cursor})
	h.reply(c, http.StatusOK, v, err)
}

func (h *handler) getReport(c *gin.Context) {
	v, err := h.Supervision.GetReport(c.Request.Context(), actor(c), c.Param("id"))
	h.reply(c, http.StatusOK, v, err)
}

func (h *handler) inspectorMessage(c *gin.Context) {
	var req supervision.MessageRequest
	if !decode(c, &req) {
		return
	}
	v, err := h.Supervision.InspectorMessage(c.Request.Context(), actor(c), c.Param("id"), req)
	h.reply(c, http.StatusCreated, v, err)
}

func (h *handler) reportStatus(c *gin.Context) {
	var req supervision.ReportStatusChange
	if !decode(c, &req) {
		return
	}
	v, err := h.Supervision.SetReportStatus(c.Request.Context(), actor(c), c.Param("id"), req)
	h.reply(c, http.StatusOK, v, err)
}

func (h *handler) attachmentContent(c *gin.Context) {
	ct, err := h.Supervision.OpenAttachment(c.Request.Context(), actor(c), c.Param("id"), c.Param("aid"))
	if err != nil {
		h.fail(c, err)
		return
	}
	defer ct.Close()
	hd := c.Writer.Header()
	hd.Set("Content-Type", ct.Info.ContentType)
	hd.Set("Content-Disposition", contentDisposition(ct.Info.Filename))
	hd.Set("Content-Length", strconv.FormatInt(ct.Info.Size, 10))
	hd.Set("X-Content-SHA256", ct.Info.SHA256)
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	c.Status(http.StatusOK)
	if n, err := io.Copy(c.Writer, ct.Body); err != nil {
		h.log.WarnContext(c.Request.Context(), "attachment transfer cut short", "request_id", requestID(c), "attachment", ct.Info.ID, "sent", n, "err", err)
		panic(http.ErrAbortHandler)
	}
}

func (h *handler) workload(c *gin.Context) {
	v, err := h.Supervision.Workload(c.Request.Context(), actor(c))
	h.reply(c, http.StatusOK, v, err)
}
