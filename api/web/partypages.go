package web

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/review"
	"github.com/crvault/crvault/vault/supervision"
)

// Pages over single service calls: consents on a party's materials
// (vault.GrantConsent, Consents, RevokeConsent), member-unit registration
// (vault.MemberUnits, RegisterMemberUnit) and the inspector's commitment
// statuses (supervision.SetCommitmentStatus). The services decide who may.
func (a *app) partyRoutes(g *gin.RouterGroup) {
	g.GET("/materials/:id/consents", a.consentsPage)
	g.POST("/materials/:id/consents", a.csrf, a.grantConsent)
	g.POST("/consents/:id/revoke", a.csrf, a.revokeConsent)
	g.GET("/member-units", a.memberUnitsPage)
	g.POST("/member-units", a.csrf, a.registerMemberUnit)
	if a.Supervision != nil {
		g.POST("/commitments/:id/status", a.csrf, a.commitmentStatus)
	}
}

// orgOption is an organisation offered in a form, by id with its name.
type orgOption struct {
	ID, Name string
}

type consentView struct {
	Material vault.Material
	Consents []consentRow
	Parties  []orgOption // the case's other parties, who may be granted a consent
	Purpose  string
	Next     string // the cursor of the next page of consents
}

type consentRow struct {
	vault.Consent
	OrgName string
}

func (a *app) consentsPage(c *gin.Context) {
	a.renderConsents(c, http.StatusOK, "", "")
}

func (a *app) renderConsents(c *gin.Context, status int, errMsg, purpose string) {
	p := pageOf(c)
	ctx := c.Request.Context()
	// Consents first: it refuses anyone but the providing organisation,
	// before the material or the case is read.
	list, err := a.Vault.Consents(ctx, a.actor(c), c.Param("id"), 50, c.Query("cursor"))
	if err != nil {
		a.fail(c, err)
		return
	}
	m, err := a.Vault.GetMaterial(ctx, a.actor(c), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	cs, err := a.Vault.GetCase(ctx, a.actor(c), m.CaseID)
	if err != nil {
		a.fail(c, err)
		return
	}
	p.L = p.L.ForEdition(cs.Edition)
	v := consentView{Material: m, Purpose: purpose, Next: list.NextCursor}
	for _, k := range list.Items {
		v.Consents = append(v.Consents, consentRow{Consent: k, OrgName: a.orgName(ctx, k.Org)})
	}
	own := principalOf(c).User.OrgID
	for _, id := range append([]string{cs.OperatorOrg}, cs.Providers...) {
		if id != own && id != "" {
			v.Parties = append(v.Parties, orgOption{ID: id, Name: a.orgName(ctx, id)})
		}
	}
	p.Error = errMsg
	p.Data = v
	a.render(c, status, "consents", p)
}

func (a *app) grantConsent(c *gin.Context) {
	in := vault.NewConsent{Org: c.PostForm("org"), Purpose: strings.TrimSpace(c.PostForm("purpose"))}
	if _, err := a.Vault.GrantConsent(c.Request.Context(), a.actor(c), c.Param("id"), in); err != nil {
		status, msg := a.formError(c, err)
		if status == http.StatusUnprocessableEntity || status == http.StatusBadRequest || status == http.StatusConflict {
			a.renderConsents(c, status, msg, in.Purpose)
			return
		}
		a.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/materials/"+c.Param("id")+"/consents?done=consent_granted")
}

func (a *app) revokeConsent(c *gin.Context) {
	if err := a.Vault.RevokeConsent(c.Request.Context(), a.actor(c), c.Param("id")); err != nil {
		a.fail(c, err)
		return
	}
	// Back to the material's consents: the form names it, so it comes from
	// the request and must be an id, nothing a path could be built from.
	next := "/"
	if m := c.PostForm("material"); isID(m) {
		next = "/materials/" + m + "/consents"
	}
	c.Redirect(http.StatusSeeOther, safeNext(next)+"?done=consent_revoked")
}

type memberUnitsView struct {
	Units []memberUnitRow
	Org   string
	Unit  string
	Codes []review.Member // the member units of the editions' lists
	Next  string          // the cursor of the next page of units
}

type memberUnitRow struct {
	vault.MemberUnit
	OrgName string
}

func (a *app) memberUnitsPage(c *gin.Context) {
	a.renderMemberUnits(c, http.StatusOK, "", "", "")
}

func (a *app) renderMemberUnits(c *gin.Context, status int, errMsg, org, unit string) {
	p := pageOf(c)
	ctx := c.Request.Context()
	list, err := a.Vault.MemberUnits(ctx, a.actor(c), 50, c.Query("cursor"))
	if err != nil {
		a.fail(c, err)
		return
	}
	v := memberUnitsView{Org: org, Unit: unit, Codes: memberCodes(a.Vault), Next: list.NextCursor}
	for _, m := range list.Items {
		v.Units = append(v.Units, memberUnitRow{MemberUnit: m, OrgName: a.orgName(ctx, m.Org)})
	}
	p.Error = errMsg
	p.Data = v
	a.render(c, status, "member_units", p)
}

// registerMemberUnit registers an organisation (named as the sysadmin
// named it) as a member unit; the service checks its kind and the code.
func (a *app) registerMemberUnit(c *gin.Context) {
	ctx := c.Request.Context()
	org, unit := strings.TrimSpace(c.PostForm("org")), c.PostForm("unit")
	id := org
	if o, err := a.Access.OrgByName(ctx, org); err == nil {
		id = o.ID
	}
	if _, err := a.Vault.RegisterMemberUnit(ctx, a.actor(c), vault.NewMemberUnit{Org: id, Unit: unit}); err != nil {
		status, msg := a.formError(c, err)
		if status == http.StatusUnprocessableEntity || status == http.StatusBadRequest || status == http.StatusConflict {
			a.renderMemberUnits(c, status, msg, org, unit)
			return
		}
		a.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/member-units?done=member_unit_registered")
}

// memberCodes lists the units of the editions' member lists; the form
// adds the "department" a CII protection or relevant department
// registers as.
func memberCodes(v *vault.Service) []review.Member {
	seen := map[string]bool{}
	var out []review.Member
	for _, ed := range v.Editions() {
		for _, m := range ed.Members {
			if !seen[m.Code] {
				seen[m.Code] = true
				out = append(out, m)
			}
		}
	}
	return out
}

func (a *app) commitmentStatus(c *gin.Context) {
	in := supervision.CommitmentStatusRequest{Status: c.PostForm("status"), Note: c.PostForm("note")}
	if _, err := a.Supervision.SetCommitmentStatus(c.Request.Context(), a.actor(c), c.Param("id"), in); err != nil {
		a.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/commitments?done=status_changed")
}

// isID reports whether s looks like one of the vault's ids (lower-case
// letters and digits), as a value from a form must before it goes into a
// path.
func isID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
