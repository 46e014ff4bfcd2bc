package vault

import (
	"context"
	"fmt"
	"time"
)

// BlobRefs reports which of ids an owner of blobs still references. The
// vault is one owner (materials); others sharing the store (supervision's
// report attachments) pass theirs to CollectOrphans, so the janitor never
// takes a blob that somebody holds.
type BlobRefs func(ctx context.Context, ids []string) ([]string, error)

// ReferencedBlobs is the vault's BlobRefs: the blobs of its materials,
// segments of materials included, and of its open upload sessions.
//
// One statement reads all three tables, so it sees them at one instant.
// Completing a resumable upload moves its segments' blobs from
// upload_segments to materials and material_segments in one transaction;
// read table by table (each statement its own snapshot, as on PostgreSQL
// at read committed, or on SQLite outside a transaction), a completion
// committing between the reads left its blobs in neither answer, and the
// janitor deleted the new material's ciphertext.
func (s *Service) ReferencedBlobs(ctx context.Context, ids []string) ([]string, error) {
	var known []string
	err := s.db.WithContext(ctx).Raw(`SELECT blob_id FROM materials WHERE blob_id IN ?
		UNION ALL SELECT blob_id FROM material_segments WHERE blob_id IN ?
		UNION ALL SELECT blob_id FROM upload_segments WHERE blob_id IN ?`, ids, ids, ids).Scan(&known).Error
	if err != nil {
		return nil, fmt.Errorf("match blobs to materials: %w", err)
	}
	return known, nil
}

// CollectOrphans deletes blobs that no owner references and that are older
// than grace: uploads whose process died between the blob write and the row
// that commits it. The grace period keeps uploads in flight safe. It works
// through the store's listing in batches as it goes, so its memory stays
// one batch whatever the number of blobs.
func (s *Service) CollectOrphans(ctx context.Context, grace time.Duration, others ...BlobRefs) (int, error) {
	cutoff := time.Now().Add(-grace)
	owners := append([]BlobRefs{s.ReferencedBlobs}, others...)
	n := 0
	batch := make([]string, 0, orphanBatch)
	var collectErr error
	collect := func() error {
		ref := map[string]bool{}
		for _, owner := range owners {
			known, err := owner(ctx, batch)
			if err != nil {
				return err
			}
			for _, k := range known {
				ref[k] = true
			}
		}
		for _, id := range batch {
			if ref[id] {
				continue
			}
			if err := s.blobs.Delete(ctx, id); err != nil {
				return fmt.Errorf("delete orphan blob: %w", err)
			}
			n++
		}
		batch = batch[:0]
		return nil
	}
	err := s.blobs.List(ctx, func(id string, mod time.Time) error {
		if !mod.Before(cutoff) {
			return nil
		}
		if batch = append(batch, id); len(batch) == orphanBatch {
			collectErr = collect()
			return collectErr
		}
		return nil
	})
	if collectErr != nil {
		return n, collectErr
	}
	if err != nil {
		return n, fmt.Errorf("list blobs: %w", err)
	}
	if len(batch) > 0 {
		if err := collect(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// orphanBatch is how many listed blobs CollectOrphans matches to their
// owners at a time: one query per owner, its ids well inside either
// database's limit on bound parameters (three times over for the vault's).
const orphanBatch = 500

// CollectIncomplete removes unfinished writes from the blob store (S3
// multipart uploads, local temp files) begun more than grace ago and not
// still being made by this process: what a crash, or a store that was down
// when a failed upload tried to abort, left behind. grace must exceed the
// longest upload another instance sharing the store may be making.
func (s *Service) CollectIncomplete(ctx context.Context, grace time.Duration) (int, error) {
	n, err := s.blobs.SweepIncomplete(ctx, time.Now().Add(-grace))
	if err != nil {
		return n, fmt.Errorf("sweep incomplete uploads: %w", err)
	}
	return n, nil
}
