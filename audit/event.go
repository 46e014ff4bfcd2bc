package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Outcome says how a request ended.
type Outcome string

// Outcomes of an audited request.
const (
	Allowed Outcome = "allowed"
	Denied  Outcome = "denied"
	Errored Outcome = "error"
)

// Sentinel errors callers branch on.
var (
	// ErrUnavailable means an append (or the log itself) failed: callers
	// must fail closed and answer 503.
	ErrUnavailable = errors.New("audit log unavailable")
	// ErrNotFound means the asked-for event or checkpoint does not exist.
	ErrNotFound = errors.New("audit: not found")
	// ErrInvalid means bad parameters, e.g. a proof size beyond the tree.
	ErrInvalid = errors.New("audit: invalid request")
)

// Event is one audited access.
type Event struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	ActorOrg  string    `json:"actor_org"`
	Action    string    `json:"action"`
	Outcome   Outcome   `json:"outcome"`
	CaseID    string    `json:"case_id"`
	Resource  string    `json:"resource"`
	Purpose   string    `json:"purpose"`
	IP        string    `json:"ip"`
	RequestID string    `json:"request_id"`
	// Detail is a short machine reason, e.g. "declaration_required"; never content.
	Detail string `json:"detail,omitempty"`
	// Hash is the hex SHA-256 of the canonical encoding (which includes the
	// predecessor's hash).
	Hash string `json:"hash"`
}

// zeroHash is the prev_hash of the first event.
const zeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// maxField bounds each string so one event stays a small, bounded line.
const maxField = 2048

// canonicalEvent fixes the key order of the canonical encoding; see the
// package documentation. Do not reorder or rename fields: that would change
// every hash.
type canonicalEvent struct {
	V         int    `json:"v"`
	Seq       int64  `json:"seq"`
	Time      string `json:"time"`
	Actor     string `json:"actor"`
	ActorOrg  string `json:"actor_org"`
	Action    string `json:"action"`
	Outcome   string `json:"outcome"`
	CaseID    string `json:"case_id"`
	Resource  string `json:"resource"`
	Purpose   string `json:"purpose"`
	IP        string `json:"ip"`
	RequestID string `json:"request_id"`
	Detail    string `json:"detail"`
	PrevHash  string `json:"prev_hash"`
}

// Canonical returns the canonical encoding of e chained to prevHash: the
// Merkle leaf and the preimage of e.Hash.
func Canonical(e Event, prevHash string) []byte {
	b, err := json.Marshal(canonicalEvent{
		V: 1, Seq: e.Seq, Time: formatTime(e.Time),
		Actor: e.Actor, ActorOrg: e.ActorOrg, Action: e.Action, Outcome: string(e.Outcome),
		CaseID: e.CaseID, Resource: e.Resource, Purpose: e.Purpose, IP: e.IP,
		RequestID: e.RequestID, Detail: e.Detail, PrevHash: prevHash,
	})
	if err != nil {
		// Only strings and integers: Marshal cannot fail.
		panic(fmt.Sprintf("audit: canonical encoding: %v", err))
	}
	return b
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func hashHex(canonical []byte) string {
	s := sha256.Sum256(canonical)
	return hex.EncodeToString(s[:])
}

// clean makes s storable and re-encodable bit for bit: valid UTF-8, no NUL
// (PostgreSQL text refuses it), bounded length.
func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) > maxField {
		s = s[:maxField]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

func normalize(e Event) (Event, error) {
	switch e.Outcome {
	case Allowed, Denied, Errored:
	default:
		return e, fmt.Errorf("%w: outcome %q", ErrInvalid, e.Outcome)
	}
	e.Actor, e.ActorOrg, e.Action = clean(e.Actor), clean(e.ActorOrg), clean(e.Action)
	e.CaseID, e.Resource, e.Purpose = clean(e.CaseID), clean(e.Resource), clean(e.Purpose)
	e.IP, e.RequestID, e.Detail = clean(e.IP), clean(e.RequestID), clean(e.Detail)
	if e.Action == "" {
		return e, fmt.Errorf("%w: empty action", ErrInvalid)
	}
	return e, nil
}
