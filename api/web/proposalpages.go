package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault"
)

// Reviews proposed by member units: the member unit proposes
// (vault.Propose), the office records the Commission's approval, which
// opens the case (vault.ApproveProposal), and both list them
// (vault.Proposals). The service decides who may do each, and audits it.
func (a *app) proposalRoutes(g *gin.RouterGroup) {
	g.GET("/proposals", a.proposalsPage)
	g.POST("/proposals", a.csrf, a.propose)
	g.POST("/proposals/:id/approval", a.csrf, a.approveProposal)
}

type proposalsView struct {
	Items []proposalRow
	Next  string // the cursor of the next page
	// Status is the status the list is filtered to ("proposed": awaiting
	// the Commission's approval), "" for all.
	Status string
	// Subjects are what a proposal may concern under the edition in force.
	Subjects []string
	// Form is what was typed into a refused form, by form and field
	// ("propose.title", "approve.reference"; "approve.id" names the
	// proposal whose approval was refused).
	Form map[string]string
}

type proposalRow struct {
	vault.Proposal
	MemberName, PartyName string
}

func (a *app) proposalsPage(c *gin.Context) {
	a.renderProposals(c, http.StatusOK, "", nil)
}

func (a *app) renderProposals(c *gin.Context, status int, errMsg string, form map[string]string) {
	p := pageOf(c)
	ctx := c.Request.Context()
	// Proposals first: it refuses (and audits) anyone but the office and
	// member units before the page shows anything.
	filter := c.Query("status")
	list, err := a.Vault.Proposals(ctx, a.actor(c), filter, 50, c.Query("cursor"))
	if err != nil {
		a.fail(c, err)
		return
	}
	v := proposalsView{Next: list.NextCursor, Status: filter, Subjects: a.Vault.CurrentEdition().ProposalSubjects, Form: form}
	for _, pr := range list.Items {
		v.Items = append(v.Items, proposalRow{Proposal: pr, MemberName: a.orgName(ctx, pr.MemberOrg), PartyName: a.orgName(ctx, pr.PartyOrg)})
	}
	if v.Form == nil {
		v.Form = map[string]string{}
	}
	p.Error = errMsg
	p.Data = v
	a.render(c, status, "proposals", p)
}

// proposalRefusal answers a refused proposal form: the list page again
// with the reason above and what was typed kept, when typing (or
// registering the unit) can mend it; otherwise the error page.
func (a *app) proposalRefusal(c *gin.Context, err error, form map[string]string, msg func(error) string) {
	status, code, _ := a.Classify(err)
	switch {
	case status == http.StatusBadRequest, status == http.StatusConflict, status == http.StatusUnprocessableEntity,
		status == http.StatusForbidden && code == "not_a_member":
		a.renderProposals(c, status, msg(err), form)
	default:
		a.fail(c, err)
	}
}

// propose records a member unit's proposal. The party is named as the
// member unit knows it (an organisation's name or id); an organisation
// that is not found goes to the service as typed, which refuses it as
// it refuses one that is not an operator: the form is no way to learn what
// else is registered.
func (a *app) propose(c *gin.Context) {
	ctx := c.Request.Context()
	form := keptForm(c, "propose", "party", "subject", "title", "product", "reason")
	party := strings.TrimSpace(c.PostForm("party"))
	id := party
	if o, err := a.Access.OrgByRef(ctx, party); err == nil {
		id = o.ID
	} else if !errors.Is(err, access.ErrNotFound) {
		a.fail(c, err)
		return
	}
	in := vault.NewProposal{PartyOrg: id, Subject: c.PostForm("subject"), Title: c.PostForm("title"), Product: c.PostForm("product"), Reason: c.PostForm("reason")}
	if _, err := a.Vault.Propose(ctx, a.actor(c), in); err != nil {
		a.proposalRefusal(c, err, form, func(err error) string {
			var ve *vault.Error
			if errors.As(err, &ve) && ve.Field == "party_org" {
				return a.locale(c).T("proposals.unknown_party", "Name", party)
			}
			_, msg := a.formError(c, err)
			return msg
		})
		return
	}
	c.Redirect(http.StatusSeeOther, "/proposals?done=proposed")
}

// approveProposal records the Commission's approval; the service opens
// the case, which the office then works on its page.
func (a *app) approveProposal(c *gin.Context) {
	form := keptForm(c, "approve", "reference")
	form["approve.id"] = c.Param("id")
	ap, err := a.Vault.ApproveProposal(c.Request.Context(), a.actor(c), c.Param("id"), vault.ApprovalRequest{Reference: c.PostForm("reference")})
	if err != nil {
		a.proposalRefusal(c, err, form, func(err error) string {
			var ve *vault.Error
			if errors.As(err, &ve) && ve.Code == "already_approved" {
				// The account approval's code, said of a proposal.
				return a.locale(c).T("proposals.already_approved")
			}
			_, msg := a.formError(c, err)
			return msg
		})
		return
	}
	done(c, ap.Case.ID, "proposal_approved")
}
