package vault

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

func TestReadAheadDeliversTheStreamInOrder(t *testing.T) {
	for _, size := range []int{0, 1, 999, 1000, 1001, 64 << 10, 1<<20 + 3} {
		src := make([]byte, size)
		rand.NewChaCha8([32]byte{byte(size)}).Read(src)
		for _, r := range []io.Reader{bytes.NewReader(src), iotest.OneByteReader(bytes.NewReader(src)), iotest.HalfReader(bytes.NewReader(src))} {
			ra := newReadAhead(r, 1000, 3)
			got, err := io.ReadAll(iotest.HalfReader(ra))
			ra.Close()
			if err != nil || !bytes.Equal(got, src) {
				t.Fatalf("size %d: %d bytes, err %v", size, len(got), err)
			}
		}
	}
}

func TestReadAheadPassesSourceErrors(t *testing.T) {
	boom := errors.New("boom")
	ra := newReadAhead(io.MultiReader(bytes.NewReader(make([]byte, 2500)), iotest.ErrReader(boom)), 1000, 2)
	defer ra.Close()
	got, err := io.ReadAll(ra)
	if !errors.Is(err, boom) || len(got) != 2500 {
		t.Fatalf("got %d bytes, err %v", len(got), err)
	}
}

func TestReadAheadCloseStopsTheFiller(t *testing.T) {
	ra := newReadAhead(iotest.OneByteReader(bytes.NewReader(make([]byte, 1<<20))), 100, 2)
	buf := make([]byte, 10)
	if _, err := ra.Read(buf); err != nil {
		t.Fatal(err)
	}
	ra.Close()
	// The filler exits: the filled channel is closed once it notices.
	for range ra.filled {
	}
}
