package api

import (
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// NotReady is what Deps.Ready returns when a dependency is unusable:
// Failed names the dependencies (database, store, keys, audit), which
// /readyz tells the load balancer or operator; Err, the reasons, goes only
// to the log (it may name hosts and paths).
type NotReady struct {
	Failed []string
	Err    error
}

func (e *NotReady) Error() string {
	return "not ready: " + strings.Join(e.Failed, ", ") + ": " + e.Err.Error()
}

func (e *NotReady) Unwrap() error { return e.Err }

// transferRoutes are the routes that move document bytes, and which way.
var transferRoutes = map[string]string{
	"POST /api/v1/cases/:case/materials":               "upload",
	"PATCH /api/v1/uploads/:id":                        "upload",
	"POST /api/v1/reports/attachments":                 "upload",
	"GET /api/v1/materials/:id/content":                "download",
	"GET /api/v1/reports/:id/attachments/:aid/content": "download",
	"GET /api/v1/complaints/:id/evidence":              "download",
	"GET /api/v1/audit/export":                         "download",
}

// ctxProblemCode holds the code of the problem a request was answered with.
const ctxProblemCode = "crvault-problem-code"

// observability holds the metrics of requests beyond counts and latency:
// document bytes moved and how long transfers took, and refusals by code.
type observability struct {
	bytes    *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
	problems *prometheus.CounterVec
}

func newObservability(reg prometheus.Registerer) (*observability, error) {
	o := &observability{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crvault_transfer_bytes_total",
			Help: "Document bytes received (upload) and sent (download), by route."},
			[]string{"direction", "route"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "crvault_transfer_duration_seconds",
			Help:    "Duration of uploads and downloads that succeeded, by route.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 12)}, []string{"direction", "route"}),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crvault_http_problems_total",
			Help: "Requests answered with a problem, by status and stable code (denials: 401, 403, 404, 429; outages: 503)."},
			[]string{"status", "code"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{o.bytes, o.seconds, o.problems} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	for route, dir := range transferRoutes {
		_, path, _ := strings.Cut(route, " ")
		o.bytes.WithLabelValues(dir, path) // exported at 0 from the start
	}
	return o, nil
}

// countingBody counts the request body bytes the handler read.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// wrapBody starts counting the request body of a transfer route.
func (o *observability) wrapBody(c *gin.Context) *countingBody {
	if dir := transferRoutes[c.Request.Method+" "+c.FullPath()]; c.Request.Body == nil || dir != "upload" {
		return nil
	}
	cb := &countingBody{ReadCloser: c.Request.Body}
	c.Request.Body = cb
	return cb
}

// record counts one finished request.
func (o *observability) record(c *gin.Context, route string, status int, body *countingBody, took time.Duration) {
	if code, ok := c.Get(ctxProblemCode); ok {
		o.problems.WithLabelValues(strconv.Itoa(status), code.(string)).Inc()
	}
	dir, ok := transferRoutes[c.Request.Method+" "+route]
	if !ok {
		return
	}
	var n int64
	if dir == "upload" {
		if body != nil {
			n = body.n
		}
	} else if s := c.Writer.Size(); s > 0 && status >= 200 && status < 300 {
		// A problem body is not document bytes.
		n = int64(s)
	}
	if cut, ok := c.Get(ctxCutShort); ok {
		if v, ok := cut.(int64); ok {
			n = v
		}
	}
	o.bytes.WithLabelValues(dir, route).Add(float64(n))
	if status >= 200 && status < 300 {
		o.seconds.WithLabelValues(dir, route).Observe(took.Seconds())
	}
}
