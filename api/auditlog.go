package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/audit"
)

// auditRoutes registers the audit log's checkpoint, proofs and export
// (API.md "Audit trail"). Checkpoints and consistency proofs hold only
// hashes, so operators and providers may fetch them to check what they were
// shown; inclusion proofs carry the event itself and exports carry every
// event, so those are for inspectors.
func (h *handler) auditRoutes(auth, public *gin.RouterGroup) {
	auth.GET("/audit/checkpoint", h.auditCheckpoint)
	auth.GET("/audit/proofs/inclusion", h.auditInclusion)
	auth.GET("/audit/proofs/consistency", h.auditConsistency)
	auth.GET("/audit/export", h.auditExport)
}

// permitAudit checks a global audit permission first, so a caller without
// it learns nothing from parameter validation; the refusal is audited.
func (h *handler) permitAudit(c *gin.Context, act, action, resource string) bool {
	if h.Access.Can(principal(c), "audit", act) {
		return true
	}
	if h.record(c, action, audit.Denied, resource, "forbidden") {
		problem(c, http.StatusForbidden, "forbidden", "your role may not fetch this from the audit log")
	}
	return false
}

// int64Param reads an optional positive integer query parameter.
func int64Param(c *gin.Context, name string, required bool) (int64, bool) {
	s := c.Query(name)
	if s == "" && !required {
		return 0, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: name, Detail: name + " must be a positive integer"})
		return 0, false
	}
	return n, true
}

func (h *handler) auditCheckpoint(c *gin.Context) {
	if !h.permitAudit(c, "verify", "audit.checkpoint", "audit/checkpoint") || !h.record(c, "audit.checkpoint", audit.Allowed, "audit/checkpoint", "") {
		return
	}
	cp, err := h.Audit.Checkpoint(c.Request.Context())
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "text/plain; charset=utf-8", cp)
}

func (h *handler) auditInclusion(c *gin.Context) {
	if !h.permitAudit(c, "read_all", "audit.proof", "audit/proofs/inclusion") {
		return
	}
	seq, ok := int64Param(c, "seq", true)
	if !ok {
		return
	}
	size, ok := int64Param(c, "size", false)
	if !ok {
		return
	}
	if !h.record(c, "audit.proof", audit.Allowed, "audit/proofs/inclusion?seq="+strconv.FormatInt(seq, 10), "") {
		return
	}
	p, err := h.Audit.InclusionProof(c.Request.Context(), seq, size)
	if err != nil {
		h.proofError(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

func (h *handler) auditConsistency(c *gin.Context) {
	if !h.permitAudit(c, "verify", "audit.proof", "audit/proofs/consistency") {
		return
	}
	from, ok := int64Param(c, "from", true)
	if !ok {
		return
	}
	to, ok := int64Param(c, "to", false)
	if !ok {
		return
	}
	if !h.record(c, "audit.proof", audit.Allowed, "audit/proofs/consistency", "") {
		return
	}
	p, err := h.Audit.ConsistencyProof(c.Request.Context(), from, to)
	if err != nil {
		h.proofError(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// proofError answers a proof request the log cannot serve: sizes beyond the
// tree are the caller's mistake.
func (h *handler) proofError(c *gin.Context, err error) {
	if errors.Is(err, audit.ErrInvalid) {
		// Recorded as allowed before the log was asked; the answer was a
		// refusal, and the trail says so.
		if h.record(c, "audit.proof", audit.Denied, "audit/proofs", "invalid_tree_size") {
			problem(c, http.StatusUnprocessableEntity, "invalid_tree_size", "seq, size, from and to must lie within the log: from <= to <= its current size")
		}
		return
	}
	h.fail(c, err)
}

func (h *handler) auditExport(c *gin.Context) {
	if !h.permitAudit(c, "read_all", "audit.export", "audit/export") {
		return
	}
	from, ok := int64Param(c, "from", false)
	if !ok {
		return
	}
	to, ok := int64Param(c, "to", false)
	if !ok {
		return
	}
	if to > 0 && from > to {
		writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: "from", Detail: "from must not exceed to"})
		return
	}
	if !h.record(c, "audit.export", audit.Allowed, "audit/export", "") {
		return
	}
	c.Header("Content-Type", "application/x-ndjson")
	c.Header("Content-Disposition", `attachment; filename="crvault-audit-export.ndjson"`)
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
	if err := h.Audit.Export(c.Request.Context(), c.Writer, from, to); err != nil {
		if !c.Writer.Written() {
			c.Writer.Header().Del("Content-Disposition")
			h.proofError(c, err)
			return
		}
		h.log.WarnContext(c.Request.Context(), "audit export cut short", "request_id", requestID(c), "err", err)
		panic(http.ErrAbortHandler)
	}
}
