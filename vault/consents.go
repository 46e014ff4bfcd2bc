package vault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
)

// Consent is a providing organisation's consent that another party
// organisation of the case may see one of its materials (Art. 16 of the
// 2020 Measures: undisclosed materials reach others only with the
// provider's consent). Reads under it cite it in their audit event's purpose
// as "consent/<id>".
type Consent struct {
	ID         string    `json:"id"`
	MaterialID string    `json:"material_id"`
	Org        string    `json:"org"`
	Purpose    string    `json:"purpose"`
	GrantedBy  string    `json:"granted_by"`
	GrantedAt  time.Time `json:"granted_at"`
}

// NewConsent is the body of POST /materials/{id}/consents.
type NewConsent struct {
	Org     string `json:"org"`
	Purpose string `json:"purpose"`
}

// consentPurpose is what an access under a consent records as its purpose.
func consentPurpose(id string) string { return "consent/" + id }

// visibleMaterial decides whether the caller may see a material (the case
// decision already allowed), by the kind table and, where a party sees
// another party's material only with its consent, by the consents in the
// database now: a withdrawal takes effect on the next request, on every
// instance. consentID names the consent the access goes through.
func (s *Service) visibleMaterial(ctx context.Context, p access.Principal, m materialRow) (visible bool, consentID string, err error) {
	visible, needConsent := kindVisible(p, m.Kind, m.UploaderOrg)
	if !needConsent {
		return visible, "", nil
	}
	// A consent row counts only if its tag checks under the case key
	// (rowtags.go): one HMAC, with the key from the cache.
	var rows []consentRow
	err = s.db.WithContext(ctx).Select(consentTagColumns).Where("material_id = ? AND org_id = ? AND revoked_at IS NULL", m.ID, p.User.OrgID).
		Order("granted_at DESC, id").Limit(1).Find(&rows).Error
	if err != nil {
		return false, "", fmt.Errorf("check consents of material %s: %w", m.ID, err)
	}
	if rows, err = s.liveConsents(ctx, m.CaseID, rows); err != nil {
		return false, "", err
	}
	if len(rows) == 0 {
		return false, "", nil
	}
	return true, rows[0].ID, nil
}

// consentTagColumns are the columns a consent's tag is checked over.
const consentTagColumns = "id, material_id, case_id, org_id, granted_by, tag"

// consentedMaterials maps the materials of a case that org may see under a
// live consent to that consent.
func (s *Service) consentedMaterials(ctx context.Context, caseID, org string) (map[string]string, error) {
	var rows []consentRow
	err := s.db.WithContext(ctx).Select(consentTagColumns).Where("case_id = ? AND org_id = ? AND revoked_at IS NULL", caseID, org).
		Order("granted_at, id").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list consents of case %s: %w", caseID, err)
	}
	if rows, err = s.liveConsents(ctx, caseID, rows); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.MaterialID] = r.ID
	}
	return out, nil
}

// providerMaterial loads a material for a consent action: callers who may
// not see it get not_found, callers outside the organisation that provided
// it get forbidden; both audited.
func (s *Service) providerMaterial(ctx context.Context, a Actor, materialID, event, resource string) (materialRow, error) {
	m, d, err := s.material(ctx, a, materialID, "material.meta", event)
	if err != nil {
		return m, err
	}
	if !isParty(a.P) || m.UploaderOrg != a.P.User.OrgID {
		if err := s.record(ctx, a, event, audit.Denied, m.CaseID, resource, d.Purpose, "forbidden"); err != nil {
			return m, err
		}
		return m, fail(ErrForbidden, "forbidden", "only the organisation that provided a material decides on its disclosure")
	}
	return m, nil
}

func errConsentExists() error {
	return fail(ErrConflict, "consent_exists", "that organisation already holds a consent for this material; withdraw it first to change it")
}

// GrantConsent lets another party organisation of the case see a material
// the caller's organisation provided, for a purpose.
func (s *Service) GrantConsent(ctx context.Context, a Actor, materialID string, in NewConsent) (Consent, error) {
	m, err := s.providerMaterial(ctx, a, materialID, "consent.create", "material/"+materialID)
	if err != nil {
		return Consent{}, err
	}
	if kindRules[m.Kind].party != partyProvided {
		return Consent{}, invalid("material", "consent_not_applicable", fmt.Sprintf("%s materials are not disclosed by consent", m.Kind))
	}
	purpose, err := CleanText("purpose", in.Purpose, 500, true)
	if err != nil {
		return Consent{}, err
	}
	_, facts, _, err := s.caseFacts(ctx, m.CaseID)
	if err != nil {
		return Consent{}, fmt.Errorf("load case %s: %w", m.CaseID, err)
	}
	// The operator may disclose to its providers, a provider to the
	// operator only: a provider is not told who the other suppliers are
	// (providersFor), and an answer that took a co-provider's id and
	// refused others would tell it.
	fromOperator := m.UploaderOrg == facts.OperatorOrg
	if in.Org == m.UploaderOrg || (in.Org != facts.OperatorOrg && !(fromOperator && contains(facts.ProviderOrgs, in.Org))) {
		return Consent{}, invalid("org", "invalid_org", "org must be another party organisation of this case: the operator, or for the operator's own materials one of its providers")
	}
	var live int64
	if err := s.db.WithContext(ctx).Model(&consentRow{}).Where("material_id = ? AND org_id = ? AND revoked_at IS NULL", m.ID, in.Org).
		Count(&live).Error; err != nil {
		return Consent{}, fmt.Errorf("check consents: %w", err)
	}
	if live > 0 {
		if err := s.record(ctx, a, "consent.create", audit.Denied, m.CaseID, "material/"+m.ID, "", "consent_exists"); err != nil {
			return Consent{}, err
		}
		return Consent{}, errConsentExists()
	}
	key, err := s.caseKey(ctx, m.CaseID)
	if err != nil {
		return Consent{}, err
	}
	row := consentRow{ID: NewID(), MaterialID: m.ID, CaseID: m.CaseID, OrgID: in.Org, GrantedBy: a.P.User.ID,
		GrantedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if row.Purpose, err = sealText(key, labelConsentPurpose(row.ID), purpose); err != nil {
		return Consent{}, err
	}
	row.Tag = consentTag(key, &row, true)
	resource := "consent/" + row.ID
	if err := s.record(ctx, a, "consent.create", audit.Allowed, m.CaseID, resource, "", in.Org); err != nil {
		return Consent{}, err
	}
	err = s.db.WithContext(ctx).Create(&row).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		// Another grant to the organisation won the race (the live
		// consents' unique index): this one never took effect.
		if err := s.record(ctx, a, "consent.create", audit.Denied, m.CaseID, resource, "", "consent_exists"); err != nil {
			return Consent{}, err
		}
		return Consent{}, errConsentExists()
	}
	if err != nil {
		s.recordFailure(ctx, a, "consent.create", m.CaseID, resource, err)
		return Consent{}, fmt.Errorf("store consent: %w", err)
	}
	return Consent{ID: row.ID, MaterialID: row.MaterialID, Org: row.OrgID, Purpose: purpose, GrantedBy: row.GrantedBy, GrantedAt: row.GrantedAt}, nil
}

