package vault

import (
	"fmt"
	"io"
	"sync"

	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/crypt"
)

// chunkStream serves a range of a large blob's plaintext. A goroutine of its
// own reads the ciphertext a block of whole chunks at a time and decrypts
// each block where it was read, while the reader sends the block before:
// fetching and decryption overlap with sending, on a second core when there
// is one, and between the store and the client every byte is copied once,
// into the block. Memory is bounded by chunkStreamDepth+1 blocks whatever
// the document size.
//
// Blocks hold plaintext once decrypted. Each is cleared before it goes back
// to the pool, by whichever side (the filler or Close) receives it from a
// channel last: a receive hands a block to exactly one side, and the filler
// looks for Close after every block it sends and on its way out, so none is
// pooled twice, pooled in use, or dropped uncleared.
type chunkStream struct {
	filled chan plainBlock // decrypted blocks in order; closed after the last
	free   chan []byte     // blocks to fill, at full capacity
	done   chan struct{}
	exited chan struct{} // closed when the filler has stopped
	once   sync.Once
	err    error // the filler's failure, set before filled is closed
	held   []byte
	cur    []byte // held's unread plaintext
	failed error  // what Read returns once the stream ended
}

type plainBlock struct{ buf, plain []byte }

// chunkSpan is the part of a payload a chunkStream reads: chunks first to
// last, of which the plaintext from skip on, length bytes.
type chunkSpan struct {
	first, last  int64
	skip, length int64
}

func spanOf(start, length int64) chunkSpan {
	first := start / crypt.ChunkSize
	return chunkSpan{first: first, last: (start + length - 1) / crypt.ChunkSize, skip: start - first*crypt.ChunkSize, length: length}
}

// newChunkStream starts the filler on obj; length must be positive.
func newChunkStream(obj blob.Object, o *crypt.ChunkOpener, span chunkSpan) *chunkStream {
	cs := &chunkStream{filled: make(chan plainBlock, chunkStreamDepth), free: make(chan []byte, chunkStreamDepth+1), done: make(chan struct{}), exited: make(chan struct{})}
	for range chunkStreamDepth + 1 {
		cs.free <- getChunkBlock()
	}
	go cs.fill(obj, o, span)
	return cs
}

func (cs *chunkStream) fill(obj blob.Object, o *crypt.ChunkOpener, span chunkSpan) {
	defer func() {
		close(cs.filled)
		select {
		case <-cs.done:
			cs.recycle()
		default:
		}
		close(cs.exited)
	}()
	end := min(obj.Size(), crypt.ChunkOffset(span.last+1))
	skip, rest := span.skip, span.length
	for i := span.first; i <= span.last && rest > 0; i += chunkBlockChunks {
		select {
		case <-cs.done:
			return
		default:
		}
		var buf []byte
		select {
		case buf = <-cs.free:
		case <-cs.done:
			return
		}
		off := crypt.ChunkOffset(i)
		enc := buf[:min(int64(len(buf)), end-off)]
		var plain []byte
		err := readFullAt(obj, enc, off)
		if err != nil {
			err = fmt.Errorf("read blob at %d: %w", off, err)
		} else {
			plain, err = o.Open(enc, i)
		}
		if err != nil {
			clear(buf)
			putChunkBlock(buf)
			cs.err = err
			return
		}
		plain = plain[skip:]
		plain = plain[:min(int64(len(plain)), rest)]
		skip, rest = 0, rest-int64(len(plain))
		select {
		case cs.filled <- plainBlock{buf: buf, plain: plain}:
		case <-cs.done:
			clear(buf)
			putChunkBlock(buf)
			return
		}
	}
}

// next makes the next block current; io.EOF after the last.
func (cs *chunkStream) next() error {
	if cs.held != nil {
		cs.free <- cs.held
		cs.held = nil
	}
	if cs.failed != nil {
		return cs.failed
	}
	b, ok := <-cs.filled
	if !ok {
		cs.failed = io.EOF
		if cs.err != nil {
			cs.failed = cs.err
		}
		return cs.failed
	}
	cs.held, cs.cur = b.buf, b.plain
	return nil
}

func (cs *chunkStream) Read(p []byte) (int, error) {
	for len(cs.cur) == 0 {
		if err := cs.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, cs.cur)
	cs.cur = cs.cur[n:]
	return n, nil
}

// WriteTo hands w each block's plaintext directly, saving io.Copy's buffer
// and a copy of every byte.
func (cs *chunkStream) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		for len(cs.cur) == 0 {
			if err := cs.next(); err == io.EOF {
				return n, nil
			} else if err != nil {
				return n, err
			}
		}
		m, err := w.Write(cs.cur)
		n += int64(m)
		cs.cur = cs.cur[m:]
		if err != nil {
			return n, err
		}
	}
}

// Close stops the filler (without waiting for a read it is in) and clears
// and pools every block it can reach; the stream must not be read after it.
func (cs *chunkStream) Close() {
	cs.once.Do(func() {
		close(cs.done)
		if cs.held != nil {
			clear(cs.held)
			putChunkBlock(cs.held)
			cs.held, cs.cur = nil, nil
		}
		cs.failed = errBodyClosed
		cs.recycle()
	})
}

// recycle clears and pools the blocks waiting in either channel, without
// blocking.
func (cs *chunkStream) recycle() {
	for {
		select {
		case b, ok := <-cs.filled:
			if ok {
				clear(b.buf)
				putChunkBlock(b.buf)
				continue
			}
		default:
		}
		select {
		case b := <-cs.free:
			clear(b)
			putChunkBlock(b)
			continue
		default:
		}
		return
	}
}

const (
	// chunkBlockChunks is how many chunks a block holds: 512 KiB of
	// plaintext, few enough hand-offs per byte, small enough that 8
	// concurrent downloads stay well inside the memory bound.
	chunkBlockChunks = 8
	chunkBlockSize   = chunkBlockChunks * ageEncChunkSize
	// chunkStreamDepth blocks wait decrypted while one is sent.
	chunkStreamDepth = 3
)

var chunkBlocks = sync.Pool{New: func() any { b := make([]byte, chunkBlockSize); return &b }}

func getChunkBlock() []byte { return *chunkBlocks.Get().(*[]byte) }

func putChunkBlock(b []byte) {
	if cap(b) == chunkBlockSize {
		b = b[:cap(b)]
		chunkBlocks.Put(&b)
	}
}
