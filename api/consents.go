package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/vault"
)

// consentRoutes registers the providing organisation's consents to disclose
// a material to another party of the case (API.md "Materials", Art. 16).
func (h *handler) consentRoutes(auth *gin.RouterGroup) {
	auth.POST("/materials/:id/consents", h.grantConsent)
	auth.GET("/materials/:id/consents", h.listConsents)
	auth.DELETE("/consents/:id", h.revokeConsent)
}

func (h *handler) grantConsent(c *gin.Context) {
	var req vault.NewConsent
	if !decode(c, &req) {
		return
	}
	cs, err := h.Vault.GrantConsent(c.Request.Context(), actor(c), c.Param("id"), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, cs)
}

func (h *handler) listConsents(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	page, err := h.Vault.Consents(c.Request.Context(), actor(c), c.Param("id"), limit, cursor)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (h *handler) revokeConsent(c *gin.Context) {
	if err := h.Vault.RevokeConsent(c.Request.Context(), actor(c), c.Param("id")); err != nil {
		h.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
