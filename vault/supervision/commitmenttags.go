package supervision

// A commitment's provider_org and operator_org decide which organisations
// list it, and its case_id on which case it is urged; they are plain
// columns a database administrator can edit (review h30h F3 closed the
// operator_org half by also requiring the case's parties tag; swapping
// provider_org between two providers of one case was still obeyed). Each
// commitment carries a tag under the vault's rows key (vault.RowsKey) over
// its id, case, provider and operator organisations, kind and author,
// all fixed when it is recorded. A row whose tag fails is visible to no
// organisation: a party neither lists nor urges it; inspectors and the
// office still list it, shown without its provider and operator (so that
// a damaged row is visible as one), and a finding on it answers
// not_found. Each refusal is logged at ERROR and counted in
// crvault_vault_row_tag_refusals_total{table="supervision_commitments"}.
//
// The urges and findings of a commitment (supervision_commitment_urges,
// _changes) are listed with it by their commitment_id, and their notes
// are sealed under labels naming their own ids, not the commitment's: a
// database administrator who moved one under another commitment would
// show its note to that commitment's parties. Each carries a tag under the
// same key over its id, commitment and author, and an urge its author's
// organisation, a finding its version and status; both their time (tagTime:
// microseconds since the epoch, which both backends keep exactly). One
// whose tag fails is left out of the commitment for everyone, staff
// included: the urge or finding may be another commitment's, so there is
// no commitment to show it under, and the response has no field to mark a
// placeholder. The refusal is logged at ERROR and counted under its table.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/crypt"
)

// commitmentsTable is the table a commitment's tag names, and the label
// of its refusals.
const commitmentsTable = "supervision_commitments"

// commitmentFields are the columns of a commitment its tag covers.
func commitmentFields(r *commitmentRow) []string {
	return []string{r.ID, r.CaseID, r.ProviderOrg, r.OperatorOrg, r.Kind, r.CreatedBy}
}

// commitmentTag is the tag of a commitment under the rows key.
func commitmentTag(key *crypt.CaseKey, r *commitmentRow) []byte {
	return key.RowTag(commitmentsTable, commitmentFields(r)...)
}

// commitmentChecker checks commitments' tags, one checker per request (a
// list reuses its HMAC for every row).
func (s *Service) commitmentChecker(ctx context.Context) (*crypt.RowTagChecker, error) {
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("check commitments: %w", err)
	}
	return key.NewRowTagChecker(commitmentsTable), nil
}

// commitmentChecked says whether r's tag checks, logging at ERROR and
// counting one that does not.
func (s *Service) commitmentChecked(ctx context.Context, chk *crypt.RowTagChecker, r *commitmentRow) bool {
	for _, f := range commitmentFields(r) {
		chk.FieldString(f)
	}
	if chk.Check(r.Tag) {
		return true
	}
	s.vault.TagRefused(ctx, commitmentsTable, r.ID,
		"commitment refused: its row tag does not check (case, provider or operator edited outside crvault, or written by an older vaultd)",
		"case", r.CaseID, "provider_org", r.ProviderOrg, "operator_org", r.OperatorOrg, "tagged", len(r.Tag) > 0)
	return false
}

// Tables whose tags bind a commitment's urges and findings, and the
// labels of their refusals.
const (
	urgesTable   = "supervision_commitment_urges"
	changesTable = "supervision_commitment_changes"
)

