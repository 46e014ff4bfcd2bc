package vault

import (
	"context"
	"fmt"
	"time"
)

// CollectOrphans deletes blobs that no material references and that are
// older than grace: uploads whose process died between the blob write and
// the material row. The grace period keeps uploads in flight safe.
func (s *Service) CollectOrphans(ctx context.Context, grace time.Duration) (int, error) {
	cutoff := time.Now().Add(-grace)
	var candidates []string
	err := s.blobs.List(ctx, func(id string, mod time.Time) error {
		if mod.Before(cutoff) {
			candidates = append(candidates, id)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list blobs: %w", err)
	}
	n := 0
	for len(candidates) > 0 {
		batch := candidates[:min(len(candidates), 500)]
		candidates = candidates[len(batch):]
		var known []string
		if err := s.db.WithContext(ctx).Model(&materialRow{}).Where("blob_id IN ?", batch).Pluck("blob_id", &known).Error; err != nil {
			return n, fmt.Errorf("match blobs to materials: %w", err)
		}
		ref := make(map[string]bool, len(known))
		for _, k := range known {
			ref[k] = true
		}
		for _, id := range batch {
			if ref[id] {
				continue
			}
			if err := s.blobs.Delete(ctx, id); err != nil {
				return n, fmt.Errorf("delete orphan blob: %w", err)
			}
			n++
		}
	}
	return n, nil
}
