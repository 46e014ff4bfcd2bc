package api

import "github.com/gin-gonic/gin"

// auditRoutes registers the audit log's checkpoint, proofs and export
// (API.md "Audit trail").
func (h *handler) auditRoutes(auth, public *gin.RouterGroup) {}
