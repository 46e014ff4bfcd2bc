// Package api is crvault's HTTP interface (Gin): routing, authentication,
// request ids, problem+json errors and the OpenAPI document. Handlers decode,
// call one service method and encode; they cannot reach a blob store or a
// key, so the vault's audited road is the only one to plaintext.
package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/api/web"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/supervision"
)

//go:embed openapi.yaml
var openapi []byte

// Deps are the services the API serves.
type Deps struct {
	Vault  *vault.Service
	Access *access.Service
	Audit  *audit.Log
	Logger *slog.Logger
	// Supervision serves complaints, commitments and reports (nil: not served).
	Supervision *supervision.Service
	// Gatherer serves /metrics; Registerer takes the API's own metrics.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	// MetricsToken, when set, serves /metrics on this router to bearers of
	// it; without it /metrics is not served here (see MetricsHandler for a
	// separate listener).
	MetricsToken string
	// Ready reports whether every dependency is usable, for /readyz.
	Ready func(ctx context.Context) error
	// TrustedProxies are the addresses whose X-Forwarded-For is believed.
	TrustedProxies []string
	// Denials writes refusals of unauthenticated requests with repeats
	// counted; nil: New makes one and flushes it in the background (the
	// caller should pass its own, Run it, and Flush it at shutdown).
	Denials *DenialLog
	// AnonymousPerMinute limits requests without a session per client
	// (default DefaultAnonymousPerMinute).
	AnonymousPerMinute int
	// Web, when set, serves the web application at / (api/web); its service
	// fields are filled from these Deps.
	Web *web.Deps
	// OIDC signs in through an identity provider (nil: not configured).
	OIDC *access.OIDC
}

type handler struct {
	Deps
	log     *slog.Logger
	denials *DenialLog
	anon    *rateLimiter
	// metricsHandler serves /metrics once the bearer token checked out.
	metricsHandler http.Handler
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	obs            *observability
}

// New builds the HTTP handler.
func New(d Deps) (http.Handler, error) {
	gin.SetMode(gin.ReleaseMode)
	h := &handler{Deps: d, log: d.Logger, denials: d.Denials, anon: newRateLimiter(d.AnonymousPerMinute)}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.denials == nil {
		h.denials = NewDenialLog(d.Audit, h.log, nil)
		go h.denials.Run(context.Background())
	}
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crvault_http_requests_total", Help: "HTTP requests by route and status."}, []string{"route", "method", "status"})
	h.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "crvault_http_request_duration_seconds", Help: "HTTP request latency by route.", Buckets: prometheus.DefBuckets}, []string{"route", "method"})
	if d.Registerer != nil {
		for _, c := range []prometheus.Collector{h.requests, h.duration} {
			if err := d.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	var err error
	if h.obs, err = newObservability(d.Registerer); err != nil {
		return nil, err
	}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// A path with a slash too many is no route: gin's redirect answered it
	// with an HTML page before any middleware ran, without the security
	// headers or X-Request-ID.
	r.RedirectTrailingSlash = false
	r.ContextWithFallback = true
	if err := r.SetTrustedProxies(d.TrustedProxies); err != nil {
		return nil, err
	}
	r.Use(h.requestID, securityHeaders, h.recover, h.observe)
	r.NoRoute(func(c *gin.Context) { problem(c, http.StatusNotFound, "no_route", "no such endpoint") })
	r.NoMethod(func(c *gin.Context) {
		problem(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this endpoint")
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", h.readyz)
	if d.Gatherer != nil && d.MetricsToken != "" {
		h.metricsHandler = promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{})
		r.GET("/metrics", h.metrics)
	}

	v1 := r.Group("/api/v1", h.limitAnonymous)
	// The routes that take no session: a token sent to them is not looked
	// at, so it must not spare the request the anonymous limit either.
	public := v1.Group("", h.limitIgnoringToken)
	public.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openapi) })
	public.POST("/sessions", h.login)
	public.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	public.GET("/readyz", h.readyz)

	auth := v1.Group("", h.authenticate, h.plainParams, h.caseScope)
	auth.DELETE("/sessions/current", h.logout)
	auth.GET("/me", h.me)
	auth.POST("/me/totp", h.startTOTP)
	auth.POST("/me/totp/confirm", h.confirmTOTP)
	auth.DELETE("/me/totp", h.removeTOTP)
	auth.POST("/me/password", h.changePassword)
	auth.POST("/orgs", h.createOrg)
	auth.POST("/users", h.createUser)
	auth.GET("/users", h.listUsers)
	auth.POST("/users/:id/disable", h.disableUser)
	auth.POST("/users/:id/approve", h.approveUser)

	auth.POST("/cases", h.createCase)
	auth.GET("/cases", h.listCases)
	auth.GET("/cases/:case", h.getCase)
	auth.POST("/cases/:case/submit", h.submitCase)
	auth.POST("/cases/:case/materials", h.upload)
	auth.GET("/cases/:case/materials", h.listMaterials)
	auth.GET("/materials/:id", h.getMaterial)
	auth.GET("/materials/:id/content", h.content)
	auth.POST("/cases/:case/assignments", h.assign)
	auth.GET("/cases/:case/assignments", h.listAssignments)
	auth.DELETE("/cases/:case/assignments/:id", h.revoke)
	auth.POST("/cases/:case/declarations", h.declare)
	h.uploadRoutes(auth)

	auth.GET("/audit/events", h.auditEvents)
	h.auditRoutes(auth, public)
	h.workflowRoutes(auth, public)
	h.supervisionRoutes(auth, public)
	h.consentRoutes(auth)
	if err := h.webRoutes(r); err != nil {
		return nil, err
	}
	h.retentionRoutes(auth)
	h.oidcRoutes(public)
	return r, nil
}

var saneRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

const ctxRequestID = "crvault.request_id"

// requestID echoes a sane client id or makes one; it is in every response
// and every audit event.
func (h *handler) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !saneRequestID.MatchString(id) {
		id = newRequestID()
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	// Whatever answers the request notes whether its event is in the
	// audit log; a refusal that nothing recorded is recorded as it is
	// written (writeProblem, refused).
	ctx, recorded := audit.Tracked(c.Request.Context())
	c.Request = c.Request.WithContext(ctx)
	c.Set(ctxRefused, func(code string) error { return h.refused(c, recorded, code) })
	c.Next()
}

// refusalRecordTimeout bounds the wait for a refusal's audit record.
const refusalRecordTimeout = 10 * time.Second

// ctxRefused holds the func that audits a refusal no one else recorded.
const ctxRefused = "crvault-refused"

// refused records a 4xx answer with code as request.refused, unless an
// event of the request is in the log already (the refusal's own, as most
// are, or a denial counted as a repeat). Those caught here are refused on
// their form: a body that is not JSON, a wrong field, an unknown route or
// method, a conflict. They go through the DenialLog, so that a client
// sending the same bad request again and again is counted, not written
// each time.
func (h *handler) refused(c *gin.Context, recorded func() bool, code string) error {
	if recorded() {
		return nil
	}
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	p := principal(c)
	// Recorded even when the request's context is over (a body that
	// stopped arriving, a client gone), within a bound of its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), refusalRecordTimeout)
	defer cancel()
	return h.denials.Record(ctx, audit.Event{Actor: p.User.ID, ActorOrg: p.User.OrgID, Action: "request.refused",
		Outcome: audit.Denied, Resource: c.Request.Method + " " + route, IP: auditIP(c), RequestID: requestID(c), Detail: code})
}

func requestID(c *gin.Context) string { return c.GetString(ctxRequestID) }

// recover turns a panic into a bare 500: no stack trace leaves the server,
// and the log gets the panic value only (never a request body).
func (h *handler) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.ErrorContext(c.Request.Context(), "handler panicked", "request_id", requestID(c), "panic", strings.ToValidUTF8(strings.TrimSpace(slogValue(v)), "?"))
			if !c.Writer.Written() {
				problem(c, http.StatusInternalServerError, "internal", "the server could not complete the request")
			}
		}
	}()
	c.Next()
}

func slogValue(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return "non-error panic"
}

// ctxCutShort holds the bytes sent of a response body that was cut short.
const ctxCutShort = "crvault.cut_short"

// observe logs one structured line per request (no bodies, no tokens) and
// counts it, also for a response aborted mid-body (http.ErrAbortHandler),
// which it lets on its way afterwards.
func (h *handler) observe(c *gin.Context) {
	start := time.Now()
	body := h.obs.wrapBody(c)
	defer func() {
		if v := recover(); v != nil {
			h.logRequest(c, start, v, body)
			panic(v)
		}
	}()
	c.Next()
	h.logRequest(c, start, nil, body)
}

