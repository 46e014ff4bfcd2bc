package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
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
	// Detail is a short machine reason, e.g. "declaration_required", or
	// for a list of confidential records the ids it returned
	// ("ids=a,b,..."); never content.
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
	// Written by hand rather than with json.Marshal: verification encodes
	// every event of the log, and reflection was a large share of that.
	// The bytes are exactly json.Marshal(canonicalEvent{...}); a property
	// test and a fuzz test hold the two together.
	b := make([]byte, 0, 256+len(e.Resource)+len(e.Purpose)+len(e.Detail))
	b = append(b, `{"v":1,"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	for _, f := range [...]struct{ key, val string }{
		{`,"time":`, formatTime(e.Time)}, {`,"actor":`, e.Actor}, {`,"actor_org":`, e.ActorOrg},
		{`,"action":`, e.Action}, {`,"outcome":`, string(e.Outcome)}, {`,"case_id":`, e.CaseID},
		{`,"resource":`, e.Resource}, {`,"purpose":`, e.Purpose}, {`,"ip":`, e.IP},
		{`,"request_id":`, e.RequestID}, {`,"detail":`, e.Detail}, {`,"prev_hash":`, prevHash},
	} {
		b = append(b, f.key...)
		b = appendJSONString(b, f.val)
	}
	return append(b, '}')
}

// appendJSONString appends s quoted exactly as encoding/json does with its
// default HTML escaping: <, > and & as \u003c \u003e \u0026, U+2028 and
// U+2029 escaped, control characters as \n \r \t \b \f or \u00XX, and invalid
// UTF-8 as \ufffd.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
