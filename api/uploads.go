package api

import (
	"mime"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/vault"
)

// Resumable uploads, tus-style (see vault/uploads.go): POST opens a session,
// PATCH appends a chunk at Upload-Offset, HEAD (or GET) says where the
// session stands, DELETE abandons it. The web application and vaultctl
// both use them.
func (h *handler) uploadRoutes(auth *gin.RouterGroup) {
	auth.POST("/cases/:case/uploads", h.createUpload)
	auth.GET("/cases/:case/uploads", h.listUploads)
	auth.GET("/uploads/:id", h.getUpload)
	auth.HEAD("/uploads/:id", h.headUpload)
	auth.PATCH("/uploads/:id", h.appendUpload)
	auth.DELETE("/uploads/:id", h.cancelUpload)
}

// chunkType is the media type of a PATCH body (as in tus): the bytes of the
// document from Upload-Offset on.
const chunkType = "application/offset+octet-stream"

func (h *handler) createUpload(c *gin.Context) {
	var req vault.NewUpload
	if !decode(c, &req) {
		return
	}
	u, err := h.Vault.CreateUpload(c.Request.Context(), actor(c), c.Param("case"), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	uploadHeaders(c, u)
	c.Header("Location", "/api/v1/uploads/"+u.ID)
	c.JSON(http.StatusCreated, u)
}

func (h *handler) listUploads(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	page, err := h.Vault.ListUploads(c.Request.Context(), actor(c), c.Param("case"), limit, cursor)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (h *handler) getUpload(c *gin.Context) {
	u, err := h.Vault.GetUpload(c.Request.Context(), actor(c), c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	uploadHeaders(c, u)
	c.JSON(http.StatusOK, u)
}

func (h *handler) headUpload(c *gin.Context) {
	u, err := h.Vault.GetUpload(c.Request.Context(), actor(c), c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	uploadHeaders(c, u)
	c.Status(http.StatusOK)
}

// uploadHeaders says where an upload stands, for clients that read headers
// (HEAD has nothing else).
func uploadHeaders(c *gin.Context, u vault.UploadSession) {
	c.Header("Cache-Control", "no-store")
	c.Header("Upload-Offset", strconv.FormatInt(u.Offset, 10))
	if u.Size != nil {
		c.Header("Upload-Length", strconv.FormatInt(*u.Size, 10))
	}
	if u.Material != nil {
		c.Header("Content-Location", "/api/v1/materials/"+u.Material.ID)
	}
}

func (h *handler) appendUpload(c *gin.Context) {
	if mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt != chunkType {
		problem(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the chunk as "+chunkType)
		return
	}
	off, err := strconv.ParseInt(c.GetHeader("Upload-Offset"), 10, 64)
	if err != nil || off < 0 {
		writeProblem(c, Problem{Status: http.StatusBadRequest, Code: "invalid_upload_offset", Field: "Upload-Offset",
			Detail: "Upload-Offset must say, as a non-negative integer, where in the document the chunk starts"})
		return
	}
	length := int64(-1)
	if v := c.GetHeader("Upload-Length"); v != "" {
		if length, err = strconv.ParseInt(v, 10, 64); err != nil || length < 0 {
			writeProblem(c, Problem{Status: http.StatusBadRequest, Code: "invalid_upload_length", Field: "Upload-Length",
				Detail: "Upload-Length must be the document's length as a non-negative integer"})
			return
		}
	}
	u, err := h.Vault.AppendUpload(c.Request.Context(), actor(c), c.Param("id"),
		vault.Chunk{Offset: off, Length: c.Request.ContentLength, UploadLength: length, Body: c.Request.Body})
	if err != nil {
		h.fail(c, err)
		return
	}
	uploadHeaders(c, u)
	c.JSON(http.StatusOK, u)
}

func (h *handler) cancelUpload(c *gin.Context) {
	if err := h.Vault.CancelUpload(c.Request.Context(), actor(c), c.Param("id")); err != nil {
		h.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
