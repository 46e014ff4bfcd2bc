package api

import (
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault"
)

func (h *handler) createCase(c *gin.Context) {
	var req vault.NewCase
	if !decode(c, &req) {
		return
	}
	cs, err := h.Vault.CreateCase(c.Request.Context(), actor(c), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, cs)
}

func (h *handler) listCases(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	page, err := h.Vault.ListCases(c.Request.Context(), actor(c), c.Query("status"), limit, cursor)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (h *handler) getCase(c *gin.Context) {
	cs, err := h.Vault.GetCase(c.Request.Context(), actor(c), c.Param("case"))
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, cs)
}

func (h *handler) submitCase(c *gin.Context) {
	cs, err := h.Vault.Submit(c.Request.Context(), actor(c), c.Param("case"))
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, cs)
}

// bodyReader marks read errors as the client's, so a broken upload is a 400
// rather than a server fault.
type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return n, &vault.Error{Kind: vault.ErrTooLarge, Code: "too_large", Detail: "the body exceeds the upload limit"}
		}
		if isBodyTimeout(err) {
			return n, &vault.Error{Kind: vault.ErrBadRequest, Code: codeBodyTimeout, Detail: "the request body stopped arriving"}
		}
		err = &vault.BodyError{Err: err}
	}
	return n, err
}

// upload takes either multipart/form-data (field "kind" first, then "file")
// or a raw body with ?kind=&filename=. Both stream: mime/multipart.Reader
// hands the file part over as it arrives, never spilling it to disk.
func (h *handler) upload(c *gin.Context) {
	ctx := c.Request.Context()
	caseID := c.Param("case")
	// A little slack over the limit covers multipart framing; the vault
	// enforces the exact plaintext limit.
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, h.Vault.MaxMaterialSize()+1<<20)
	mt, params, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	var up vault.Upload
	if mt == "multipart/form-data" {
		if params["boundary"] == "" {
			problem(c, http.StatusBadRequest, "malformed_multipart", "multipart/form-data needs a boundary")
			return
		}
		mr := multipart.NewReader(c.Request.Body, params["boundary"])
		kindPart, err := mr.NextPart()
		if err != nil || kindPart.FormName() != "kind" {
			problem(c, http.StatusBadRequest, "malformed_multipart", `the first part must be the field "kind", followed by "file"`)
			return
		}
		kind, err := io.ReadAll(io.LimitReader(kindPart, 65))
		if err != nil || len(kind) > 64 {
			problem(c, http.StatusBadRequest, "malformed_multipart", `the "kind" field is not readable`)
			return
		}
		filePart, err := mr.NextPart()
		if err != nil || filePart.FormName() != "file" {
			problem(c, http.StatusBadRequest, "malformed_multipart", `the second part must be the field "file"`)
			return
		}
		up = vault.Upload{Kind: string(kind), Filename: filePart.FileName(), ContentType: filePart.Header.Get("Content-Type"),
			Body: bodyReader{filePart}, Size: -1}
	} else {
		up = vault.Upload{Kind: c.Query("kind"), Filename: c.Query("filename"), ContentType: c.GetHeader("Content-Type"),
			Body: bodyReader{c.Request.Body}, Size: c.Request.ContentLength}
	}
	// The workflow's part: which requested supplementary item this answers,
	// and the uploader's state-secrets flag (both optional query parameters).
	if v := c.Query("item"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: "invalid_item", Field: "item", Detail: "item must be a positive integer"})
			return
		}
		up.Item = n
	}
	if v := c.Query("classified"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: "classified", Detail: "classified must be true or false"})
			return
		}
		up.Classified = b
	}
	m, err := h.Vault.Upload(ctx, actor(c), caseID, up)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Header("Location", "/api/v1/materials/"+m.ID)
	c.JSON(http.StatusCreated, m)
}

func (h *handler) listMaterials(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	page, err := h.Vault.MaterialsPage(c.Request.Context(), actor(c), c.Param("case"), limit, cursor)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (h *handler) getMaterial(c *gin.Context) {
	m, err := h.Vault.GetMaterial(c.Request.Context(), actor(c), c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, m)
}

// materialETag is the strong entity tag of a material's content. A
// material never changes under its id and its SHA-256 is already sent as
// X-Content-SHA256, so the tag discloses nothing new.
func materialETag(sha256 string) string { return `"sha256-` + sha256 + `"` }

// requestedRange decides which part of a material a GET asks for: nil for
// the whole document. Range is a singleton field, so a request with two is
// ignored, as is one whose If-Range does not name this material
// (RFC 9110 §13.1.5, §14.2).
func requestedRange(h http.Header, t vault.RangeTarget) (*vault.Range, error) {
	ranges := h.Values("Range")
	if len(ranges) != 1 {
		return nil, nil
	}
	if cond := h.Values("If-Range"); len(cond) > 0 && (len(cond) != 1 || !ifRangeHolds(cond[0], t)) {
		return nil, nil
	}
	r, ok, err := parseRange(ranges[0], t.Size)
	if !ok {
		return nil, nil
	}
	return r, err
}

// ifRangeHolds evaluates an If-Range validator. An entity tag matches only
// the one this server issues, compared strongly (a weak tag never does). A
// date matches only if it is exactly the Last-Modified sent: that date is a
// strong validator here because a material never changes after upload.
func ifRangeHolds(v string, t vault.RangeTarget) bool {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "W/") {
		return v == materialETag(t.SHA256)
	}
	d, err := http.ParseTime(v)
	return err == nil && d.Equal(t.UploadedAt.Truncate(time.Second))
}