// Consents lists the live consents of a material, to the organisation that
// provided it, a page at a time in the order they were granted (ids sort
// by creation time).
func (s *Service) Consents(ctx context.Context, a Actor, materialID string, limit int, cursor string) (Page[Consent], error) {
	after, err := decodeIDCursor("consents", cursor)
	if err != nil {
		return Page[Consent]{}, err
	}
	limit = pageLimit(limit)
	m, err := s.providerMaterial(ctx, a, materialID, "consent.list", "material/"+materialID)
	if err != nil {
		return Page[Consent]{}, err
	}
	if err := s.record(ctx, a, "consent.list", audit.Allowed, m.CaseID, "material/"+materialID, "", ""); err != nil {
		return Page[Consent]{}, err
	}
	q := s.db.WithContext(ctx).Where("material_id = ? AND revoked_at IS NULL", m.ID)
	if after != "" {
		q = q.Where("id > ?", after)
	}
	var rows []consentRow
	if err := q.Order("id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return Page[Consent]{}, fmt.Errorf("list consents of material %s: %w", m.ID, err)
	}
	page := Page[Consent]{Items: []Consent{}}
	rows, page.NextCursor = idPage("consents", rows, limit, func(r consentRow) string { return r.ID })
	// A row whose tag fails gives no access, so it is not listed either.
	if rows, err = s.liveConsents(ctx, m.CaseID, rows); err != nil {
		return Page[Consent]{}, err
	}
	if len(rows) == 0 {
		return page, nil
	}
	key, err := s.textKey(ctx, m.CaseID)
	if err != nil {
		return Page[Consent]{}, err
	}
	for _, r := range rows {
		purpose, err := openText(key, labelConsentPurpose(r.ID), r.Purpose)
		if err != nil {
			return Page[Consent]{}, err
		}
		page.Items = append(page.Items, Consent{ID: r.ID, MaterialID: r.MaterialID, Org: r.OrgID, Purpose: purpose, GrantedBy: r.GrantedBy, GrantedAt: r.GrantedAt.UTC()})
	}
	return page, nil
}

// RevokeConsent withdraws a consent; the next access under it is refused,
// on every instance, since every check reads the table.
func (s *Service) RevokeConsent(ctx context.Context, a Actor, consentID string) error {
	resource := "consent/" + consentID
	var row consentRow
	err := gorm.ErrRecordNotFound
	if validID(consentID) {
		err = s.db.WithContext(ctx).Where("id = ? AND revoked_at IS NULL", consentID).Take(&row).Error
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		if err := s.record(ctx, a, "consent.revoke", audit.Denied, "", resource, "", "not_found"); err != nil {
			return err
		}
		return fail(ErrNotFound, "not_found", "no such consent")
	}
	if err != nil {
		return fmt.Errorf("load consent %s: %w", consentID, err)
	}
	m, err := s.providerMaterial(ctx, a, row.MaterialID, "consent.revoke", resource)
	if err != nil {
		var ve *Error
		if errors.As(err, &ve) && ve.Kind == ErrNotFound {
			ve.Detail = "no such consent"
		}
		return err
	}
	if err := s.record(ctx, a, "consent.revoke", audit.Allowed, m.CaseID, resource, "", row.OrgID); err != nil {
		return err
	}
	// The tag is rewritten as revoked in the same statement, so that a
	// revoked_at set back to NULL outside crvault does not re-grant.
	key, err := s.caseKey(ctx, m.CaseID)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	res := s.db.WithContext(ctx).Model(&consentRow{}).Where("id = ? AND revoked_at IS NULL", row.ID).
		Updates(map[string]any{"revoked_at": now, "revoked_by": a.P.User.ID, "tag": consentTag(key, &row, false)})
	if res.Error != nil {
		s.recordFailure(ctx, a, "consent.revoke", m.CaseID, resource, res.Error)
		return fmt.Errorf("revoke consent %s: %w", row.ID, res.Error)
	}
	if res.RowsAffected != 1 {
		return fail(ErrNotFound, "not_found", "no such consent")
	}
	return nil
}
