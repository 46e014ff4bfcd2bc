package supervision

// A complaint's case_id, filed_by and filed_by_org decide who sees it,
// its subject who is recused, and its status, outcome and resolution
// whether an inspector may still act on it: plain columns a database
// administrator can edit, moving a complaint to another case or filer,
// naming another reviewer, or closing and reopening it. Each complaint
// therefore carries two tags under the vault's rows key (vault.RowsKey):
//
//   - tag, over what is fixed when it is filed: id, case, kind, filer and
//     the filer's organisation, filing time, subject as filed and the
//     evidence it cites (which lets inspectors read those materials,
//     vault's EvidenceIndex);
//   - state_tag, over what each change rewrites: id, status, outcome,
//     subject_recused, reassignment_requested, resolved_at and updated_at,
//     written in the same UPDATE that changes them.
//
// A second tag rather than deriving the state from the latest change row
// alone: status, outcome, recusal and times are what the lists filter and
// show, and with their own tag each row is checked as it is read, no
// state rebuilt from a history. The history is still checked against it
// (checkComplaints): a state tag cannot tell an earlier genuine state put
// back (a replay, which vault/rowtags.go says no tag can) from the
// current one, but the status of the latest change row, each tagged, can
// (an upheld complaint put back to investigating still has its upheld
// change). What neither catches is a replay with the later change rows
// deleted too; the audit log holds every transition (complaint.status,
// complaint.resolve) for that.
//
// A complaint whose tag or state tag fails is damaged: no party sees it
// (its filer neither lists nor reads it), inspectors and office admins
// list and read it marked damaged, without the filer, subject and
// evidence when its fixed tag fails, and every action on it (a status, a
// resolution, an evidence bundle) is refused with complaint_damaged. In
// counts and the inspectors' queue it is counted under "damaged", its
// stored status being untrusted. Each refusal is logged at ERROR and
// counted in crvault_vault_row_tag_refusals_total{table="supervision_complaints"}.
//
// Each change row (supervision_complaint_changes) carries a tag over its
// id, complaint, status, actions, inspector and time. Its note is sealed
// under a label naming the complaint and status (sealing.go), so a note
// moved to another complaint does not open there; the tag makes that
// move, and an edit of its status, actions or inspector, a row left out
// of the history for everyone (logged and counted under its table) rather
// than an error. Subject recusal itself is not read from the complaint:
// access enforces it from access_recusals and the audit trail
// (access/trailends.go), so clearing subject_recused lets nobody back in;
// the state tag keeps the flag shown true.

import (
	"context"
	"fmt"
	"strconv"

	"gorm.io/gorm"

	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/crypt"
)

// Tables and tag domains of complaints. The state tag has its own domain,
// so that neither tag can stand for the other.
const (
	complaintsTable       = "supervision_complaints"
	complaintStateDomain  = "supervision_complaints.state"
	complaintChangesTable = "supervision_complaint_changes"
	// countDamaged is the key under which counts hold damaged complaints.
	countDamaged = "damaged"
)

// complaintFields are the columns fixed at filing that a complaint's tag
// covers.
func complaintFields(r *complaintRow) []string {
	return []string{r.ID, r.CaseID, r.Kind, r.FiledBy, r.FiledByOrg, tagTime(r.FiledAt), r.Subject, r.Evidence}
}

// complaintStateFields are the columns each change rewrites, which the
// state tag covers.
func complaintStateFields(r *complaintRow) []string {
	resolved := ""
	if r.ResolvedAt != nil {
		resolved = tagTime(*r.ResolvedAt)
	}
	return []string{r.ID, r.Status, r.Outcome, strconv.FormatBool(r.SubjectRecused),
		strconv.FormatBool(r.ReassignmentRequested), resolved, tagTime(r.UpdatedAt)}
}

// complaintTagColumns are the columns a complaint's tags cover, with the
// tags: what the backfill and the counts read (all but the description).
var complaintTagColumns = []string{"id", "case_id", "kind", "filed_by", "filed_by_org", "filed_at", "subject", "evidence",
	"status", "outcome", "subject_recused", "reassignment_requested", "resolved_at", "updated_at", "tag", "state_tag"}

// tagComplaint sets both tags of r under key.
func tagComplaint(key *crypt.CaseKey, r *complaintRow) {
	r.Tag = key.RowTag(complaintsTable, complaintFields(r)...)
	r.StateTag = key.RowTag(complaintStateDomain, complaintStateFields(r)...)
}

// complaintChangeFields are the columns of a change row its tag covers.
func complaintChangeFields(h *complaintChangeRow) []string {
	return []string{strconv.FormatUint(uint64(h.ID), 10), h.ComplaintID, h.Status, h.Actions, h.By, tagTime(h.At)}
}

// complaintChangeTag is the tag of a change row under the rows key.
func complaintChangeTag(key *crypt.CaseKey, h *complaintChangeRow) []byte {
	return key.RowTag(complaintChangesTable, complaintChangeFields(h)...)
}

// complaintDamaged is the refusal of an action on a damaged complaint.
func complaintDamaged() *vault.Error {
	return &vault.Error{Kind: vault.ErrDamaged, Code: "complaint_damaged",
		Detail: "the stored complaint does not authenticate (changed outside crvault); nothing can be done on it until it is restored; the operator has been told"}
}

// complaintChangeChecked says whether h's tag checks under key, logging at
// ERROR and counting one that does not.
func (s *Service) complaintChangeChecked(ctx context.Context, key *crypt.CaseKey, h *complaintChangeRow) bool {
	if key.CheckRowTag(h.Tag, complaintChangesTable, complaintChangeFields(h)...) {
		return true
	}
	s.vault.TagRefused(ctx, complaintChangesTable, strconv.FormatUint(uint64(h.ID), 10),
		"complaint change refused: its row tag does not check (complaint, status, actions, inspector or time edited outside crvault, or written by an older vaultd)",
		"complaint", h.ComplaintID, "status", h.Status, "tagged", len(h.Tag) > 0)
	return false
}

