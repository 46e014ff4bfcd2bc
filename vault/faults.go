package vault

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/crypt"
)

// ErrStoreUnavailable is found (errors.Is) in every error of the vault, and
// of services built on it, that a failure of the blob store itself caused:
// unreachable, failing or full. The request may succeed later unchanged.
var ErrStoreUnavailable = blob.ErrUnavailable

// faultPoint names a moment where a test may make the vault fail as a
// crashing process would, to check what a restart recovers.
type faultPoint int

const (
	// faultAfterDecision: a decision (an event, or a proposal's approval
	// with its case, and its pending notice marker) has committed; its
	// written notice is not yet written.
	faultAfterDecision faultPoint = iota + 1
)

// fault runs the test hook at p, if any. Tests set Service.faults (in
// package only); a hook that panics stops the request right there, like a
// process killed at that point, with nothing after it run.
func (s *Service) fault(p faultPoint) {
	if s.faults != nil {
		s.faults(p)
	}
}

// failureCode is the machine reason an "error" audit event gives for cause.
func failureCode(cause error) string {
	var ve *Error
	switch {
	case errors.As(cause, &ve):
		return ve.Code
	case errors.Is(cause, ErrStoreUnavailable):
		return "store_unavailable"
	case errors.Is(cause, audit.ErrUnavailable):
		return "audit_unavailable"
	case sqldb.IsUnavailable(cause):
		return "database_unavailable"
	case errors.Is(cause, crypt.ErrCorrupt):
		return "corrupt"
	}
	return "internal"
}

// trackedBody remembers the first failure of a content stream, so a
// transfer cut short can say whether the source or the client failed.
type trackedBody struct {
	r   io.Reader
	err error
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// WriteTo lets io.Copy skip its own 32 KiB buffer when the body can write
// itself (a small document in memory). Only the body's own failures are
// kept: a failing w is the client's.
func (b *trackedBody) WriteTo(w io.Writer) (int64, error) {
	wt, ok := b.r.(io.WriterTo)
	if !ok {
		return io.Copy(w, struct{ io.Reader }{b})
	}
	fw := &failedWriter{w: w}
	n, err := wt.WriteTo(fw)
	if err != nil && fw.err == nil && b.err == nil {
		b.err = err
	}
	return n, err
}

type failedWriter struct {
	w   io.Writer
	err error
}

func (f *failedWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err != nil {
		f.err = err
	}
	return n, err
}

// CutShort records that the transfer of c ended after sent bytes of Length,
// after its material.read event was written: an "error" event with the same
// resource, saying why (the store failed, the data did not authenticate,
// or, if reading did not fail, the client went away) and how many bytes the
// client got. Best effort: the response is already under way.
func (c *Content) CutShort(ctx context.Context, sent int64) {
	if c.cutShort != nil {
		c.cutShort(ctx, sent)
	}
}

func (s *Service) cutShortRecorder(a Actor, caseID, resource, purpose string, c *Content) func(context.Context, int64) {
	return func(ctx context.Context, sent int64) {
		// Reading fails too once the client is gone (the request's context
		// ends, and the store's stream with it): that is not the store's fault.
		code := "client_gone"
		if c.tracked.err != nil && ctx.Err() == nil {
			code = failureCode(c.tracked.err)
		}
		s.log.WarnContext(ctx, "content transfer cut short", "request_id", a.RequestID, "material", c.Material.ID,
			"sent", sent, "of", c.Length, "reason", code, "err", c.tracked.err)
		if err := s.record(context.WithoutCancel(ctx), a, "material.read", audit.Errored, caseID, resource, purpose,
			fmt.Sprintf("%s bytes_sent=%d", code, sent)); err != nil {
			s.log.ErrorContext(ctx, "cut-short transfer not recorded", "request_id", a.RequestID, "material", c.Material.ID)
		}
	}
}
