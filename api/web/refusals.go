package web

import (
	"errors"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/review"
)

// caseRefusal is the message above a case page whose form the service
// refused, in the page's language and edition (renderCase has set it).
// Where the problem names what is wrong, the message names it too: a
// recommendation refused because assigned organisations are not registered
// member units names those organisations, and sends an office admin to
// the page that registers them.
func (a *app) caseRefusal(c *gin.Context, err error) string {
	var ve *vault.Error
	if errors.As(err, &ve) && ve.Code == review.CodeNotAMember && len(ve.Missing) > 0 {
		p := pageOf(c)
		names := make([]string, len(ve.Missing))
		for i, id := range ve.Missing {
			names[i] = a.orgName(c.Request.Context(), id)
		}
		if p.Is("office_admin") {
			p.ErrorLink, p.ErrorLinkLabel = "/member-units", p.L.T("member_units.register")
		}
		return p.L.T("error.not_a_member_named", "Orgs", p.L.list(names))
	}
	if errors.As(err, &ve) && ve.Code == "declaration_required" && c.FullPath() == "/cases/:case/opinions" {
		// An opinion sent before declaring (a page opened earlier, or in
		// another tab): the message is about opinions, not reading, and
		// the opinion typed is kept for after the declaration.
		p := pageOf(c)
		p.ErrorLink, p.ErrorLinkLabel = "#decl-h", p.L.T("opinion.to_declaration")
		return p.L.T("opinion.declare_first_kept")
	}
	_, msg := a.formError(c, err)
	return msg
}
