package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptrace"
	"sync"
	"time"
)

// defaultWriteIdle is how long an upload request waits for the store to take
// the bytes last handed to it, or to answer once it has them all.
const defaultWriteIdle = 30 * time.Second

// errWriteStalled says the store kept an upload's connection open but neither
// took its bytes nor answered for the write idle timeout.
var errWriteStalled = errors.New("the store took no byte of the upload and gave no answer")

// writeWatch is the write-side twin of idleBody. The transport bounds the
// wait for a response's headers only once the whole request body is
// written (ResponseHeaderTimeout), so a store or middlebox that keeps the
// connection open and stops reading (a zero window) holds the write, the
// Put, and a multipart upload's part buffers, for as long as the caller's
// context lives; and a part whose answer never comes is retried by minio-go
// up to ten times, two minutes each.
//
// The watch is the request body given to minio-go. Its timer runs from the
// moment a Read hands bytes to the transport until the transport asks for
// more (it has written what it took) or the store's answer begins; if it
// fires, the request's own context is cancelled, which closes the
// connection, and the request is not retried (minio-go does not retry a
// cancelled context). The timer is stopped while Read waits on the source,
// so a slow client uploading through vaultd is never taken for a stalled
// store. The wait for the answer after the last byte counts too: a store
// that has every byte and says nothing for the idle bound is as stalled as
// one that takes none, and a healthy PUT answers in well under a second.
//
// The transport reads the body on its write goroutine and reports the
// answer on its read goroutine, so the state is under a lock; the timer's
// function only cancels.
type writeWatch struct {
	ctx    context.Context // the request's own: give it to the minio call
	src    io.Reader
	idle   time.Duration
	cancel context.CancelCauseFunc
	timer  *time.Timer

	mu       sync.Mutex
	answered bool // the store's answer began: nothing to wait for
	ended    bool
}

// watchWrite derives the request context of one upload request from ctx and
// wraps its body src. The body the request must send is Body(); End must
// follow the call.
func watchWrite(ctx context.Context, src io.Reader, idle time.Duration) *writeWatch {
	rctx, cancel := context.WithCancelCause(ctx)
	w := &writeWatch{src: src, idle: idle, cancel: cancel}
	w.timer = time.AfterFunc(idle, func() { cancel(errWriteStalled) })
	w.timer.Stop()
	w.ctx = httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{GotFirstResponseByte: w.gotAnswer})
	return w
}

// Body is the reader to send. It is seekable exactly when the source is:
// minio-go retries only a seekable body (seeking it back to the start), and
// a Put's guarded source must not be re-read.
func (w *writeWatch) Body() io.Reader {
	if _, ok := w.src.(io.Seeker); ok {
		return &seekingWatch{w}
	}
	return w
}

func (w *writeWatch) Read(p []byte) (int, error) {
	// Asked for more: the transport has written what it took last.
	w.mu.Lock()
	w.timer.Stop()
	w.mu.Unlock()
	n, err := w.src.Read(p)
	if err == nil || err == io.EOF {
		w.mu.Lock()
		if !w.answered && !w.ended {
			w.timer.Reset(w.idle)
		}
		w.mu.Unlock()
	}
	return n, err
}

func (w *writeWatch) gotAnswer() {
	w.mu.Lock()
	w.answered = true
	w.timer.Stop()
	w.mu.Unlock()
}

// End stops the watch, releases the request's context and returns the
// error the call should report for err: ErrUnavailable naming the stall if
// the watch cut the request (unless the caller's own context ended, which
// explains it), else err.
func (w *writeWatch) End(parent context.Context, err error) error {
	w.mu.Lock()
	w.ended = true
	w.timer.Stop()
	w.mu.Unlock()
	stalled := errors.Is(context.Cause(w.ctx), errWriteStalled)
	w.cancel(nil)
	if err != nil && stalled && parent.Err() == nil {
		return unavailable(fmt.Errorf("%w for %v", errWriteStalled, w.idle))
	}
	return err
}

type seekingWatch struct{ *writeWatch }

// Seek starts a new attempt of the request (minio-go seeks to the start
// before each): no byte is out, and no answer in.
func (s *seekingWatch) Seek(off int64, whence int) (int64, error) {
	s.mu.Lock()
	s.timer.Stop()
	s.answered = false
	s.mu.Unlock()
	return s.src.(io.Seeker).Seek(off, whence)
}
