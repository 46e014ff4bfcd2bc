package supervision

// A report's links (link_provider, link_commitment, link_case), what its
// reporter named (subject_org, commitment) and its status are plain
// columns a database administrator can edit: re-linked to one of the
// office's cases or to a commitment on one, a report is listed to the
// office; linked elsewhere, it points the inspectors at another case,
// commitment or provider; closed, its reporter can no longer write, and
// reopened, a closed report takes messages again. (No party lists reports:
// only inspectors and the office do.) Its receipt_hash decides who follows
// it up: replaced by the hash of a secret of the administrator's choosing,
// it would open the conversation to them. Each report carries a tag under
// the vault's rows key over its id and those columns, written wherever they
// are written (filed, and re-tagged in the statement that triages, links
// or closes it, conditional on the tag it read, so that two inspectors'
// updates cannot combine into columns neither tagged). A report whose tag
// fails is listed to inspectors with the status ReportUnverified and
// without its links and what its reporter named, and not to the office;
// its status cannot be moved, nor a message or attachment added, by
// anyone (report_damaged); each refusal is logged at ERROR and counted in
// crvault_vault_row_tag_refusals_total{table="supervision_reports"}. The
// counts by status (reports list, workload, metrics) are numbers counted
// in SQL and are not checked.

import (
	"context"

	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/crypt"
)

// reportsTable is the table a report's tag names, and the label of its
// refusals.
const reportsTable = "supervision_reports"

// ReportUnverified is shown to inspectors in place of the status of a
// report whose row tag does not check.
const ReportUnverified = "unverified"

// reportFields are the columns of a report its tag covers.
func reportFields(r *reportRow) []string {
	return []string{r.ID, r.ReceiptHash, r.SubjectOrg, r.Commitment, r.Status, r.LinkProvider, r.LinkCommitment, r.LinkCase}
}

// reportTag is the tag of a report under the rows key.
func reportTag(key *crypt.CaseKey, r *reportRow) []byte {
	return key.RowTag(reportsTable, reportFields(r)...)
}

// reportChecked says whether r's tag checks under key, logging at ERROR
// and counting one that does not.
func (s *Service) reportChecked(ctx context.Context, key *crypt.CaseKey, r *reportRow) bool {
	if key.CheckRowTag(r.Tag, reportsTable, reportFields(r)...) {
		return true
	}
	s.vault.TagRefused(ctx, reportsTable, r.ID,
		"report refused: its row tag does not check (links, named organisation or commitment, status or receipt hash edited outside crvault, or written by an older vaultd)",
		"status", r.Status, "link_case", r.LinkCase, "link_commitment", r.LinkCommitment, "link_provider", r.LinkProvider, "tagged", len(r.Tag) > 0)
	return false
}

// reportProven checks r's tag under the rows key, logging and counting
// one that fails.
func (s *Service) reportProven(ctx context.Context, r *reportRow) (bool, error) {
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return false, err
	}
	return s.reportChecked(ctx, key, r), nil
}

// reportDamaged answers an action on a report whose tag fails.
func reportDamaged() *vault.Error {
	return &vault.Error{Kind: vault.ErrDamaged, Code: "report_damaged",
		Detail: "the stored status or links of this report do not authenticate (changed outside crvault); nothing can be done on it until it is restored"}
}

// unverifiedReport is what inspectors are shown of a report whose tag
// fails: nothing of the columns the tag did not prove.
func unverifiedReport(r reportRow) reportRow {
	r.Status, r.SubjectOrg, r.Commitment, r.LinkProvider, r.LinkCommitment, r.LinkCase = ReportUnverified, "", "", "", "", ""
	return r
}
