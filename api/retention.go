package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/vault"
)

// retentionRoutes registers a case's retention and legal hold (the
// office's): the hold blocks crypto-shredding at the end of retention.
func (h *handler) retentionRoutes(auth *gin.RouterGroup) {
	auth.GET("/cases/:case/retention", h.retention)
	auth.PUT("/cases/:case/legal-hold", h.setLegalHold)
	auth.DELETE("/cases/:case/legal-hold", h.clearLegalHold)
}

func (h *handler) retention(c *gin.Context) {
	r, err := h.Vault.Retention(c.Request.Context(), actor(c), c.Param("case"))
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

func (h *handler) setLegalHold(c *gin.Context) {
	var req vault.LegalHold
	if !decode(c, &req) {
		return
	}
	r, err := h.Vault.SetLegalHold(c.Request.Context(), actor(c), c.Param("case"), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

func (h *handler) clearLegalHold(c *gin.Context) {
	var req vault.LegalHold
	if !decode(c, &req) {
		return
	}
	r, err := h.Vault.ClearLegalHold(c.Request.Context(), actor(c), c.Param("case"), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}