// tagTime is a time as a tag covers it: microseconds since the epoch, what
// PostgreSQL keeps (SQLite keeps more). Times in tagged rows are truncated
// to microseconds before they are written, so the value read back from
// either backend is the value tagged.
func tagTime(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// urgeFields are the columns of an urge its tag covers.
func urgeFields(u *urgeRow) []string {
	return []string{u.ID, u.CommitmentID, u.By, u.ByOrg, tagTime(u.At)}
}

// urgeTag is the tag of an urge under the rows key.
func urgeTag(key *crypt.CaseKey, u *urgeRow) []byte { return key.RowTag(urgesTable, urgeFields(u)...) }

// changeFields are the columns of a finding its tag covers.
func changeFields(h *commitmentChangeRow) []string {
	return []string{h.ID, h.CommitmentID, strconv.Itoa(h.Version), h.Status, h.By, tagTime(h.At)}
}

// changeTag is the tag of a finding under the rows key.
func changeTag(key *crypt.CaseKey, h *commitmentChangeRow) []byte {
	return key.RowTag(changesTable, changeFields(h)...)
}

// urgeChecked says whether u's tag checks under key, logging at ERROR and
// counting one that does not.
func (s *Service) urgeChecked(ctx context.Context, key *crypt.CaseKey, u *urgeRow) bool {
	if key.CheckRowTag(u.Tag, urgesTable, urgeFields(u)...) {
		return true
	}
	s.vault.TagRefused(ctx, urgesTable, u.ID,
		"commitment urge refused: its row tag does not check (commitment, author or time edited outside crvault, or written by an older vaultd)",
		"commitment", u.CommitmentID, "by", u.By, "by_org", u.ByOrg, "tagged", len(u.Tag) > 0)
	return false
}

// changeChecked says whether h's tag checks under key, logging at ERROR
// and counting one that does not.
func (s *Service) changeChecked(ctx context.Context, key *crypt.CaseKey, h *commitmentChangeRow) bool {
	if key.CheckRowTag(h.Tag, changesTable, changeFields(h)...) {
		return true
	}
	s.vault.TagRefused(ctx, changesTable, h.ID,
		"commitment finding refused: its row tag does not check (commitment, version, status, inspector or time edited outside crvault, or written by an older vaultd)",
		"commitment", h.CommitmentID, "version", h.Version, "status", h.Status, "tagged", len(h.Tag) > 0)
	return false
}

// TagLegacyRows tags, once per table, the commitments, urges, findings
// and reports that binaries from before their tags wrote, moves findings
// recorded before histories were kept into the history, and records each
// in the audit log (vault.TagBackfillOnce: after that, an untagged row stays
// refused). cmd/vaultd runs it at start-up, before anything is served.
func (s *Service) TagLegacyRows(ctx context.Context) error {
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return err
	}
	if err := vault.TagBackfillOnce(ctx, s.audit, commitmentsTable, func(ctx context.Context) (int64, error) {
		return tagUntagged(ctx, s.db, []string{"id", "case_id", "provider_org", "operator_org", "kind", "created_by"},
			func(r *commitmentRow) string { return r.ID }, func(r *commitmentRow) []byte { return commitmentTag(key, r) })
	}); err != nil {
		return err
	}
	if err := vault.TagBackfillOnce(ctx, s.audit, urgesTable, func(ctx context.Context) (int64, error) {
		return tagUntagged(ctx, s.db, []string{"id", "commitment_id", "by", "by_org", "at"},
			func(r *urgeRow) string { return r.ID }, func(r *urgeRow) []byte { return urgeTag(key, r) })
	}); err != nil {
		return err
	}
	if err := vault.TagBackfillOnce(ctx, s.audit, changesTable, func(ctx context.Context) (int64, error) {
		return tagUntagged(ctx, s.db, []string{"id", "commitment_id", "version", "status", "by", "at"},
			func(r *commitmentChangeRow) string { return r.ID }, func(r *commitmentChangeRow) []byte { return changeTag(key, r) })
	}); err != nil {
		return err
	}
	// Findings recorded before histories were kept become the first of
	// their history, so that every status is proven by a finding.
	if err := vault.TagBackfillOnce(ctx, s.audit, legacyStatusMarker, func(ctx context.Context) (int64, error) {
		return s.historiseLegacyFindings(ctx, key)
	}); err != nil {
		return err
	}
	return vault.TagBackfillOnce(ctx, s.audit, reportsTable, func(ctx context.Context) (int64, error) {
		return tagUntagged(ctx, s.db, []string{"id", "receipt_hash", "subject_org", "commitment", "status", "link_provider", "link_commitment", "link_case"},
			func(r *reportRow) string { return r.ID }, func(r *reportRow) []byte { return reportTag(key, r) })
	})
}

