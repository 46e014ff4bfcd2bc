package api

import "github.com/gin-gonic/gin"

// supervisionRoutes registers complaints, commitments and reports from the
// public (API.md "Complaints", "Commitments and reports").
func (h *handler) supervisionRoutes(auth, public *gin.RouterGroup) {}
