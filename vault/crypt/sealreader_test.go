package crypt

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// readIn reads r to its end in reads of n bytes (io.ReadFull per read, as a
// blob store fills its part buffers), returning what it read and the error
// that stopped it (nil at io.EOF).
func readIn(r io.Reader, n int) ([]byte, error) {
	var out []byte
	buf := make([]byte, n)
	for {
		m, err := io.ReadFull(r, buf)
		out = append(out, buf[:m]...)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// What a SealReader produces is age's format exactly: age's own reader
// opens it, for sizes around every chunk boundary and whatever the reads
// that drain it; its size is PayloadSize; the tee sees the plaintext.
func TestSealReaderMatchesAge(t *testing.T) {
	k, _ := newCase(t, testMaster(t))
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 5, 130 * chunkSize} {
		plain := testData(t, size, uint64(size)+7)
		for _, read := range []int{1, 100, tagSize, encChunk - 1, encChunk, encChunk + 17, 1 << 20, 8 << 20} {
			if size > 4*chunkSize && read < encChunk {
				continue // slow, and the small sizes cover these reads
			}
			h := sha256.New()
			sr, err := k.SealReader(bytes.NewReader(plain), int64(size), int64(size), h)
			if err != nil {
				t.Fatal(err)
			}
			payload, err := readIn(sr, read)
			if err != nil {
				t.Fatalf("%d bytes in reads of %d: %v", size, read, err)
			}
			if int64(len(payload)) != PayloadSize(int64(size)) {
				t.Fatalf("%d bytes in reads of %d: payload of %d, want %d", size, read, len(payload), PayloadSize(int64(size)))
			}
			got, err := openAll(k, sr.Header(), payload)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%d bytes in reads of %d: age read %d bytes, %v", size, read, len(got), err)
			}
			if sum := sha256.Sum256(plain); !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Fatalf("%d bytes in reads of %d: the tee did not see the plaintext", size, read)
			}
			if size >= 16 && bytes.Contains(payload, plain[:16]) {
				t.Fatalf("%d bytes: payload contains plaintext", size)
			}
		}
	}
}

// A source shorter or longer than declared, or failing, fails the reader
// with SourceErr set and never io.EOF, so no store takes the payload as
// whole; the bytes it did return are ciphertext only.
func TestSealReaderRefusesABadSource(t *testing.T) {
	k, _ := newCase(t, testMaster(t))
	const size = 3*chunkSize + 5
	plain := testData(t, size, 1)
	reset := errors.New("connection reset")
	for name, tc := range map[string]struct {
		src  io.Reader
		want error
	}{
		"short by a chunk": {bytes.NewReader(plain[:2*chunkSize]), ErrBodyShort},
		"short by a byte":  {bytes.NewReader(plain[:size-1]), ErrBodyShort},
		"empty":            {bytes.NewReader(nil), ErrBodyShort},
		"long by a byte":   {bytes.NewReader(append(bytes.Clone(plain), 0)), ErrBodyLong},
		"failing":          {io.MultiReader(bytes.NewReader(plain[:chunkSize+9]), iotest.ErrReader(reset)), reset},
	} {
		for _, read := range []int{100, 1 << 20} {
			sr, err := k.SealReader(tc.src, size, size, nil)
			if err != nil {
				t.Fatal(err)
			}
			payload, err := readIn(sr, read)
			if err == nil || !errors.Is(sr.SourceErr(), tc.want) || !errors.Is(err, tc.want) {
				t.Fatalf("%s, reads of %d: err %v, SourceErr %v; want %v", name, read, err, sr.SourceErr(), tc.want)
			}
			if bytes.Contains(payload, plain[:64]) || bytes.Contains(payload, plain[chunkSize:chunkSize+64]) {
				t.Fatalf("%s: plaintext among the bytes read", name)
			}
			if _, err := openAll(k, sr.Header(), payload); err == nil {
				t.Fatalf("%s: the partial payload opens", name)
			}
			if s, ok := tc.src.(*bytes.Reader); ok {
				s.Seek(0, io.SeekStart)
			}
		}
	}
	if _, err := k.SealReader(bytes.NewReader(nil), -1, -1, nil); err == nil {
		t.Fatal("a negative size was accepted")
	}
}

// Without a declared size, the source's end is the plaintext's end: the
// payload is age's for every size around the chunk boundaries, from
// sources that return little at a time, at the limit and under it; one
// byte over the limit is ErrBodyLong.
func TestSealReaderUnknownSize(t *testing.T) {
	k, _ := newCase(t, testMaster(t))
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 2 * chunkSize, 3*chunkSize + 5} {
		plain := testData(t, size, uint64(size)+3)
		for _, limit := range []int64{int64(size), int64(size) + 100} {
			for name, src := range map[string]func() io.Reader{
				"whole":    func() io.Reader { return bytes.NewReader(plain) },
				"halves":   func() io.Reader { return iotest.HalfReader(bytes.NewReader(plain)) },
				"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(plain)) },
			} {
				for _, read := range []int{100, 1 << 20} {
					h := sha256.New()
					sr, err := k.SealReader(src(), -1, limit, h)
					if err != nil {
						t.Fatal(err)
					}
					payload, err := readIn(sr, read)
					if err != nil {
						t.Fatalf("%d bytes (limit %d, %s, reads of %d): %v", size, limit, name, read, err)
					}
					got, err := openAll(k, sr.Header(), payload)
					if err != nil || !bytes.Equal(got, plain) || int64(len(payload)) != PayloadSize(int64(size)) || sr.Size() != int64(size) {
						t.Fatalf("%d bytes (limit %d, %s, reads of %d): age read %d bytes of a %d-byte payload, %v", size, limit, name, read, len(got), len(payload), err)
					}
					if sum := sha256.Sum256(plain); !bytes.Equal(h.Sum(nil), sum[:]) {
						t.Fatalf("%d bytes: the tee did not see the plaintext", size)
					}
				}
			}
		}
		if size == 0 {
			continue
		}
		for _, read := range []int{100, 1 << 20} {
			sr, err := k.SealReader(bytes.NewReader(plain), -1, int64(size-1), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := readIn(sr, read); !errors.Is(err, ErrBodyLong) || !errors.Is(sr.SourceErr(), ErrBodyLong) {
				t.Fatalf("%d bytes over a limit of %d: %v", size, size-1, err)
			}
		}
	}
	reset := errors.New("connection reset")
	sr, err := k.SealReader(io.MultiReader(bytes.NewReader(testData(t, chunkSize+9, 1)), iotest.ErrReader(reset)), -1, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readIn(sr, 1<<20); !errors.Is(err, reset) || !errors.Is(sr.SourceErr(), reset) {
		t.Fatalf("failing source: %v", err)
	}
}