// tagUntagged tags the rows of R's table whose tag is empty, reading the
// columns cols (those the tag covers; a list, so that gorm quotes "by"), a
// batch a transaction (vault.TagInBatches). It updates only rows still
// untagged, so two instances starting together tag each row once.
func tagUntagged[R any](ctx context.Context, db *gorm.DB, cols []string, id func(*R) string, tag func(*R) []byte) (int64, error) {
	return vault.TagInBatches(ctx, db, func(db *gorm.DB, after string) (rows []R, err error) {
		if err := db.Model(new(R)).Select(cols).Where("length(tag) = 0 AND id > ?", after).Order("id").Limit(vault.TagBatch).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("read untagged rows: %w", err)
		}
		return rows, nil
	}, func(r R) string { return id(&r) }, func(tx *gorm.DB, r R) (int64, error) {
		res := tx.Model(new(R)).Where("id = ? AND length(tag) = 0", id(&r)).UpdateColumn("tag", tag(&r))
		if res.Error != nil {
			return 0, fmt.Errorf("tag row %s: %w", id(&r), res.Error)
		}
		return res.RowsAffected, nil
	})
}

// A commitment's status columns (status, status_note, status_by,
// status_at, version) hold its latest finding, which is also a row of
// supervision_commitment_changes with its own tag. They are checked
// against that row rather than given a tag of their own: a status tag
// would still check after the latest finding was deleted, or after an
// older status and its tag were put back while the later findings
// remain, and the findings are read with the commitment anyway. The
// columns prove a status when, with version N > 0, the latest finding
// whose tag checks has version N and the columns' status, inspector and
// time; with version 0, the status is pending and no finding checks. The
// note, inspector and time shown are the finding's. A commitment whose
// columns prove nothing is treated like one whose own tag fails: no party
// lists or urges it, inspectors and the office list it with the status
// CommitmentUnverified and none of the columns' note, inspector or time, a
// finding on it answers commitment_status_damaged, and each refusal is
// logged at ERROR and counted under supervision_commitments. Findings
// recorded before histories were kept (version 0, a status other than
// pending) are moved into the history once at start-up (TagLegacyRows).

// statusProven says whether r's status columns are those of the latest of
// its findings hs (those whose tags check, oldest first).
func statusProven(r *commitmentRow, hs []commitmentChangeRow) bool {
	if r.Version == 0 {
		return (r.Status == CommitmentPending || r.Status == "") && len(hs) == 0
	}
	if len(hs) == 0 || r.StatusAt == nil {
		return false
	}
	last := &hs[len(hs)-1]
	return last.Version == r.Version && last.Status == r.Status && last.By == r.StatusBy && tagTime(last.At) == tagTime(*r.StatusAt)
}

// statusReads is how many times a commitment's status columns and its
// findings are read before columns that disagree are refused.
const statusReads = 3

