package blob_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/blob/blobtest"
)

// TestS3UploadsShareOnePartPool runs more concurrent multipart uploads than
// there are part buffers: they must all complete (no deadlock), in order,
// with sizes known and unknown.
func TestS3UploadsShareOnePartPool(t *testing.T) {
	cfg := blobtest.S3Config(t)
	cfg.PartSize = 5 << 20
	cfg.PartBuffers = 1
	cfg.Parallel = 2
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := blob.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := make([]byte, 11<<20+i*1000)
			rand.NewChaCha8([32]byte{byte(i)}).Read(data)
			size := int64(len(data))
			if i%2 == 1 {
				size = -1
			}
			id := "pool" + string(rune('a'+i))
			if _, err := s.Put(ctx, id, bytes.NewReader(data), size); err != nil {
				t.Errorf("put %s: %v", id, err)
				return
			}
			defer s.Delete(context.Background(), id)
			obj, err := s.Open(ctx, id)
			if err != nil {
				t.Errorf("open %s: %v", id, err)
				return
			}
			defer obj.Close()
			got, err := io.ReadAll(io.NewSectionReader(obj, 0, obj.Size()))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: read back %d bytes, err %v", id, len(got), err)
			}
		}()
	}
	wg.Wait()
}
