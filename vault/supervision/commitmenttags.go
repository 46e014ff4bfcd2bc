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
// _changes) are not tagged: their notes are sealed under labels naming
// their own ids, not the commitment's.

import (
	"context"
	"fmt"

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

// TagLegacyRows tags, once, the commitments that binaries from before
// their tags wrote, and records it in the audit log (vault.TagBackfillOnce:
// after that, an untagged commitment stays refused). cmd/vaultd runs it at
// start-up, before anything is served.
func (s *Service) TagLegacyRows(ctx context.Context) error {
	return vault.TagBackfillOnce(ctx, s.audit, commitmentsTable, s.tagCommitments)
}

// tagCommitments tags the untagged commitments (vault.TagInBatches).
func (s *Service) tagCommitments(ctx context.Context) (int64, error) {
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return 0, err
	}
	return vault.TagInBatches(ctx, s.db, func(db *gorm.DB, after string) (rows []commitmentRow, err error) {
		if err := db.Select("id, case_id, provider_org, operator_org, kind, created_by").
			Where("length(tag) = 0 AND id > ?", after).Order("id").Limit(vault.TagBatch).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("read commitments: %w", err)
		}
		return rows, nil
	}, func(r commitmentRow) string { return r.ID }, func(tx *gorm.DB, r commitmentRow) (int64, error) {
		res := tx.Model(&commitmentRow{}).Where("id = ? AND length(tag) = 0", r.ID).UpdateColumn("tag", commitmentTag(key, &r))
		if res.Error != nil {
			return 0, fmt.Errorf("tag commitment %s: %w", r.ID, res.Error)
		}
		return res.RowsAffected, nil
	})
}