// findings loads r's findings whose tags check, oldest first, and says
// whether r's status columns are proven by them (statusProven). A finding
// recorded between the read of r and that of its findings makes the two
// disagree: then, if the row's version has moved meanwhile, its status
// columns (only: its other columns were checked by the caller) are read
// again with the findings. Columns that still disagree are logged at ERROR
// and counted.
func (s *Service) findings(ctx context.Context, key *crypt.CaseKey, r *commitmentRow) ([]commitmentChangeRow, bool, error) {
	db := s.db.WithContext(ctx)
	for read := 1; ; read++ {
		var all []commitmentChangeRow
		if err := db.Where("commitment_id = ?", r.ID).Order("version").Find(&all).Error; err != nil {
			return nil, false, fmt.Errorf("load history of commitment %s: %w", r.ID, err)
		}
		hs := all[:0]
		for _, h := range all {
			if s.changeChecked(ctx, key, &h) {
				hs = append(hs, h)
			}
		}
		if statusProven(r, hs) {
			return hs, true, nil
		}
		var now commitmentRow
		err := db.Select("status", "status_note", "status_by", "status_at", "version").Where("id = ?", r.ID).Take(&now).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, false, fmt.Errorf("reload status of commitment %s: %w", r.ID, err)
		}
		if err != nil || now.Version == r.Version || read == statusReads {
			s.vault.TagRefused(ctx, commitmentsTable, r.ID,
				"commitment status refused: its status columns are not those of its latest finding (status, version or a finding edited or deleted outside crvault)",
				"case", r.CaseID, "status", r.Status, "version", r.Version, "findings", len(hs))
			return hs, false, nil
		}
		r.Status, r.StatusNote, r.StatusBy, r.StatusAt, r.Version = now.Status, now.StatusNote, now.StatusBy, now.StatusAt, now.Version
	}
}

// statusDamaged answers a finding on a commitment whose status columns
// prove nothing.
func statusDamaged() *vault.Error {
	return &vault.Error{Kind: vault.ErrDamaged, Code: "commitment_status_damaged",
		Detail: "the stored status of this commitment is not that of its recorded findings (changed outside crvault); no finding can be recorded until it is restored"}
}

// legacyStatusMarker names, in the audit log, the one-time move of
// findings recorded before histories were kept into the history.
const legacyStatusMarker = commitmentsTable + ".status"

// historiseLegacyFindings makes, of each commitment whose finding was
// recorded before histories were kept (version 0, a status other than
// pending), its first finding: a tagged row of the history, version 1,
// with the columns' status, inspector, time and note, and the commitment's
// version 1. It trusts the columns, as every backfill trusts the rows it
// tags. Two instances starting together move each once: the version is
// moved from 0 in the transaction that inserts the finding.
func (s *Service) historiseLegacyFindings(ctx context.Context, key *crypt.CaseKey) (int64, error) {
	db := s.db.WithContext(ctx)
	var rows []commitmentRow
	if err := db.Where("version = 0 AND status NOT IN ?", []string{CommitmentPending, ""}).Order("id").Find(&rows).Error; err != nil {
		return 0, fmt.Errorf("read findings recorded before histories: %w", err)
	}
	var n int64
	for _, r := range rows {
		// Sealing legacy plaintext runs after this: a note may be either.
		note := string(r.StatusNote)
		if crypt.IsSealedField(r.StatusNote) {
			var err error
			if note, err = s.open(ctx, label(commitmentsTable, "status_note", r.ID), r.StatusNote); err != nil {
				return n, err
			}
		}
		at := r.CreatedAt
		if r.StatusAt != nil {
			at = *r.StatusAt
		}
		h := commitmentChangeRow{ID: newID(), CommitmentID: r.ID, Version: 1, Status: r.Status, By: r.StatusBy, At: at.UTC().Truncate(time.Microsecond)}
		var err error
		if h.Note, err = s.seal(ctx, label(changesTable, "note", h.ID), note); err != nil {
			return n, err
		}
		h.Tag = changeTag(key, &h)
		err = db.Transaction(func(tx *gorm.DB) error {
			res := tx.Model(&commitmentRow{}).Where("id = ? AND version = 0", r.ID).Updates(map[string]any{"version": 1, "status_at": h.At})
			if res.Error != nil {
				return fmt.Errorf("move finding of commitment %s: %w", r.ID, res.Error)
			}
			if res.RowsAffected != 1 {
				return nil
			}
			n++
			if err := tx.Create(&h).Error; err != nil {
				return fmt.Errorf("record finding of commitment %s: %w", r.ID, err)
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
