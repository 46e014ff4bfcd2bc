package blob_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/crvault/crvault/vault/blob/blobtest"
)

// Sequential ReadAt calls must continue one streaming GET, not issue one each.
func TestS3SequentialReadsReuseStream(t *testing.T) {
	s := blobtest.S3(t)
	const size = 2 << 20
	want := data(11, size)
	put(t, s, "seq", want)
	o, err := s.Open(ctxT(t), "seq")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	steps := []struct {
		name     string
		off, n   int
		wantGets int64 // cumulative
	}{
		{"first read opens a stream", 0, 4 << 10, 1},
		{"continuing read", 4 << 10, 60 << 10, 1},
		{"continuing read again", 64 << 10, 64 << 10, 1},
		{"small forward skip reuses", 200 << 10, 1 << 10, 1},
		{"jump back reopens", 10, 100, 2},
		{"continue after the jump", 110, 1000, 2},
		{"far jump reopens", 1 << 20, 10, 3},
		{"read to the end", 1<<20 + 10, size - (1<<20 + 10), 3},
	}
	for _, st := range steps {
		p := make([]byte, st.n)
		n, err := o.ReadAt(p, int64(st.off))
		if err != nil && err != io.EOF {
			t.Fatalf("%s: %v", st.name, err)
		}
		if !bytes.Equal(p[:n], want[st.off:st.off+n]) || n != st.n {
			t.Fatalf("%s: wrong bytes (%d)", st.name, n)
		}
		if got := s.Gets(); got != st.wantGets {
			t.Fatalf("%s: %d GETs so far, want %d", st.name, got, st.wantGets)
		}
	}
	// Reading a whole blob through a SectionReader in small chunks: one more GET.
	before := s.Gets()
	got, err := io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("full read: %v", err)
	}
	if n := s.Gets() - before; n != 1 {
		t.Fatalf("sequential full read took %d GETs, want 1", n)
	}
}
