package vault

import (
	"io"
	"sync"
)

// readAhead reads the next blocks of ciphertext in a goroutine of its own,
// so fetching from the blob store overlaps with decryption and sending.
// Memory is bounded by (depth+1) × block whatever the document size. Blocks
// of the streaming path's size come from a pool and go back to it when the
// read-ahead is closed: a buffer is returned by whichever side (the filler
// or Close) receives it from a channel last, and a channel receive hands a
// buffer to exactly one side, so none is pooled twice or while in use.
type readAhead struct {
	filled chan []byte // blocks holding data, in order
	free   chan []byte // full-capacity buffers to fill
	done   chan struct{}
	once   sync.Once
	errc   chan error
	buf    []byte // the block being consumed, at full capacity
	cur    []byte // its unread part
	err    error
}

func newReadAhead(r io.Reader, block, depth int) *readAhead {
	ra := &readAhead{filled: make(chan []byte, depth), free: make(chan []byte, depth+1), done: make(chan struct{}), errc: make(chan error, 1)}
	for i := 0; i <= depth; i++ {
		ra.free <- getBlock(block)
	}
	go ra.fill(r)
	return ra
}

func (ra *readAhead) fill(r io.Reader) {
	defer close(ra.filled)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.done:
			ra.recycle()
			return
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			select {
			case ra.filled <- buf[:n]:
			case <-ra.done:
				putBlock(buf)
				ra.recycle()
				return
			}
		} else {
			putBlock(buf)
		}
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		if err != nil {
			ra.errc <- err
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if len(ra.cur) == 0 {
		if ra.buf != nil {
			ra.free <- ra.buf[:cap(ra.buf)]
			ra.buf = nil
		}
		if ra.err != nil {
			return 0, ra.err
		}
		b, ok := <-ra.filled
		if !ok {
			ra.err = <-ra.errc
			return 0, ra.err
		}
		ra.buf, ra.cur = b, b
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the reader goroutine; it does not close the source. The
// reader must not be read after it.
func (ra *readAhead) Close() {
	ra.once.Do(func() {
		close(ra.done)
		if ra.buf != nil {
			putBlock(ra.buf)
			ra.buf, ra.cur = nil, nil
		}
		ra.recycle()
	})
}

// recycle pools the blocks waiting in either channel, without blocking.
func (ra *readAhead) recycle() {
	for {
		select {
		case b, ok := <-ra.filled:
			if ok {
				putBlock(b)
				continue
			}
		default:
		}
		select {
		case b := <-ra.free:
			putBlock(b)
			continue
		default:
		}
		return
	}
}

var readAheadBufs = sync.Pool{New: func() any { b := make([]byte, readAheadBlock); return &b }}

func getBlock(n int) []byte {
	if n == readAheadBlock {
		return *readAheadBufs.Get().(*[]byte)
	}
	return make([]byte, n)
}

func putBlock(b []byte) {
	if cap(b) == readAheadBlock {
		b = b[:cap(b)]
		readAheadBufs.Put(&b)
	}
}

// seqReaderAt serves ReadAt calls that continue where the previous one ended
// from a read-ahead stream, and any other offset (age reads the final chunk
// first, to authenticate the size) straight from the source.
type seqReaderAt struct {
	ra  *readAhead
	pos int64
	src io.ReaderAt
}

func (s *seqReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off != s.pos {
		return s.src.ReadAt(p, off)
	}
	n, err := io.ReadFull(s.ra, p)
	s.pos += int64(n)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}
