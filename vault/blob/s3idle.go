package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// defaultReadIdle is how long a read of an object waits for the next byte
// of the store's answer before it gives up on that answer.
const defaultReadIdle = 30 * time.Second

// errStalled says the store kept a GET's connection open but sent nothing
// of its body for the read idle timeout.
var errStalled = errors.New("the store sent no byte of the object")

// errNoAnswer says the store took a request but sent no answer to it within
// the store's bound on calls that move no blob bytes.
var errNoAnswer = errors.New("the store did not answer")

// idleBody bounds every wait for bytes of a GET's response body. The
// transport bounds each phase of a request except the body (newTransport),
// and the whole body cannot have a deadline, since a large blob may rightly
// stream for a long time; but a store (or a middlebox) that holds the
// connection open and sends nothing would otherwise hold the read, and the
// client's request with it, for as long as the socket lives. When one Read
// waits longer than idle, the stream's own context is cancelled, which
// closes its connection and ends the Read, and the Read fails with
// ErrUnavailable. The timer runs only while a Read waits on the store: a
// consumer that pauses between reads (a slow client) is not a stalled store.
//
// One goroutine reads a body at a time (s3Object hands each stream to one
// ReadAt), so stalled needs no lock; the timer's function only cancels.
type idleBody struct {
	body    io.ReadCloser
	idle    time.Duration
	timer   *time.Timer
	cancel  context.CancelCauseFunc
	stalled bool
}

// newIdleBody wraps body, whose request was made under a context that
// cancel ends.
func newIdleBody(body io.ReadCloser, idle time.Duration, cancel context.CancelCauseFunc) *idleBody {
	b := &idleBody{body: body, idle: idle, cancel: cancel}
	b.timer = time.AfterFunc(idle, func() { cancel(errStalled) })
	b.timer.Stop()
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.stalled {
		return 0, b.stallErr()
	}
	b.timer.Reset(b.idle)
	n, err := b.body.Read(p)
	if !b.timer.Stop() {
		// The timer fired: the connection is being torn down under this
		// read, whatever it returned, so the stream cannot go on.
		b.stalled = true
		return n, b.stallErr()
	}
	return n, err
}

func (b *idleBody) stallErr() error {
	return unavailable(fmt.Errorf("%w for %v", errStalled, b.idle))
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.body.Close()
	b.cancel(nil)
	return err
}
