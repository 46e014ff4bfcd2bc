package blob_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/blob/blobtest"
)

// ReadWhole fills the buffer with exactly the blob, and refuses a blob of
// any other size (a truncated or padded one must not pass for the document).
func TestReadWhole(t *testing.T) {
	forEach(t, func(t *testing.T, s blob.Store) {
		for _, n := range []int{1, 4 << 10, 1<<20 + 17} {
			want := data(uint64(n), n)
			put(t, s, "whole", want)
			got := make([]byte, n)
			if err := blob.ReadWhole(ctxT(t), s, "whole", got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%d bytes: %v", n, err)
			}
			for _, wrong := range []int{n - 1, n + 1} {
				if err := blob.ReadWhole(ctxT(t), s, "whole", make([]byte, wrong)); !errors.Is(err, blob.ErrWrongSize) {
					t.Fatalf("%d-byte blob read as %d: err %v, want ErrWrongSize", n, wrong, err)
				}
			}
		}
		if err := blob.ReadWhole(ctxT(t), s, "missing", make([]byte, 10)); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("missing blob: %v", err)
		}
		if err := blob.ReadWhole(ctxT(t), s, "../x", make([]byte, 10)); !errors.Is(err, blob.ErrInvalidID) {
			t.Fatalf("bad id: %v", err)
		}
	})
}

// On S3 a small read is one GET, where a stream (Open) would take a second
// one for age's final chunk.
func TestS3ReadWholeIsOneGet(t *testing.T) {
	s := blobtest.S3(t)
	want := data(5, 4<<10)
	put(t, s, "one", want)
	before := s.Gets()
	got := make([]byte, len(want))
	if err := blob.ReadWhole(ctxT(t), s, "one", got); err != nil || !bytes.Equal(got, want) {
		t.Fatal(err)
	}
	if n := s.Gets() - before; n != 1 {
		t.Fatalf("%d GETs, want 1", n)
	}
}