// checkComplaints checks the tags of rows in place (setting badFixed and
// badState), and their histories: the change rows of each, left out when
// their tag fails, and the status of its latest verified change against
// its own (open when it has none). Every status but open is reached by a
// change written in the same transaction, so a complaint whose status is
// not its latest change's had a change row deleted or edited, or was put
// back to an earlier state (with that state's genuine tag): its state is
// not to be trusted (badState). It answers each complaint's verified
// history, by id.
func (s *Service) checkComplaints(ctx context.Context, rows []complaintRow) (map[string][]complaintChangeRow, error) {
	history := map[string][]complaintChangeRow{}
	if len(rows) == 0 {
		return history, nil
	}
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("check complaints: %w", err)
	}
	ids := make([]string, len(rows))
	for i := range rows {
		ids[i] = rows[i].ID
	}
	const chunk = 500
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		var changes []complaintChangeRow
		if err := s.db.WithContext(ctx).Where("complaint_id IN ?", ids[:n]).Order("id").Find(&changes).Error; err != nil {
			return nil, fmt.Errorf("load complaint changes: %w", err)
		}
		for _, h := range changes {
			if s.complaintChangeChecked(ctx, key, &h) {
				history[h.ComplaintID] = append(history[h.ComplaintID], h)
			}
		}
		ids = ids[n:]
	}
	for i := range rows {
		r := &rows[i]
		r.badFixed = !key.CheckRowTag(r.Tag, complaintsTable, complaintFields(r)...)
		r.badState = !key.CheckRowTag(r.StateTag, complaintStateDomain, complaintStateFields(r)...)
		latest := StatusOpen
		if h := history[r.ID]; len(h) > 0 {
			latest = h[len(h)-1].Status
		}
		if r.damaged() {
			s.vault.TagRefused(ctx, complaintsTable, r.ID,
				"complaint refused: its row tags do not check (case, filer, subject, evidence or state edited outside crvault, or written by an older vaultd)",
				"case", r.CaseID, "filed_by", r.FiledBy, "filed_by_org", r.FiledByOrg, "status", r.Status,
				"fixed_ok", !r.badFixed, "state_ok", !r.badState, "tagged", len(r.Tag) > 0)
		} else if latest != r.Status {
			r.badState = true
			s.vault.TagRefused(ctx, complaintChangesTable, "complaint/"+r.ID,
				"complaint refused: its status is not that of its latest change (a change row deleted or edited outside crvault, or the complaint put back to an earlier state)",
				"complaint", r.ID, "status", r.Status, "latest_change", latest)
		}
	}
	return history, nil
}

// TagLegacyComplaints tags, once per table, the complaints and their
// changes that binaries from before their tags wrote, and records each in
// the audit log (vault.TagBackfillOnce: after that, an untagged row stays
// refused). cmd/vaultd runs it at start-up, before anything is served.
func (s *Service) TagLegacyComplaints(ctx context.Context) error {
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return err
	}
	if err := vault.TagBackfillOnce(ctx, s.audit, complaintsTable, func(ctx context.Context) (int64, error) {
		return vault.TagInBatches(ctx, s.db, func(db *gorm.DB, after string) (rows []complaintRow, err error) {
			if err := db.Select(complaintTagColumns).Where("length(tag) = 0 AND id > ?", after).Order("id").Limit(vault.TagBatch).Find(&rows).Error; err != nil {
				return nil, fmt.Errorf("read untagged complaints: %w", err)
			}
			return rows, nil
		}, func(r complaintRow) string { return r.ID }, func(tx *gorm.DB, r complaintRow) (int64, error) {
			tagComplaint(key, &r)
			res := tx.Model(&complaintRow{}).Where("id = ? AND length(tag) = 0", r.ID).
				UpdateColumns(map[string]any{"tag": r.Tag, "state_tag": r.StateTag})
			if res.Error != nil {
				return 0, fmt.Errorf("tag complaint %s: %w", r.ID, res.Error)
			}
			return res.RowsAffected, nil
		})
	}); err != nil {
		return err
	}
	return vault.TagBackfillOnce(ctx, s.audit, complaintChangesTable, func(ctx context.Context) (int64, error) {
		return vault.TagInBatches(ctx, s.db, func(db *gorm.DB, after string) (rows []complaintChangeRow, err error) {
			var from uint64
			if after != "" {
				if from, err = strconv.ParseUint(after, 10, 64); err != nil {
					return nil, fmt.Errorf("complaint change cursor %q: %w", after, err)
				}
			}
			if err := db.Select([]string{"id", "complaint_id", "status", "actions", "by", "at"}).
				Where("length(tag) = 0 AND id > ?", from).Order("id").Limit(vault.TagBatch).Find(&rows).Error; err != nil {
				return nil, fmt.Errorf("read untagged complaint changes: %w", err)
			}
			return rows, nil
		}, func(h complaintChangeRow) string { return strconv.FormatUint(uint64(h.ID), 10) }, func(tx *gorm.DB, h complaintChangeRow) (int64, error) {
			res := tx.Model(&complaintChangeRow{}).Where("id = ? AND length(tag) = 0", h.ID).UpdateColumn("tag", complaintChangeTag(key, &h))
			if res.Error != nil {
				return 0, fmt.Errorf("tag complaint change %d: %w", h.ID, res.Error)
			}
			return res.RowsAffected, nil
		})
	})
}