// logRequest writes the access log line; panicked is what the handler
// panicked with, if it did.
func (h *handler) logRequest(c *gin.Context, start time.Time, panicked any, body *countingBody) {
	aborted := panicked == http.ErrAbortHandler
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	if panicked != nil && !aborted && !c.Writer.Written() {
		status = http.StatusInternalServerError // what recover is about to answer
	}
	h.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
	h.duration.WithLabelValues(route, c.Request.Method).Observe(time.Since(start).Seconds())
	h.obs.record(c, route, status, body, time.Since(start))
	attrs := []any{"method", c.Request.Method, "route", route, "status", status,
		"bytes", c.Writer.Size(), "ms", time.Since(start).Milliseconds(), "request_id", requestID(c), "user", actorID(c)}
	if aborted {
		// The status line went out, the rest of the body did not.
		attrs = append(attrs, "aborted", true)
		if n, ok := c.Get(ctxCutShort); ok {
			attrs = append(attrs, "body_sent", n)
		}
		h.log.WarnContext(c.Request.Context(), "http", attrs...)
		return
	}
	h.log.InfoContext(c.Request.Context(), "http", attrs...)
}

func (h *handler) readyz(c *gin.Context) {
	if h.Ready == nil {
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
	defer cancel()
	if err := h.Ready(ctx); err != nil {
		h.log.WarnContext(ctx, "not ready", "err", err)
		detail := "a dependency is not available"
		var nr *NotReady
		if errors.As(err, &nr) {
			// What failed, never why: the reasons are in the log.
			detail = "not available: " + strings.Join(nr.Failed, ", ")
		}
		problem(c, http.StatusServiceUnavailable, "not_ready", detail)
		return
	}
	body := gin.H{"status": "ready"}
	if cal, ok := h.calendarReadiness(ctx); ok {
		body["calendar"] = cal
	}
	c.JSON(http.StatusOK, body)
}

const maxJSONBody = 1 << 20

// decode reads one strict JSON object: unknown fields, wrong types, trailing
// data, oversized bodies, text that is not UTF-8 or holds NUL (nulField),
// and a key given twice are refused with a problem, and false returned.
func decode(c *gin.Context, v any) bool {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			problem(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json")
			return false
		}
	}
	// Read whole (a JSON body is at most 1 MiB, never a document) so that
	// it can be checked before it is decoded.
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxJSONBody))
	if err != nil {
		jsonProblem(c, err)
		return false
	}
	if !utf8.Valid(raw) {
		// The decoder would store U+FFFD in place of what was sent.
		problem(c, http.StatusBadRequest, "invalid_json", "the body is not UTF-8")
		return false
	}
	if string(bytes.TrimSpace(raw)) == "null" {
		// The decoder takes null for an empty object.
		problem(c, http.StatusBadRequest, "invalid_json", "the body must be a JSON object, not null")
		return false
	}
	if key, dup := duplicateKey(raw); dup {
		// The decoder keeps the last: {"conflict":true,"conflict":false}
		// would read as no conflict, whatever a reviewer of the request
		// saw first.
		writeProblem(c, Problem{Status: http.StatusBadRequest, Code: "invalid_json", Field: key,
			Detail: "field " + strconv.Quote(key) + " is given more than once"})
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		jsonProblem(c, err)
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		problem(c, http.StatusBadRequest, "invalid_json", "the body must hold exactly one JSON object")
		return false
	}
	if field, found := nulField(v); found {
		writeProblem(c, Problem{Status: http.StatusBadRequest, Code: "invalid_text", Field: field,
			Detail: "field " + strconv.Quote(field) + " holds a NUL character, which no text can"})
		return false
	}
	return true
}

// duplicateKey finds a key given twice in one object of a JSON text
// (compared as the decoder matches them, without regard to case). Text
// that is not valid JSON has none: the decoder says what is wrong with it.
func duplicateKey(raw []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next token in an object is a key
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		top := len(stack) - 1
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if top >= 0 && stack[top].object {
					stack[top].key = true // this value done, a key next
				}
				stack = append(stack, frame{object: d == '{', key: d == '{', keys: map[string]bool{}})
			default:
				stack = stack[:top]
			}
			continue
		}
		if top < 0 || !stack[top].object {
			continue
		}
		if stack[top].key {
			k := strings.ToLower(tok.(string))
			if stack[top].keys[k] {
				return tok.(string), true
			}
			stack[top].keys[k] = true
			stack[top].key = false
		} else {
			stack[top].key = true
		}
	}
}

