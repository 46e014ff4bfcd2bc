package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// workflowRoutes registers the review workflow, statutory clock and calendar
// endpoints (API.md "Review workflow and statutory clock").
//
// GET /calendar/deadline answers any authenticated user: it reveals nothing
// but the public holiday calendar, and keeping it behind a session keeps
// anonymous load off the server.
func (h *handler) workflowRoutes(auth, public *gin.RouterGroup) {
	auth.POST("/cases/:case/transitions", h.transition)
	auth.POST("/cases/:case/opinions", h.opinion)
	auth.GET("/cases/:case/clock", h.clock)
	auth.GET("/cases/:case/events", h.caseHistory)
	auth.GET("/deadlines", h.deadlines)
	auth.GET("/calendar/deadline", h.calendarDeadline)
	auth.POST("/cases/:case/measure-reports", h.measureReport)
	auth.GET("/editions", h.editions)
	auth.GET("/member-units", h.listMemberUnits)
	auth.POST("/member-units", h.registerMemberUnit)
	auth.GET("/proposals", h.listProposals)
	auth.POST("/proposals", h.propose)
	auth.POST("/proposals/:id/approval", h.approveProposal)
}

func (h *handler) measureReport(c *gin.Context) {
	var req vault.MeasureReport
	if !decode(c, &req) {
		return
	}
	res, err := h.Vault.ReportMeasures(c.Request.Context(), actor(c), c.Param("case"), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, res)
}

func (h *handler) editions(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	page, err := h.Vault.EditionsPage(limit, cursor)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (h *handler) listMemberUnits(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	page, err := h.Vault.MemberUnits(c.Request.Context(), actor(c), limit, cursor)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (h *handler) registerMemberUnit(c *gin.Context) {
	var req vault.NewMemberUnit
	if !decode(c, &req) {
		return
	}
	m, err := h.Vault.RegisterMemberUnit(c.Request.Context(), actor(c), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, m)
}

func (h *handler) listProposals(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	page, err := h.Vault.Proposals(c.Request.Context(), actor(c), c.Query("status"), limit, cursor)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (h *handler) propose(c *gin.Context) {
	var req vault.NewProposal
	if !decode(c, &req) {
		return
	}
	p, err := h.Vault.Propose(c.Request.Context(), actor(c), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, p)
}

func (h *handler) approveProposal(c *gin.Context) {
	var req vault.ApprovalRequest
	if !decode(c, &req) {
		return
	}
	res, err := h.Vault.ApproveProposal(c.Request.Context(), actor(c), c.Param("id"), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, res)
}

// calendarReadiness is the calendar's part of /readyz: never a reason to be
// unready (deadlines past the official years are provisional, not lost), but
// a warning when the official schedules reach fewer than
// calendar.WarnOfficialDaysAhead days ahead.
func (h *handler) calendarReadiness(ctx context.Context) (calendar.Coverage, bool) {
	if h.Vault == nil {
		return calendar.Coverage{}, false
	}
	cov, err := h.Vault.CalendarCoverage(ctx)
	if err != nil {
		return calendar.Coverage{}, false
	}
	return cov, true
}

func (h *handler) transition(c *gin.Context) {
	var req vault.TransitionRequest
	if !decode(c, &req) {
		return
	}
	res, err := h.Vault.Transition(c.Request.Context(), actor(c), c.Param("case"), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

func (h *handler) opinion(c *gin.Context) {
	var req vault.OpinionRequest
	if !decode(c, &req) {
		return
	}
	res, err := h.Vault.Opinion(c.Request.Context(), actor(c), c.Param("case"), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, res)
}

func (h *handler) clock(c *gin.Context) {
	clk, err := h.Vault.Clock(c.Request.Context(), actor(c), c.Param("case"))
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, clk)
}

func (h *handler) caseHistory(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	page, err := h.Vault.HistoryPage(c.Request.Context(), actor(c), c.Param("case"), limit, cursor)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (h *handler) deadlines(c *gin.Context) {
	within := review.DueSoonWorkingDays // the watcher's own window when none is asked for
	if s, ok := c.GetQuery("within"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > vault.MaxWithin {
			h.fail(c, &vault.Error{Kind: vault.ErrInvalid, Code: "invalid_days", Field: "within",
				Detail: "within must be an integer from 0 to " + strconv.Itoa(vault.MaxWithin)})
			return
		}
		within = n
	}
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	page, err := h.Vault.DeadlinesPage(c.Request.Context(), actor(c), within, limit, cursor)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (h *handler) calendarDeadline(c *gin.Context) {
	from, err := calendar.ParseDate(c.Query("from"))
	if err != nil {
		h.fail(c, &vault.Error{Kind: vault.ErrInvalid, Code: "invalid_date", Field: "from", Detail: "from must be a date written YYYY-MM-DD"})
		return
	}
	n, err := strconv.Atoi(c.Query("working_days"))
	if err != nil || n < 0 || n > calendar.MaxDays {
		h.fail(c, &vault.Error{Kind: vault.ErrInvalid, Code: "invalid_days", Field: "working_days",
			Detail: "working_days must be an integer from 0 to " + strconv.Itoa(calendar.MaxDays)})
		return
	}
	due, err := h.Vault.DueDate(c.Request.Context(), from, n)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, due)
}
