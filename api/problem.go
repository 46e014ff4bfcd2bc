package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault"
)

// statusClientClosedRequest is nginx's 499: the client closed the
// connection before the answer; only the access log ever sees it.
const statusClientClosedRequest = 499

// Problem is an RFC 9457 problem details body. Code is the stable,
// machine-readable reason clients branch on.
type Problem struct {
	Type     string   `json:"type"`
	Title    string   `json:"title"`
	Status   int      `json:"status"`
	Detail   string   `json:"detail,omitempty"`
	Code     string   `json:"code"`
	Instance string   `json:"instance,omitempty"`
	Missing  []string `json:"missing,omitempty"`
	// Allowed is set for illegal_transition only, and then always, an
	// empty list when no action is possible (a concluded case).
	Allowed *[]string `json:"allowed,omitempty"`
	Field   string    `json:"field,omitempty"`
	// Offset is where a resumable upload stands (also in Upload-Offset).
	Offset *int64 `json:"offset,omitempty"`
}

const problemBase = "https://crvault.example/problems/"

func problem(c *gin.Context, status int, code, detail string) {
	writeProblem(c, Problem{Status: status, Code: code, Detail: detail})
}

func writeProblem(c *gin.Context, p Problem) {
	p = hideForm(c, p)
	if p.Status >= 400 && p.Status < 500 {
		// Every refused request is in the audit log before its answer
		// leaves; if it cannot be written, the answer is that.
		if f, ok := c.Get(ctxRefused); ok {
			if err := f.(func(string) error)(p.Code); err != nil {
				p = Problem{Status: http.StatusServiceUnavailable, Code: "audit_unavailable",
					Detail: "the audit log cannot be written; the request was refused"}
			}
		}
	}
	if p.Type == "" {
		p.Type = problemBase + p.Code
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	p.Instance = c.Request.URL.Path
	c.Set(ctxProblemCode, p.Code)
	if p.Status == http.StatusServiceUnavailable && c.Writer.Header().Get("Retry-After") == "" {
		// Every outage is worth retrying; a few seconds lets a restarting
		// database or store come back without a stampede.
		c.Header("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	c.Header("Content-Type", "application/problem+json")
	c.Header("Cache-Control", "no-store")
	c.Status(p.Status)
	c.Abort()
	_ = jsonEncode(c.Writer, p)
}

// hideForm turns a refusal of a request's form (a body, query or header
// that cannot be read or is invalid) on a case or material the caller
// cannot see into the 404 the caller gets for everything in it: what is
// checked first must not tell an unrelated caller anything, not even the
// order of the checks (API.md: no relation to a case, 404 for the case and
// everything in it). 401, 403, 404 and 429 are left as they are: they are
// decided on the caller, not the form. The 404 is recorded under the case
// (vault.RefuseHiddenCase, RefuseHiddenMaterial); if what the route names
// cannot be looked up or the refusal recorded, the answer is that failure,
// never the form's refusal.
func hideForm(c *gin.Context, p Problem) Problem {
	switch p.Status {
	case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
	default:
		return p
	}
	v, _ := c.Get(ctxCaseHidden)
	f, _ := v.(func() (string, error))
	if f == nil {
		return p
	}
	c.Set(ctxCaseHidden, nil) // asked once: the answer below is final
	hidden, err := f()
	if err != nil {
		var ve *vault.Error
		if errors.As(err, &ve) {
			return Problem{Status: statusOf(ve.Kind), Code: ve.Code, Detail: ve.Detail}
		}
		if code, detail := outage(err); code != "" {
			return Problem{Status: http.StatusServiceUnavailable, Code: code, Detail: detail}
		}
		return Problem{Status: http.StatusInternalServerError, Code: "internal", Detail: "the server could not complete the request"}
	}
	if hidden != "" {
		return Problem{Status: http.StatusNotFound, Code: "not_found", Detail: hidden}
	}
	return p
}

// retryAfterSeconds is the Retry-After of every 503.
const retryAfterSeconds = 5

// outage names the part whose failure err reports, or "" when err is not an
// outage. The audit log comes first: its failure is what the request
// refused for, even when the database behind it is the cause.
func outage(err error) (code, detail string) {
	switch {
	case errors.Is(err, audit.ErrUnavailable):
		return "audit_unavailable", "the audit log cannot be written; the request was refused"
	case errors.Is(err, vault.ErrStoreUnavailable):
		return "store_unavailable", "the document store is unavailable; try again later"
	case sqldb.IsUnavailable(err):
		return "database_unavailable", "the database is unavailable; try again later"
	}
	return "", ""
}

// fail maps a domain error to its HTTP answer. This is the one place where
// errors become statuses; unknown errors are logged with the request id and
// answered as a bare 500 so nothing internal leaks. Outages of the audit
// log, the blob store and the database are 503 with Retry-After, never 500.
func (h *handler) fail(c *gin.Context, err error) {
	if c.Request.Context().Err() != nil && errors.Is(err, context.Canceled) {
		// The client went away; nobody reads the answer, and the access
		// log should not count it as a fault of ours.
		c.AbortWithStatus(statusClientClosedRequest)
		return
	}
	var ve *vault.Error
	if errors.As(err, &ve) {
		if ve.Offset != nil {
			c.Header("Upload-Offset", strconv.FormatInt(*ve.Offset, 10))
		}
		status := statusOf(ve.Kind)
		if ve.Code == codeBodyTimeout {
			status = http.StatusRequestTimeout
		}
		p := Problem{Status: status, Code: ve.Code, Detail: ve.Detail, Missing: ve.Missing, Field: ve.Field, Offset: ve.Offset}
		if ve.Code == "illegal_transition" {
			allowed := append([]string{}, ve.Allowed...)
			p.Allowed = &allowed
		}
		writeProblem(c, p)
		return
	}
	var te *access.ThrottledError
	if errors.As(err, &te) {
		secs := int(te.RetryAfter.Seconds() + 0.999)
		if secs < 1 {
			secs = 1
		}
		c.Header("Retry-After", strconv.Itoa(secs))
		problem(c, http.StatusTooManyRequests, "throttled", "too many attempts; try again later")
		return
	}
	var fe *access.FieldError
	var se *access.StateError
	switch {
	case errors.As(err, &fe):
		writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: fe.Code, Detail: fe.Detail, Field: fe.Field})
	case errors.As(err, &se):
		problem(c, http.StatusConflict, se.Code, se.Detail)
	case errors.Is(err, access.ErrTOTPRequired):
		problem(c, http.StatusUnauthorized, "totp_required", "this account signs in with a TOTP code (or a recovery code) in \"totp\"")
	case errors.Is(err, access.ErrTOTPInvalid):
		problem(c, http.StatusUnauthorized, "totp_invalid", "the TOTP code is wrong, expired or already used")
	case errors.Is(err, access.ErrTOTPUnavailable):
		c.Header("Retry-After", "60")
		problem(c, http.StatusServiceUnavailable, "totp_unavailable", "TOTP secrets cannot be opened on this server")
	case errors.Is(err, access.ErrSelfApproval):
		problem(c, http.StatusForbidden, "self_approval", "a second person must approve an account")
	case errors.Is(err, access.ErrSelfAssignment):
		problem(c, http.StatusForbidden, "self_assignment", "nobody assigns themselves; another office admin must")
	case errors.Is(err, access.ErrForbidden):
		problem(c, http.StatusForbidden, "forbidden", "you may not do this")
	case errors.Is(err, access.ErrBadCredentials):
		problem(c, http.StatusUnauthorized, "invalid_credentials", "username or password is wrong")
	case errors.Is(err, access.ErrUnauthenticated), errors.Is(err, access.ErrDisabled):
		problem(c, http.StatusUnauthorized, "unauthenticated", "a valid session token is required")
	case errors.Is(err, access.ErrNotFound):
		problem(c, http.StatusNotFound, "not_found", "not found")
	case errors.Is(err, access.ErrConflict):
		problem(c, http.StatusConflict, "conflict", "that already exists")
	case errors.Is(err, access.ErrInvalid):
		problem(c, http.StatusUnprocessableEntity, "invalid_field", "the request is not valid")
	case errors.Is(err, audit.ErrInvalid):
		problem(c, http.StatusUnprocessableEntity, "invalid_query", "the audit query is not valid")
	case errors.Is(err, audit.ErrNotFound):
		problem(c, http.StatusNotFound, "not_found", "not found")
	default:
		if code, detail := outage(err); code != "" {
			h.log.WarnContext(c.Request.Context(), "request refused: outage", "request_id", requestID(c), "code", code, "err", err)
			problem(c, http.StatusServiceUnavailable, code, detail)
			return
		}
		h.log.ErrorContext(c.Request.Context(), "request failed", "request_id", requestID(c), "err", err)
		problem(c, http.StatusInternalServerError, "internal", "the server could not complete the request; quote the X-Request-ID to the operator")
	}
}

func statusOf(kind error) int {
	switch kind {
	case vault.ErrNotFound:
		return http.StatusNotFound
	case vault.ErrForbidden:
		return http.StatusForbidden
	case vault.ErrInvalid, vault.ErrIncomplete:
		return http.StatusUnprocessableEntity
	case vault.ErrConflict:
		return http.StatusConflict
	case vault.ErrTooLarge:
		return http.StatusRequestEntityTooLarge
	case vault.ErrRange:
		return http.StatusRequestedRangeNotSatisfiable
	case vault.ErrUnavailable:
		return http.StatusServiceUnavailable
	case vault.ErrBadRequest:
		return http.StatusBadRequest
	case vault.ErrUnauthorized:
		return http.StatusUnauthorized
	case vault.ErrDamaged:
		return http.StatusInternalServerError
	}
	return http.StatusInternalServerError
}
