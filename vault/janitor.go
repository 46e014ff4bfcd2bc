package vault

import (
	"context"
	"fmt"
	"sync"
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
// that commits it. It works through the store's listing in batches as it
// goes, so its memory stays one batch (and the suspects below) whatever the
// number of blobs.
//
// A blob's age in the store is not enough to keep uploads in flight safe:
// S3 dates an object made by a multipart upload from when the upload began,
// so a document that took longer than grace to arrive looks old the moment
// it is complete, before its row commits. A blob is therefore deleted only
// when it has also been found unreferenced, past the grace, by passes grace
// apart: the first pass that finds it only remembers it, dated when it
// found it (in this process; a new leader starts over, which only delays).
func (s *Service) CollectOrphans(ctx context.Context, grace time.Duration, others ...BlobRefs) (int, error) {
	s.orphans.mu.Lock()
	defer s.orphans.mu.Unlock()
	cutoff := time.Now().Add(-grace)
	owners := append([]BlobRefs{s.ReferencedBlobs}, others...)
	n := 0
	batch := make([]string, 0, orphanBatch)
	suspects := map[string]time.Time{}
	var collectErr error
	collect := func() error {
		// A pass over a large store takes long: each batch is dated when
		// its owners are asked, not when the pass began. The time before
		// the questions says how long a suspect has been unreferenced (at
		// most); the time after, when a new one was found so (at least).
		asked := s.now()
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
		answered := s.now()
		for _, id := range batch {
			if ref[id] {
				continue
			}
			first, seen := s.orphans.seen[id]
			if !seen {
				first = answered
			}
			if asked.Sub(first) < grace {
				if len(suspects) < maxOrphanSuspects {
					suspects[id] = first
				}
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
	// Only a whole pass says what is still unreferenced; a blob referenced
	// since drops out.
	s.orphans.seen = suspects
	return n, nil
}

// orphanSuspects are the blobs the last pass of CollectOrphans found
// unreferenced past the grace, with when a pass first found them.
type orphanSuspects struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// maxOrphanSuspects bounds the suspects remembered between passes (about
// 100 bytes each); more wait for a later pass.
const maxOrphanSuspects = 100_000

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
