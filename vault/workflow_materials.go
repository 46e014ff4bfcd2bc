package vault

// The workflow's part in uploads: supplementary materials answering a
// request (2020 Art. 14 / 2021 Art. 15) and the refusal of classified
// materials (2020 Art. 21 / 2021 Art. 22).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault/review"
)

// ClassifiedMarking reports whether a filename carries a state-secret
// classification marking: 绝密 (top secret), 机密 (secret) or 秘密
// (confidential), the levels of the Law on Guarding State Secrets, as in
// "机密★10年 网络拓扑.pdf". "商业秘密", "商业机密" and "工作秘密" (trade and
// work secrets) are not state-secret levels and do not count.
func ClassifiedMarking(filename string) bool {
	name := filename
	for _, benign := range []string{"商业秘密", "商业机密", "工作秘密"} {
		name = strings.ReplaceAll(name, benign, "")
	}
	for _, level := range []string{"绝密", "机密", "秘密"} {
		if strings.Contains(name, level) {
			return true
		}
	}
	return false
}

// refuseClassified audits and refuses a material marked classified before
// any of its bytes is read: state secrets are handled through the
// state-secrets channel, never stored here.
func (s *Service) refuseClassified(ctx context.Context, a Actor, row caseRow, purpose string) error {
	if err := s.record(ctx, a, "material.upload", audit.Denied, row.ID, "case/"+row.ID, purpose, "classified_material"); err != nil {
		return err
	}
	ed := s.edition()
	if row.Edition != "" {
		if e, err := review.EditionByID(row.Edition); err == nil {
			ed = e
		}
	}
	return fail(ErrInvalid, "classified_material", fmt.Sprintf(
		"this material is marked as holding state secrets; crvault does not store classified information. Submit it through the state-secrets channel under the state secrecy rules (%s). Nothing of it was stored.",
		ed.Cite(review.ArtStateSecrets)))
}

// uploadSupplement stores a supplementary material that answers an open
// supplement request, then records which item it answers; the last item
// received ends the request and restarts the clock the next day. The item
// is checked before a byte is stored.
func (s *Service) uploadSupplement(ctx context.Context, a Actor, row caseRow, purpose string, up Upload) (Material, error) {
	history, err := s.history(ctx, row.ID)
	if err != nil {
		return Material{}, err
	}
	out, err := review.OutstandingItems(history)
	if err != nil {
		return Material{}, fmt.Errorf("supplement items of case %s: %w", row.ID, err)
	}
	deny := func(code, detail string) (Material, error) {
		if err := s.record(ctx, a, "material.upload", audit.Denied, row.ID, "case/"+row.ID, purpose, code); err != nil {
			return Material{}, err
		}
		return Material{}, invalid("item", code, detail)
	}
	switch {
	case row.Status != string(review.AwaitingSupplement):
		return deny("invalid_field", "item is only for uploads answering an open supplement request")
	case len(out) == 0:
		// A request closed without items (or with all received): a plain upload.
		return s.store(ctx, a, row.ID, purpose, up)
	case up.Item == 0:
		up.Item = out[0]
	case !slices.Contains(out, up.Item):
		return deny(review.CodeUnknownItem, fmt.Sprintf("item %d is not an outstanding item of the supplement request (outstanding: %v)", up.Item, out))
	}
	m, err := s.store(ctx, a, row.ID, purpose, up)
	if err != nil {
		return Material{}, err
	}
	role := review.RoleProvider
	if a.P.Has("operator") {
		role = review.RoleOperator
	}
	// The material is stored; recording the item must not lose it to a
	// concurrent transition, so a lost race is retried on the new state.
	var res TransitionResult
	for attempt := 0; ; attempt++ {
		res, err = s.move(ctx, a, row, purpose, "supplement.item", review.SupplementItem, role, review.Input{Item: up.Item, Material: m.ID})
		var ve *Error
		if err == nil || attempt == 2 || !errors.As(err, &ve) || ve.Code != "concurrent_update" {
			break
		}
		fresh, _, _, ferr := s.caseFacts(ctx, row.ID)
		if ferr != nil {
			break
		}
		row = fresh
	}
	switch {
	case err != nil:
		// The office sees the upload and can close the request itself.
		s.log.WarnContext(ctx, "supplementary item stored but not recorded", "case", row.ID, "item", up.Item, "material", m.ID, "err", err)
	case res.noticeDue:
		if c, err := s.openCase(ctx, row, nil); err == nil {
			s.notify(ctx, a, c, purpose, res)
		} else {
			s.log.ErrorContext(ctx, "notice not written; the notice sweeper retries", "case", row.ID, "action", string(res.Event.Action), "err", err)
		}
	}
	return m, nil
}
