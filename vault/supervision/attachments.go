package supervision

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/crypt"
)

// Attachment is a file arriving with a report. Body is read once.
type Attachment struct {
	Filename    string
	ContentType string
	Body        io.Reader
	Size        int64 // declared length, -1 when unknown
}

// supervisionKey returns the supervision key, creating it (wrapped to the
// master key) on first use. Two instances racing settle on one row.
func (s *Service) supervisionKey(ctx context.Context) (*crypt.CaseKey, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	var row keyRow
	err := s.db.WithContext(ctx).Where("id = ?", "current").Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		err = s.keys.StoreNewKey(ctx, func(tx *gorm.DB, w crypt.Wrapped, key *crypt.CaseKey) error {
			row = keyRow{ID: "current", Wrapped: w.Data, Master: w.Master, Escrow: w.Escrow, CreatedAt: time.Now().UTC(),
				Tag: vault.KeyTag(key, "supervision_keys", "current")}
			return tx.Create(&row).Error
		})
		if serr := err; serr != nil {
			// Another instance may have won the race; take its key.
			if err = s.db.WithContext(ctx).Where("id = ?", "current").Take(&row).Error; err != nil {
				err = fmt.Errorf("create: %w; then read: %w", serr, err)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load supervision key: %w", err)
	}
	k, err := s.keys.OpenTaggedKey(ctx, "supervision_keys", row.ID, crypt.Wrapped{Data: row.Wrapped, Master: row.Master, Escrow: row.Escrow}, row.Tag)
	if err != nil {
		return nil, fmt.Errorf("open supervision key: %w", err)
	}
	s.key = k
	return k, nil
}

// AddAttachment streams a file onto the receipt holder's open report,
// encrypted to the supervision key: no plaintext is buffered or written.
func (s *Service) AddAttachment(ctx context.Context, cl Client, receipt string, up Attachment) (AttachmentInfo, error) {
	row, err := s.byReceipt(ctx, cl, receipt, "report.attach")
	if err != nil {
		return AttachmentInfo{}, err
	}
	if row.Status == ReportClosed {
		return AttachmentInfo{}, conflict("report_closed", "this report is closed")
	}
	filename, err := vault.SanitizeFilename(cmp.Or(up.Filename, "attachment"))
	if err != nil {
		return AttachmentInfo{}, err
	}
	ctype := "application/octet-stream"
	if up.ContentType != "" {
		mt, params, perr := mime.ParseMediaType(up.ContentType)
		if perr != nil || len(up.ContentType) > 255 {
			return AttachmentInfo{}, invalid("content_type", "invalid_content_type", "content type is not a valid media type")
		}
		ctype = mime.FormatMediaType(mt, params)
	}
	if up.Size > s.cfg.MaxAttachmentSize {
		return AttachmentInfo{}, &vault.Error{Kind: vault.ErrTooLarge, Code: "too_large", Detail: fmt.Sprintf("the limit is %d bytes", s.cfg.MaxAttachmentSize)}
	}
	// Refused early when the report is already full, before the upload;
	// the count that decides is the one made again with the row stored.
	var used attachmentUse
	if err := s.db.WithContext(ctx).Model(&attachmentRow{}).Select("COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes").
		Where("report_id = ?", row.ID).Scan(&used).Error; err != nil {
		return AttachmentInfo{}, fmt.Errorf("count attachments of report %s: %w", row.ID, err)
	}
	if err := s.attachmentRoom(used, 1); err != nil {
		return AttachmentInfo{}, err
	}
	limit := min(s.cfg.MaxAttachmentSize, s.cfg.MaxReportBytes-used.Bytes)
	key, err := s.supervisionKey(ctx)
	if err != nil {
		return AttachmentInfo{}, err
	}
	a := attachmentRow{ID: newID(), ReportID: row.ID, ContentType: ctype, BlobID: "sv" + newID()}
	if a.Filename, err = s.seal(ctx, label("supervision_report_attachments", "filename", a.ID), filename); err != nil {
		return AttachmentInfo{}, err
	}
	if err := s.record(ctx, anonEvent(cl.RequestID, "report.attach", audit.Allowed, "report/"+row.ID+"/attachment/"+a.ID, "")); err != nil {
		return AttachmentInfo{}, err
	}
	if up.Size > limit {
		return AttachmentInfo{}, s.attachmentLimit()
	}
	sealed, err := s.vault.SealBlob(ctx, key, a.BlobID, up.Body, up.Size, limit)
	if err != nil {
		var ve *vault.Error
		if limit < s.cfg.MaxAttachmentSize && errors.As(err, &ve) && ve.Code == "too_large" {
			// Too large for what the report has left, not for one file.
			return AttachmentInfo{}, s.attachmentLimit()
		}
		return AttachmentInfo{}, err
	}
	a.Size, a.SHA256, a.Header = sealed.Size, sealed.SHA256, sealed.Header
	a.CreatedAt = s.cfg.Now().UTC().Truncate(time.Microsecond)
	err = s.appendToReport(ctx, row.ID, func(tx *gorm.DB) error {
		var used attachmentUse
		if err := tx.Model(&attachmentRow{}).Select("COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes").
			Where("report_id = ?", row.ID).Scan(&used).Error; err != nil {
			return fmt.Errorf("count attachments of report %s: %w", row.ID, err)
		}
		if err := s.attachmentRoom(used, a.Size); err != nil {
			return err
		}
		if err := tx.Create(&a).Error; err != nil {
			return fmt.Errorf("record attachment: %w", err)
		}
		return nil
	})
	if err != nil {
		// Unless the row may have committed all the same (a connection
		// lost during COMMIT): the janitor, which keeps what is
		// referenced, takes that blob later.
		if !sqldb.CommitUnknown(err) {
			_ = s.blobs.Delete(context.WithoutCancel(ctx), a.BlobID)
		}
		return AttachmentInfo{}, err
	}
	return s.toAttachment(ctx, a)
}

// attachmentUse is what a report's attachments take.
type attachmentUse struct {
	N     int64
	Bytes int64
}

// attachmentRoom says whether the report, using used, takes one more
// attachment of size bytes.
func (s *Service) attachmentRoom(used attachmentUse, size int64) error {
	if used.N >= int64(s.cfg.MaxAttachmentsPerReport) || used.Bytes+size > s.cfg.MaxReportBytes {
		return s.attachmentLimit()
	}
	return nil
}

func (s *Service) attachmentLimit() error {
	return invalid("attachment", "attachment_limit", fmt.Sprintf("a report takes at most %d attachments of %d bytes together",
		s.cfg.MaxAttachmentsPerReport, s.cfg.MaxReportBytes))
}

// AttachmentContent is an opened attachment; the caller must Close it.
type AttachmentContent struct {
	Info  AttachmentInfo
	Body  io.Reader
	close func() error
}

// Close releases the blob.
func (c *AttachmentContent) Close() error { return c.close() }

// OpenAttachment decrypts a report attachment for an inspector, after the
// read is audited; no record, no bytes.
func (s *Service) OpenAttachment(ctx context.Context, a vault.Actor, reportID, id string) (*AttachmentContent, error) {
	if _, _, err := s.inspectorReport(ctx, a, reportID, "report.attachment.read", false); err != nil {
		return nil, err
	}
	resource := "report/" + reportID + "/attachment/" + id
	var row attachmentRow
	err := gorm.ErrRecordNotFound
	if validID(id) {
		err = s.db.WithContext(ctx).Where("id = ? AND report_id = ?", id, reportID).Take(&row).Error
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, s.deny(ctx, event(a, "report.attachment.read", audit.Allowed, "", resource, ""), notFound("attachment"))
	}
	if err != nil {
		return nil, fmt.Errorf("load attachment %s: %w", id, err)
	}
	if err := s.record(ctx, event(a, "report.attachment.read", audit.Allowed, "", resource, "")); err != nil {
		return nil, err
	}
	key, err := s.supervisionKey(ctx)
	if err != nil {
		return nil, err
	}
	info, err := s.toAttachment(ctx, row)
	if err != nil {
		return nil, err
	}
	body, closeFn, err := s.vault.OpenSealed(ctx, key, row.Header, row.BlobID, row.Size, nil)
	if err != nil {
		return nil, fmt.Errorf("open attachment %s: %w", id, err)
	}
	return &AttachmentContent{Info: info, Body: body, close: closeFn}, nil
}

// ReferencedBlobs reports which of ids hold report attachments, so the
// vault's orphan collector leaves them alone (vault.BlobRefs).
func (s *Service) ReferencedBlobs(ctx context.Context, ids []string) ([]string, error) {
	var known []string
	if err := s.db.WithContext(ctx).Model(&attachmentRow{}).Where("blob_id IN ?", ids).Pluck("blob_id", &known).Error; err != nil {
		return nil, fmt.Errorf("match blobs to report attachments: %w", err)
	}
	return known, nil
}
