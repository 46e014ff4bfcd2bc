package vault

import (
	"errors"
	"fmt"
)

// Sentinel kinds callers branch on; api/ maps each to one HTTP status.
var (
	ErrNotFound     = errors.New("not found")
	ErrForbidden    = errors.New("forbidden")
	ErrInvalid      = errors.New("invalid input")
	ErrConflict     = errors.New("conflict")
	ErrTooLarge     = errors.New("too large")
	ErrRange        = errors.New("range not satisfiable")
	ErrUnavailable  = errors.New("unavailable") // the audit log or a store refused; fail closed
	ErrIncomplete   = errors.New("materials incomplete")
	ErrBadRequest   = errors.New("bad request") // malformed body or framing
	ErrUnauthorized = errors.New("unauthenticated")
	// ErrDamaged: what is stored for a material is missing or does not
	// authenticate (lost or altered outside crvault); only a restore helps.
	ErrDamaged = errors.New("stored material damaged")
)

// Error carries a stable machine code and safe detail for one failure. It
// never holds document content, key material or SQL.
type Error struct {
	Kind    error  // one of the sentinels above
	Code    string // stable snake_case code, e.g. "declaration_required"
	Detail  string
	Missing []string // materials_incomplete
	Allowed []string // illegal_transition
	Field   string   // invalid input
	// Offset is where a resumable upload stands, on the errors that should
	// tell the client where to continue.
	Offset *int64
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s: %s", e.Code, e.Detail)
	}
	return e.Code
}

func (e *Error) Unwrap() error { return e.Kind }

func fail(kind error, code, detail string) *Error {
	return &Error{Kind: kind, Code: code, Detail: detail}
}

func invalid(field, code, detail string) *Error {
	return &Error{Kind: ErrInvalid, Code: code, Detail: detail, Field: field}
}