// parseRange reads a single "bytes=" range against size. ok=false means the
// header is not a single well-formed byte range and is ignored (RFC 9110
// §14.2); err is ErrRange when it cannot be satisfied.
func parseRange(header string, size int64) (r *vault.Range, ok bool, err error) {
	unit, spec, found := strings.Cut(header, "=")
	if !found || !strings.EqualFold(unit, "bytes") || strings.Contains(spec, ",") {
		return nil, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return nil, false, nil
	}
	unsat := &vault.Error{Kind: vault.ErrRange, Code: "range_not_satisfiable", Detail: fmt.Sprintf("the document has %d bytes", size)}
	if first == "" { // suffix: the last N bytes
		n, ok := rangeDigits(last)
		if !ok {
			return nil, false, nil
		}
		if n == 0 || size == 0 {
			return nil, true, unsat
		}
		n = min(n, size)
		return &vault.Range{Start: size - n, Length: n}, true, nil
	}
	start, ok := rangeDigits(first)
	if !ok {
		return nil, false, nil
	}
	end := int64(math.MaxInt64)
	if last != "" {
		if end, ok = rangeDigits(last); !ok || end < start {
			return nil, false, nil
		}
	}
	if start >= size {
		return nil, true, unsat
	}
	end = min(end, size-1)
	return &vault.Range{Start: start, Length: end - start + 1}, true, nil
}

// rangeDigits reads a range position: 1*DIGIT, no sign or space. A number
// too large for int64 saturates at MaxInt64 rather than failing: it is past
// the end of any document, which is what it says.
func rangeDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if d := int64(c - '0'); n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64
		} else {
			n = n*10 + d
		}
	}
	return n, true
}

func (h *handler) content(c *gin.Context) {
	var size int64 = -1
	rng := func(t vault.RangeTarget) (*vault.Range, error) {
		size = t.Size
		return requestedRange(c.Request.Header, t)
	}
	ct, err := h.Vault.OpenContent(c.Request.Context(), actor(c), c.Param("id"), rng)
	if err != nil {
		if errors.Is(err, vault.ErrRange) && size >= 0 {
			c.Header("Content-Range", fmt.Sprintf("bytes */%d", size))
		}
		h.fail(c, err)
		return
	}
	defer ct.Close()
	m := ct.Material
	hd := c.Writer.Header()
	hd.Set("Content-Type", m.ContentType)
	hd.Set("Content-Disposition", contentDisposition(m.Filename))
	hd.Set("Content-Length", strconv.FormatInt(ct.Length, 10))
	hd.Set("X-Content-SHA256", m.SHA256)
	hd.Set("Accept-Ranges", "bytes")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Last-Modified", m.UploadedAt.Format(http.TimeFormat))
	hd.Set("ETag", materialETag(m.SHA256))
	status := http.StatusOK
	if ct.Partial {
		status = http.StatusPartialContent
		hd.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", ct.Start, ct.Start+ct.Length-1, m.Size))
	}
	c.Status(status)
	if n, err := io.Copy(c.Writer, ct.Body); err != nil {
		// The status is gone; the short body (against Content-Length)
		// tells the client. The audit log gets an error event with the
		// count, never content, and the connection is cut so no client
		// can take the short body for the document.
		ct.CutShort(c.Request.Context(), n)
		c.Set(ctxCutShort, n)
		panic(http.ErrAbortHandler)
	}
}

// contentDisposition builds an RFC 6266 header: an ASCII fallback and the
// exact UTF-8 name in filename*.
func contentDisposition(name string) string {
	var ascii strings.Builder
	for _, r := range name {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' {
			ascii.WriteByte('_')
		} else {
			ascii.WriteRune(r)
		}
	}
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, ascii.String(), strings.ReplaceAll(url.PathEscape(name), "+", "%2B"))
}

func (h *handler) assign(c *gin.Context) {
	var req vault.NewAssignment
	if !decode(c, &req) {
		return
	}
	a, err := h.Vault.Assign(c.Request.Context(), actor(c), c.Param("case"), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, a)
}

func (h *handler) listAssignments(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	page, err := h.Vault.AssignmentsPage(c.Request.Context(), actor(c), c.Param("case"), limit, cursor)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (h *handler) revoke(c *gin.Context) {
	if err := h.Vault.Revoke(c.Request.Context(), actor(c), c.Param("case"), c.Param("id")); err != nil {
		h.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (h *handler) declare(c *gin.Context) {
	var req vault.NewDeclaration
	if !decode(c, &req) {
		return
	}
	d, err := h.Vault.Declare(c.Request.Context(), actor(c), c.Param("case"), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, d)
}

func (h *handler) auditEvents(c *gin.Context) {
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	f := audit.Filter{CaseID: c.Query("case"), Actor: c.Query("actor"), Action: c.Query("action"), Outcome: audit.Outcome(c.Query("outcome")), Limit: limit, Cursor: cursor}
	switch f.Outcome {
	case "", audit.Allowed, audit.Denied, audit.Errored:
	default:
		writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: "outcome", Detail: `outcome must be "allowed", "denied" or "error"`})
		return
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := c.Query(p.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: p.name, Detail: p.name + " must be an RFC 3339 time"})
				return
			}
			*p.dst = t.UTC()
		}
	}
	items, next, err := h.Vault.AuditEvents(c.Request.Context(), actor(c), f)
	if err != nil {
		h.fail(c, err)
		return
	}
	if items == nil {
		items = []audit.Event{}
	}
	c.JSON(http.StatusOK, vault.Page[audit.Event]{Items: items, NextCursor: next})
}