func jsonProblem(c *gin.Context, err error) {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		problem(c, http.StatusRequestEntityTooLarge, "too_large", "JSON bodies are limited to 1 MiB")
	case isBodyTimeout(err):
		problem(c, http.StatusRequestTimeout, codeBodyTimeout, "the request body stopped arriving")
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		problem(c, http.StatusBadRequest, "invalid_json", "the body is not valid JSON")
	case errors.Is(err, io.EOF):
		problem(c, http.StatusBadRequest, "invalid_json", "the body is empty; a JSON object is required")
	case errors.As(err, &typ):
		writeProblem(c, Problem{Status: http.StatusBadRequest, Code: "invalid_type", Field: typ.Field,
			Detail: "field " + strconv.Quote(typ.Field) + " must be " + typ.Type.String()})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		writeProblem(c, Problem{Status: http.StatusBadRequest, Code: "unknown_field", Field: field, Detail: "unknown field " + strconv.Quote(field)})
	default:
		problem(c, http.StatusBadRequest, "invalid_json", "the body is not a valid JSON object")
	}
}

func jsonEncode(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// plainParams answers 404 for a path whose identifiers cannot name
// anything (no identifier crvault issues is other than Storable text),
// before they reach a query that would fail on them. Like every 404 on a
// protected resource it is audited as denied, as request.invalid_path with
// the path percent-encoded, since the identifier itself cannot be stored.
func (h *handler) plainParams(c *gin.Context) {
	for _, p := range c.Params {
		if !sqldb.Storable(p.Value) {
			if h.record(c, "request.invalid_path", audit.Denied, c.Request.Method+" "+c.Request.URL.EscapedPath(), "not_found") {
				problem(c, http.StatusNotFound, "not_found", "no such "+p.Key)
			}
			c.Abort()
			return
		}
	}
}

// ctxCaseHidden holds, on a route under /cases/{case}, /materials/{id} or
// /uploads/{id},
// the func that says whether what the route names is hidden from the
// caller: "" if not, else the 404's detail (writeProblem, hideForm).
const ctxCaseHidden = "crvault.case_hidden"

// caseScope lets writeProblem ask, on a route under /cases/{case},
// /materials/{id} or /uploads/{id}, whether the caller may see what it names. Asked only
// when a request is refused on its form, so a valid request costs nothing
// more.
func (h *handler) caseScope(c *gin.Context) {
	var refuse func(ctx context.Context, a vault.Actor, id, resource string) (bool, error)
	var id, detail string
	switch {
	case c.Param("case") != "":
		refuse, id, detail = h.Vault.RefuseHiddenCase, c.Param("case"), "no such case"
	case strings.HasPrefix(c.FullPath(), "/api/v1/materials/:id"):
		refuse, id, detail = h.Vault.RefuseHiddenMaterial, c.Param("id"), "no such material"
	case strings.HasPrefix(c.FullPath(), "/api/v1/uploads/:id"):
		refuse, id, detail = h.Vault.RefuseHiddenUpload, c.Param("id"), "no such upload"
	default:
		return
	}
	c.Set(ctxCaseHidden, func() (string, error) {
		// Answered, and recorded, even when the request's context is over
		// (a body that stopped arriving), within a bound of its own, as
		// refused does.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), refusalRecordTimeout)
		defer cancel()
		hidden, err := refuse(ctx, actor(c), id, c.Request.Method+" "+c.FullPath())
		var ve *vault.Error
		if code, _ := outage(err); err != nil && code == "" && !errors.As(err, &ve) {
			h.log.ErrorContext(c.Request.Context(), "visibility check failed", "request_id", requestID(c), "err", err)
		}
		if !hidden {
			return "", err
		}
		return detail, err
	})
}

// listParams reads ?limit= (default 50, max 500) and ?cursor=, and refuses
// a query whose filters are not Storable text: a list's filters go to the
// database as they are.
func listParams(c *gin.Context) (int, string, bool) {
	if !plainQuery(c) {
		return 0, "", false
	}
	limit := 50
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: "invalid_limit", Field: "limit", Detail: "limit must be an integer from 1 to 500"})
			return 0, "", false
		}
		limit = n
	}
	cursor := c.Query("cursor")
	if len(cursor) > 256 {
		writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: "invalid_cursor", Field: "cursor", Detail: "cursor is not one this server issued"})
		return 0, "", false
	}
	return limit, cursor, true
}

// plainQuery answers 422 invalid_field, and returns false, when a query
// parameter's name or value is not Storable text.
func plainQuery(c *gin.Context) bool {
	for name, values := range c.Request.URL.Query() {
		bad := !sqldb.Storable(name)
		for _, v := range values {
			bad = bad || !sqldb.Storable(v)
		}
		if bad {
			field := strings.ToValidUTF8(strings.ReplaceAll(name, "\x00", ""), "")
			writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: field,
				Detail: "query parameter " + strconv.Quote(field) + " must be UTF-8 text without NUL characters"})
			return false
		}
	}
	return true
}
