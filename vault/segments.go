package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/crvault/crvault/vault/crypt"
)

// segment is where one piece of a segmented material lies.
type segment struct {
	Seq        int
	BlobID     string
	PlainStart int64
	PlainSize  int64
	Tag        []byte
}

// openSegments reads a material stored as an ordered set of sealed segments
// (a resumable upload cut into several), the whole of it or the range r,
// exactly as OpenSealed reads a single blob: the segments the read covers
// are opened one after the other, each decrypted with its own header and
// checked against its recorded size, so memory stays that of one open blob
// whatever the number of segments. The segments must tile [0, size) with
// no gap or overlap, or the material is refused as damaged.
func (s *Service) openSegments(ctx context.Context, key *crypt.CaseKey, materialID string, size int64, r *Range) (io.Reader, func() error, error) {
	var segs []segment
	if err := s.db.WithContext(ctx).Model(&materialSegmentRow{}).Select("seq", "blob_id", "plain_start", "plain_size", "tag").
		Where("material_id = ?", materialID).Order("seq").Scan(&segs).Error; err != nil {
		return nil, nil, fmt.Errorf("load segments: %w", err)
	}
	var at int64
	for i, sg := range segs {
		// A segment moved from another material, or edited, is refused
		// before any byte is served.
		if !key.CheckRowTag(sg.Tag, "material_segments", materialID, strconv.Itoa(sg.Seq), sg.BlobID,
			strconv.FormatInt(sg.PlainStart, 10), strconv.FormatInt(sg.PlainSize, 10)) {
			return nil, nil, fmt.Errorf("material_segments %s seq %d (blob %s): %w", materialID, sg.Seq, sg.BlobID, errRowTag)
		}
		if sg.Seq != i || sg.PlainStart != at || sg.PlainSize <= 0 {
			return nil, nil, fmt.Errorf("segment %d of %d does not continue the document at byte %d", i, len(segs), at)
		}
		at += sg.PlainSize
	}
	if at != size || len(segs) == 0 {
		return nil, nil, fmt.Errorf("segments hold %d bytes, the material %d", at, size)
	}
	start, end := int64(0), size
	if r != nil {
		start, end = r.Start, r.Start+r.Length
	}
	var todo []segment
	for _, sg := range segs {
		if sg.PlainStart < end && sg.PlainStart+sg.PlainSize > start {
			todo = append(todo, sg)
		}
	}
	sr := &segmentReader{s: s, ctx: ctx, key: key, materialID: materialID, todo: todo, start: start, end: end}
	// The first segment is opened now, so that a missing blob is an error
	// before the answer starts, as for a single blob.
	if err := sr.next(); err != nil {
		return nil, nil, err
	}
	return sr, sr.Close, nil
}

// segmentReader yields the plaintext of consecutive segments.
type segmentReader struct {
	s          *Service
	ctx        context.Context
	key        *crypt.CaseKey
	materialID string
	todo       []segment
	start, end int64
	cur        io.Reader
	closeCur   func() error
}

// next opens the next segment, on the part of it the read covers.
func (sr *segmentReader) next() error {
	if err := sr.closeOpen(); err != nil {
		return err
	}
	if len(sr.todo) == 0 {
		return nil
	}
	sg := sr.todo[0]
	sr.todo = sr.todo[1:]
	var header []byte
	if err := sr.s.db.WithContext(sr.ctx).Model(&materialSegmentRow{}).Select("header").
		Where("material_id = ? AND seq = ?", sr.materialID, sg.Seq).Row().Scan(&header); err != nil {
		return fmt.Errorf("load segment %d: %w", sg.Seq, err)
	}
	from := max(sr.start, sg.PlainStart) - sg.PlainStart
	to := min(sr.end, sg.PlainStart+sg.PlainSize) - sg.PlainStart
	var rng *Range
	if from > 0 || to < sg.PlainSize {
		rng = &Range{Start: from, Length: to - from}
	}
	body, closeFn, err := sr.s.OpenSealed(sr.ctx, sr.key, header, sg.BlobID, sg.PlainSize, rng)
	if err != nil {
		return fmt.Errorf("segment %d: %w", sg.Seq, err)
	}
	sr.cur, sr.closeCur = body, closeFn
	return nil
}

func (sr *segmentReader) closeOpen() error {
	if sr.closeCur == nil {
		return nil
	}
	err := sr.closeCur()
	sr.cur, sr.closeCur = nil, nil
	return err
}

func (sr *segmentReader) Read(p []byte) (int, error) {
	for {
		if sr.cur == nil {
			return 0, io.EOF
		}
		n, err := sr.cur.Read(p)
		if errors.Is(err, io.EOF) {
			if nerr := sr.next(); nerr != nil {
				return n, nerr
			}
			err = nil
			if n == 0 {
				continue
			}
		}
		return n, err
	}
}

// Close releases the open segment.
func (sr *segmentReader) Close() error {
	sr.todo = nil
	return sr.closeOpen()
}
