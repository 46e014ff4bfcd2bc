package crypt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
)

// testData is deterministic pseudo-random content of n bytes.
func testData(t testing.TB, n int, seed uint64) []byte {
	t.Helper()
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

func testMaster(t testing.TB) *Master {
	t.Helper()
	m, err := GenerateMaster()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newCase returns a fresh case key, going through wrap and unwrap as the vault does.
func newCase(t testing.TB, m *Master) (*CaseKey, []byte) {
	t.Helper()
	wrapped, err := m.NewCaseKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := m.OpenCaseKey(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	return k, wrapped
}

func seal(t testing.TB, k *CaseKey, plain []byte) (header, payload []byte) {
	t.Helper()
	var buf bytes.Buffer
	s, err := k.Encrypt(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if s.Header() != nil {
		t.Fatal("Header() before Close must be nil")
	}
	// Odd-sized writes so chunk boundaries fall inside writes.
	for p := plain; len(p) > 0; {
		n := min(len(p), 10007)
		if _, err := s.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Size() != int64(len(plain)) {
		t.Fatalf("Size() = %d, want %d", s.Size(), len(plain))
	}
	return s.Header(), buf.Bytes()
}

// openAll reads the whole document through OpenStream; the error is the
// first from Open or Read.
func openAll(k *CaseKey, header, payload []byte) ([]byte, error) {
	r, err := k.OpenStream(header, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// openAllChunks reads the whole document the way the vault streams a large
// one: the file key from the header, the final chunk first, then the chunks
// in place, three at a time.
func openAllChunks(k *CaseKey, header, payload []byte) ([]byte, error) {
	if _, err := PlaintextSize(int64(len(payload))); err != nil {
		return nil, err
	}
	fk, err := k.OpenHeader(header)
	if err != nil {
		return nil, err
	}
	o, err := fk.ChunkOpener(payload[:nonceSize], int64(len(payload)))
	if err != nil {
		return nil, err
	}
	last := o.Chunks() - 1
	if _, err := o.Open(bytes.Clone(payload[ChunkOffset(last):]), last); err != nil {
		return nil, err
	}
	var out []byte
	for i := int64(0); i <= last; i += 3 {
		pt, err := o.Open(bytes.Clone(payload[ChunkOffset(i):min(int64(len(payload)), ChunkOffset(i+3))]), i)
		if err != nil {
			return out, err
		}
		out = append(out, pt...)
	}
	return out, nil
}

var roundTripSizes = []int{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 5 << 20}

func TestRoundTrip(t *testing.T) {
	m := testMaster(t)
	k, _ := newCase(t, m)
	for _, size := range roundTripSizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			plain := testData(t, size, uint64(size))
			header, payload := seal(t, k, plain)

			if got := PayloadSize(int64(size)); got != int64(len(payload)) {
				t.Errorf("PayloadSize(%d) = %d, actual payload %d", size, got, len(payload))
			}
			if got, err := PlaintextSize(int64(len(payload))); err != nil || got != int64(size) {
				t.Errorf("PlaintextSize(%d) = %d, %v; want %d", len(payload), got, err, size)
			}
			if len(header) == 0 || len(header) > maxHeaderSize || !bytes.HasPrefix(header, []byte("age-encryption.org/v1\n-> mlkem768x25519 ")) {
				t.Errorf("header of %d bytes is not a single hybrid stanza: %.40q", len(header), header)
			}
			if size >= 16 && bytes.Contains(payload, plain[:16]) {
				t.Error("payload contains plaintext")
			}

			got, err := openAll(k, header, payload)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("OpenStream: %d bytes, err %v; want %d bytes back", len(got), err, size)
			}

			if got, err := openAllChunks(k, header, payload); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("chunks: %d bytes, err %v; want %d bytes back", len(got), err, size)
			}
			// Runs of chunks from anywhere, as a range read opens them.
			_, o := chunkOpener(t, k, header, payload)
			rng := rand.New(rand.NewPCG(uint64(size), 1))
			for range 20 {
				first := rng.Int64N(o.Chunks())
				n := 1 + rng.Int64N(o.Chunks()-first)
				pt, err := o.Open(bytes.Clone(payload[ChunkOffset(first):min(int64(len(payload)), ChunkOffset(first+n))]), first)
				if err != nil {
					t.Fatalf("chunks %d+%d: %v", first, n, err)
				}
				if !bytes.Equal(pt, plain[first*chunkSize:min(int64(size), (first+n)*chunkSize)]) {
					t.Fatalf("chunks %d+%d: wrong plaintext", first, n)
				}
			}
		})
	}
}

func TestPayloadSizeInverse(t *testing.T) {
	valid := map[int64]int64{}
	for _, n := range []int64{0, 1, 2, 100, 64<<10 - 1, 64 << 10, 64<<10 + 1, 128 << 10, 128<<10 + 1, 1 << 30, 1<<40 + 12345} {
		p := PayloadSize(n)
		valid[p] = n
		if got, err := PlaintextSize(p); err != nil || got != n {
			t.Errorf("PlaintextSize(PayloadSize(%d)=%d) = %d, %v", n, p, got, err)
		}
	}
	if PayloadSize(-1) != -1 {
		t.Error("PayloadSize(-1) should be -1")
	}
	// Every payload size near the chunk boundaries is either the image of a
	// plaintext size or rejected as corrupt.
	for _, base := range []int64{0, 64 << 10, 128 << 10} {
		for p := base - 40; p < base+80; p++ {
			n, err := PlaintextSize(p)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("PlaintextSize(%d) error %v is not ErrCorrupt", p, err)
				}
				continue
			}
			if PayloadSize(n) != p {
				t.Errorf("PlaintextSize(%d) = %d but PayloadSize(%d) = %d", p, n, n, PayloadSize(n))
			}
		}
	}
	for _, p := range []int64{-1, 0, 16, 31, PayloadSize(64<<10) + 1, PayloadSize(64<<10) + 16} {
		if _, err := PlaintextSize(p); !errors.Is(err, ErrCorrupt) {
			t.Errorf("PlaintextSize(%d) = %v, want ErrCorrupt", p, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func TestTamperingAndWrongKeys(t *testing.T) {
	m := testMaster(t)
	k, _ := newCase(t, m)
	other, _ := newCase(t, m)
	plain := testData(t, 3*64<<10+5, 7)
	header, payload := seal(t, k, plain)
	header2, _ := seal(t, k, testData(t, len(plain), 8)) // same case, same size
	otherHeader, _ := seal(t, other, plain)

	nl := bytes.IndexByte(header, '\n')
	macAt := bytes.LastIndex(header, []byte("--- ")) + 5
	tests := []struct {
		name            string
		key             *CaseKey
		header, payload []byte
		want            []error // any of these
	}{
		{"header intro", k, flip(header, 3), payload, []error{ErrCorrupt}},
		{"header stanza arg", k, flip(header, nl+30), payload, []error{ErrCorrupt, ErrWrongKey}},
		{"header stanza body", k, flip(header, macAt-20), payload, []error{ErrCorrupt, ErrWrongKey}},
		{"header MAC", k, flip(header, macAt+2), payload, []error{ErrCorrupt}},
		{"header truncated", k, header[:len(header)-10], payload, []error{ErrCorrupt}},
		{"header empty", k, nil, payload, []error{ErrCorrupt}},
		{"payload nonce", k, header, flip(payload, 3), []error{ErrCorrupt}},
		{"payload first chunk", k, header, flip(payload, 100), []error{ErrCorrupt}},
		{"payload middle chunk", k, header, flip(payload, 16+64<<10+70000), []error{ErrCorrupt}},
		{"payload last byte", k, header, flip(payload, len(payload)-1), []error{ErrCorrupt}},
		{"payload truncated at chunk", k, header, payload[:16+2*(64<<10+16)], []error{ErrCorrupt}},
		{"payload truncated", k, header, payload[:len(payload)-1], []error{ErrCorrupt}},
		{"payload extended", k, header, append(bytes.Clone(payload), 0), []error{ErrCorrupt}},
		{"payload empty", k, header, nil, []error{ErrCorrupt}},
		{"header of another material", k, header2, payload, []error{ErrCorrupt}},
		{"header of another case", k, otherHeader, payload, []error{ErrWrongKey}},
		{"wrong case key", other, header, payload, []error{ErrWrongKey}},
	}
	for _, tc := range tests {
		for name, open := range map[string]func(*CaseKey, []byte, []byte) ([]byte, error){"stream": openAll, "chunks": openAllChunks} {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				got, err := open(tc.key, tc.header, tc.payload)
				if err == nil {
					t.Fatalf("opened %d bytes, want an error", len(got))
				}
				ok := false
				for _, w := range tc.want {
					ok = ok || errors.Is(err, w)
				}
				if !ok {
					t.Fatalf("error %q, want one of %v", err, tc.want)
				}
			})
		}
	}
}

// A swapped header must be caught before a single byte is handed out, so an
// HTTP handler can still answer with an error status.
func TestSwappedHeaderFailsAtOpen(t *testing.T) {
	m := testMaster(t)
	k, _ := newCase(t, m)
	_, payload := seal(t, k, testData(t, 1000, 1))
	header2, _ := seal(t, k, testData(t, 1000, 2))
	if _, err := k.OpenStream(header2, bytes.NewReader(payload)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("OpenStream = %v, want ErrCorrupt", err)
	}
	if _, err := openAllChunks(k, header2, payload); !errors.Is(err, ErrCorrupt) {
		t.Errorf("chunks = %v, want ErrCorrupt", err)
	}
}

type failingReader struct {
	r     io.Reader
	after int
	err   error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, f.err
	}
	p = p[:min(len(p), f.after)]
	n, err := f.r.Read(p)
	f.after -= n
	return n, err
}

// An I/O error of the blob store is not evidence of tampering and must stay
// recognisable as itself.
func TestSourceErrorsAreNotCorruption(t *testing.T) {
	m := testMaster(t)
	k, _ := newCase(t, m)
	header, payload := seal(t, k, testData(t, 200<<10, 3))
	errNet := errors.New("connection reset")

	for _, after := range []int{0, 10, 16 + 64<<10 + 100} {
		t.Run(fmt.Sprint("stream after ", after), func(t *testing.T) {
			r, err := k.OpenStream(header, &failingReader{r: bytes.NewReader(payload), after: after, err: errNet})
			if err == nil {
				_, err = io.ReadAll(r)
			}
			if !errors.Is(err, errNet) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want the source error and not ErrCorrupt", err)
			}
		})
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write(p []byte) (int, error) { return 0, f.err }

func TestSealerPayloadWriteError(t *testing.T) {
	k, _ := newCase(t, testMaster(t))
	errDisk := errors.New("disk full")
	s, err := k.Encrypt(failingWriter{errDisk})
	if err == nil {
		_, err = s.Write(testData(t, 200<<10, 1))
		if err == nil {
			err = s.Close()
		}
	}
	if !errors.Is(err, errDisk) {
		t.Fatalf("err = %v, want the payload writer's error", err)
	}
}

func TestMasterRotation(t *testing.T) {
	oldM, newM := testMaster(t), testMaster(t)
	k, wrapped := newCase(t, oldM)
	plain := testData(t, 100<<10, 4)
	header, payload := seal(t, k, plain)

	rewrapped, err := oldM.Rewrap(wrapped, newM)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := newM.OpenCaseKey(rewrapped)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Fingerprint() != k.Fingerprint() {
		t.Error("rewrap changed the case key")
	}
	// The untouched header and blob open with the case key from the new row.
	if got, err := openAll(k2, header, payload); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypt old payload after rotation: %v", err)
	}
	for name, tc := range map[string]struct {
		m       *Master
		wrapped []byte
		want    error
	}{
		"old master, new row": {oldM, rewrapped, ErrWrongKey},
		"new master, old row": {newM, wrapped, ErrWrongKey},
		"tampered row":        {oldM, flip(wrapped, len(wrapped)-3), ErrCorrupt},
		"truncated row":       {oldM, wrapped[:len(wrapped)-1], ErrCorrupt},
		"garbage row":         {oldM, []byte("not age"), ErrCorrupt},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.m.OpenCaseKey(tc.wrapped); !errors.Is(err, tc.want) {
				t.Fatalf("OpenCaseKey = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := newM.Rewrap(wrapped, oldM); !errors.Is(err, ErrWrongKey) {
		t.Errorf("Rewrap by the wrong master = %v, want ErrWrongKey", err)
	}
}

func TestCaseKeyRotation(t *testing.T) {
	m := testMaster(t)
	oldK, _ := newCase(t, m)
	newK, _ := newCase(t, m)
	for _, size := range []int{0, 5, 70 << 10} {
		plain := testData(t, size, 9)
		header, payload := seal(t, oldK, plain)
		h2, err := oldK.RewrapHeader(header, newK)
		if err != nil {
			t.Fatal(err)
		}
		for name, open := range map[string]func(*CaseKey, []byte, []byte) ([]byte, error){"stream": openAll, "chunks": openAllChunks} {
			if got, err := open(newK, h2, payload); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s: open rewrapped header (size %d): %v", name, size, err)
			}
		}
		if _, err := openAll(oldK, h2, payload); !errors.Is(err, ErrWrongKey) {
			t.Errorf("old key opens the rewrapped header: %v", err)
		}
		if _, err := newK.RewrapHeader(header, oldK); !errors.Is(err, ErrWrongKey) {
			t.Errorf("RewrapHeader with the wrong key = %v", err)
		}
	}
}

// patternReader generates n bytes without holding them.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.left))
	for i := range b[:n] {
		b[i] = byte(i*7 + int(p.left))
	}
	p.left -= int64(n)
	return n, nil
}

// heapSampler is a payload sink that records the peak heap while encrypting.
type heapSampler struct {
	writes, n int64
	peak      uint64
}

func (h *heapSampler) Write(p []byte) (int, error) {
	h.writes++
	h.n += int64(len(p))
	if h.writes%64 == 0 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		h.peak = max(h.peak, ms.HeapInuse)
	}
	return len(p), nil
}

func TestEncryptMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("encrypts 256 MiB")
	}
	const size = 256 << 20
	k, _ := newCase(t, testMaster(t))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	sink := &heapSampler{}
	s, err := k.Encrypt(sink)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyBuffer(s, &patternReader{left: size}, make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if sink.n != PayloadSize(size) {
		t.Fatalf("payload %d bytes, want %d", sink.n, PayloadSize(size))
	}
	growth := int64(sink.peak) - int64(before.HeapInuse)
	t.Logf("HeapInuse before %d, peak growth %d bytes", before.HeapInuse, growth)
	// Streaming needs about one chunk; garbage between GCs may add a few MiB.
	if growth > 16<<20 {
		t.Fatalf("heap grew by %d MiB while encrypting 256 MiB: not streaming", growth>>20)
	}
}
