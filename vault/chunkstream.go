package vault

import (
	"fmt"
	"io"
	"sync"

	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/crypt"
)

// chunkStream serves a range of a large blob's plaintext in three stages
// that overlap: a reader goroutine fetches the ciphertext a block of whole
// chunks at a time, a decrypter goroutine decrypts each block where it was
// read, and the caller sends the block before. Fetching waits on the store,
// decrypting on a core and sending on the client; done one after another
// in one goroutine, the first two left the store's connection idle while a
// block was decrypted and a core idle while the next was fetched, which
// held a download well below a raw GetObject of the same ciphertext.
// Between the store and the client every byte is copied once, into the
// block. Memory is bounded by chunkStreamDepth+1 blocks whatever the
// document size.
//
// Blocks hold plaintext once decrypted, and a block handed back to be
// refilled still holds its old plaintext. Each is cleared before it goes
// back to the pool, by whichever side (the reader, the decrypter or Close)
// receives it from a channel last: a receive hands a block to exactly one
// side. The decrypter drains the sealed blocks until the reader has
// stopped, and looks for Close after every block it sends and on its way
// out, so none is pooled twice, pooled in use, or dropped uncleared.
type chunkStream struct {
	sealed chan sealedBlock // fetched blocks in order; closed by the reader after the last
	filled chan plainBlock  // decrypted blocks in order; closed by the decrypter after the last
	free   chan []byte      // blocks to fill, at full capacity
	done   chan struct{}    // closed by Close
	stop   chan struct{}    // closed by the decrypter when it fails, to stop the reader
	exited chan struct{}    // closed when both goroutines have stopped
	once   sync.Once
	rerr   error // the reader's failure, set before sealed is closed
	err    error // the stream's failure, set before filled is closed
	held   []byte
	cur    []byte // held's unread plaintext
	failed error  // what Read returns once the stream ended
}

type sealedBlock struct {
	buf, enc []byte
	first    int64 // the first chunk enc holds
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

// newChunkStream starts the reader and the decrypter on obj; length must be
// positive.
func newChunkStream(obj blob.Object, o *crypt.ChunkOpener, span chunkSpan) *chunkStream {
	cs := &chunkStream{
		sealed: make(chan sealedBlock, chunkStreamDepth), filled: make(chan plainBlock, chunkStreamDepth),
		free: make(chan []byte, chunkStreamDepth+1), done: make(chan struct{}), stop: make(chan struct{}), exited: make(chan struct{}),
	}
	for range chunkStreamDepth + 1 {
		cs.free <- getChunkBlock()
	}
	go cs.read(obj, span)
	go cs.decrypt(o, span)
	return cs
}

// read fetches the span's chunks, a block at a time, until the last, a
// failure, Close, or the decrypter's failure.
func (cs *chunkStream) read(obj blob.Object, span chunkSpan) {
	defer close(cs.sealed)
	end := min(obj.Size(), crypt.ChunkOffset(span.last+1))
	for i := span.first; i <= span.last; i += chunkBlockChunks {
		// Closed streams fetch nothing more, even with a block free.
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
		case <-cs.stop:
			return
		}
		off := crypt.ChunkOffset(i)
		enc := buf[:min(int64(len(buf)), end-off)]
		if err := readFullAt(obj, enc, off); err != nil {
			clear(buf)
			putChunkBlock(buf)
			cs.rerr = fmt.Errorf("read blob at %d: %w", off, err)
			return
		}
		select {
		case cs.sealed <- sealedBlock{buf: buf, enc: enc, first: i}:
		case <-cs.done:
			clear(buf)
			putChunkBlock(buf)
			return
		case <-cs.stop:
			clear(buf)
			putChunkBlock(buf)
			return
		}
	}
}

// decrypt authenticates and decrypts each fetched block in place and hands
// it on, trimmed to the range.
func (cs *chunkStream) decrypt(o *crypt.ChunkOpener, span chunkSpan) {
	defer func() {
		// Whatever ended the stream, the reader stops soon; take and clear
		// what it still sends.
		for b := range cs.sealed {
			clear(b.buf)
			putChunkBlock(b.buf)
		}
		close(cs.filled)
		select {
		case <-cs.done:
			cs.recycle()
		default:
		}
		close(cs.exited)
	}()
	skip, rest := span.skip, span.length
	for b := range cs.sealed {
		select {
		case <-cs.done:
			clear(b.buf)
			putChunkBlock(b.buf)
			return
		default:
		}
		plain, err := o.Open(b.enc, b.first)
		if err != nil {
			clear(b.buf)
			putChunkBlock(b.buf)
			cs.err = err
			close(cs.stop)
			return
		}
		plain = plain[skip:]
		plain = plain[:min(int64(len(plain)), rest)]
		skip, rest = 0, rest-int64(len(plain))
		select {
		case cs.filled <- plainBlock{buf: b.buf, plain: plain}:
		case <-cs.done:
			clear(b.buf)
			putChunkBlock(b.buf)
			return
		}
	}
	// sealed is closed: the reader's failure, if any, is visible here.
	cs.err = cs.rerr
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
