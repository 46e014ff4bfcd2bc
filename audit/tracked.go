package audit

import (
	"context"
	"sync/atomic"
)

// recordedKey marks a context whose request wants to know whether an event
// was recorded for it.
type recordedKey struct{}

// Tracked returns ctx marked so that an event appended with it (or with a
// context made from it) is noted, and a func that says whether one was.
// The HTTP layer uses it to audit a refusal that nothing else recorded:
// every refused request is in the log, and none twice.
func Tracked(ctx context.Context) (context.Context, func() bool) {
	var done atomic.Bool
	return context.WithValue(ctx, recordedKey{}, &done), done.Load
}

// MarkRecorded notes on a Tracked ctx that its request's event is in the
// log, for a writer that records it otherwise than by Append (a count of
// repeats written later).
func MarkRecorded(ctx context.Context) {
	if done, ok := ctx.Value(recordedKey{}).(*atomic.Bool); ok {
		done.Store(true)
	}
}
