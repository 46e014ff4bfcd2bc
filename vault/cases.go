package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/crypt"
	"github.com/crvault/crvault/vault/review"
)

// Statuses a case moves through; see vault/review for the transitions.
const (
	StatusDraft     = "draft"
	StatusSubmitted = "submitted"
)

// CreateCase files a new draft case for the operator's organisation and
// creates the case's own age identity, wrapped to the master key.
func (s *Service) CreateCase(ctx context.Context, a Actor, in NewCase) (Case, error) {
	if !s.access.Can(a.P, "case", "create") {
		if err := s.record(ctx, a, "case.create", audit.Denied, "", "", "", "forbidden"); err != nil {
			return Case{}, err
		}
		return Case{}, fail(ErrForbidden, "forbidden", "only operators file review applications")
	}
	title, err := CleanText("title", in.Title, 300, true)
	if err != nil {
		return Case{}, err
	}
	product, err := CleanText("product", in.Product, 300, true)
	if err != nil {
		return Case{}, err
	}
	if len(in.Providers) > 50 {
		return Case{}, invalid("providers", "invalid_field", "at most 50 providers")
	}
	seen := map[string]bool{}
	providers := []string{}
	for _, p := range in.Providers {
		if seen[p] {
			continue
		}
		seen[p] = true
		org, err := s.access.Org(ctx, p)
		if errors.Is(err, access.ErrNotFound) || (err == nil && org.Kind != access.OrgKind("provider")) {
			return Case{}, invalid("providers", "unknown_provider", fmt.Sprintf("%q is not a provider organisation", p))
		}
		if err != nil {
			return Case{}, fmt.Errorf("look up provider: %w", err)
		}
		providers = append(providers, org.ID)
	}
	c := Case{ID: NewID(), Title: title, Product: product, OperatorOrg: a.P.User.OrgID, Status: StatusDraft, Origin: review.OriginApplication}
	if err := s.caseType(in, &c); err != nil {
		return Case{}, err
	}
	if err := s.record(ctx, a, "case.create", audit.Allowed, c.ID, "case/"+c.ID, "", ""); err != nil {
		return Case{}, err
	}
	return s.insertCase(ctx, a, c, providers, nil)
}

// caseType checks the type of a new case and its listing details against
// the edition a submission would follow now, and sets them on c.
func (s *Service) caseType(in NewCase, c *Case) error {
	ed := s.edition()
	c.Type = in.Type
	if c.Type == "" {
		c.Type = review.TypeProcurement
	}
	if !slices.Contains([]string{review.TypeProcurement, review.TypeDataProcessing, review.TypeListingAbroad}, c.Type) {
		return invalid("type", "invalid_case_type", "type must be procurement, data_processing or listing_abroad")
	}
	if !ed.HasCaseType(c.Type) {
		return invalid("type", review.CodeTypeNotInEdition, fmt.Sprintf("a %s case cannot be filed under the %s edition of the Measures", c.Type, ed.ID))
	}
	if c.Type != review.TypeListingAbroad {
		if in.ListingVenue != "" || in.UsersWithPersonalInfo != nil {
			return invalid("listing_venue", "invalid_field", "listing_venue and users_with_personal_info are for listing_abroad cases only")
		}
		return nil
	}
	venue, err := CleanText("listing_venue", in.ListingVenue, 200, true)
	if err != nil {
		return err
	}
	if in.UsersWithPersonalInfo == nil || *in.UsersWithPersonalInfo < 0 {
		return invalid("users_with_personal_info", "missing_field",
			fmt.Sprintf("a listing abroad needs the number of users whose personal information the party holds (%s)", ed.Art(review.ArtListing)))
	}
	users := *in.UsersWithPersonalInfo
	c.ListingVenue, c.UsersWithPersonalInfo = venue, &users
	return nil
}

// insertCase creates a case, its providers and its own age identity,
// wrapped to the master key, in one transaction, which alsoInTx (if not
// nil) joins: an *Error it returns refuses the case as it is, unaudited.
func (s *Service) insertCase(ctx context.Context, a Actor, c Case, providers []string, alsoInTx func(tx *gorm.DB) error) (Case, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	c.CreatedAt = now
	var row caseRow
	var key *crypt.CaseKey
	err := s.keys.StoreNewKey(ctx, func(tx *gorm.DB, wrapped crypt.Wrapped, k *crypt.CaseKey) error {
		r, err := newCaseRow(k, c, a.P.User.ID)
		if err != nil {
			return err
		}
		r.DueBasis = basisNone // a draft: no clock runs
		if err := tx.Create(&r).Error; err != nil {
			return err
		}
		for _, p := range providers {
			if err := tx.Create(&caseProviderRow{CaseID: r.ID, OrgID: p}).Error; err != nil {
				return err
			}
		}
		row, key = r, k
		if err := tx.Create(&caseKeyRow{CaseID: r.ID, Wrapped: wrapped.Data, Master: wrapped.Master, Escrow: wrapped.Escrow, CreatedAt: now,
			Tag: keyTag(k, "case_keys", r.ID)}).Error; err != nil {
			return err
		}
		if alsoInTx != nil {
			return alsoInTx(tx)
		}
		return nil
	})
	var refused *Error
	if errors.As(err, &refused) {
		return Case{}, err // alsoInTx refused it: nothing was stored
	}
	if err != nil {
		s.recordFailure(ctx, a, "case.create", c.ID, "case/"+c.ID, err)
		return Case{}, fmt.Errorf("store case: %w", err)
	}
	s.keys.put(row.ID, key, s.keys.now())
	return toCase(key, row, providers)
}

// GetCase returns a case the caller may see.
func (s *Service) GetCase(ctx context.Context, a Actor, id string) (Case, error) {
	row, providers, d, err := s.authorize(ctx, a, id, access.Action("case.read"), "case.read", "case/"+id)
	if err != nil {
		return Case{}, err
	}
	if err := s.record(ctx, a, "case.read", audit.Allowed, id, "case/"+id, d.Purpose, ""); err != nil {
		return Case{}, err
	}
	return s.openCase(ctx, row, providersFor(a.P, providers))
}

// Page is one page of a list.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// ListCases lists the cases the caller may see, in creation order.
func (s *Service) ListCases(ctx context.Context, a Actor, status string, limit int, cursor string) (Page[Case], error) {
	after, err := decodeIDCursor("cases", cursor)
	if err != nil {
		return Page[Case]{}, err
	}
	limit = pageLimit(limit)
	q, err := s.visibleCases(ctx, a)
	if err != nil {
		return Page[Case]{}, err
	}
	if status != "" {
		q = sqldb.WhereText(q, "status = ?", status)
	}
	if after != "" {
		q = q.Where("id > ?", after)
	}
	var rows []caseRow
	if err := q.Order("id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return Page[Case]{}, fmt.Errorf("list cases: %w", err)
	}
	if err := s.record(ctx, a, "case.list", audit.Allowed, "", "cases", "", ""); err != nil {
		return Page[Case]{}, err
	}
	page := Page[Case]{Items: []Case{}}
	if len(rows) > limit {
		rows = rows[:limit]
		page.NextCursor = encodeCursor("cases", rows[limit-1].ID)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	provs, err := s.providersOf(ctx, ids)
	if err != nil {
		return Page[Case]{}, err
	}
	for _, r := range rows {
		c, err := s.openCase(ctx, r, providersFor(a.P, provs[r.ID]))
		if err != nil {
			return Page[Case]{}, err
		}
		page.Items = append(page.Items, c)
	}
	return page, nil
}

// visibleCases is the query of the cases a caller may list.
func (s *Service) visibleCases(ctx context.Context, a Actor) (*gorm.DB, error) {
	q := s.db.WithContext(ctx).Model(&caseRow{})
	u := a.P.User
	switch {
	case a.P.TOTPEnrolmentRequired:
		// A session limited to setting up its second factor sees no case,
		// whatever its roles (access.Decide refuses it everything too).
		q = q.Where("1 = 0")
	case a.P.Has("inspector"):
		// inspectors audit every case; they never read content
	case a.P.Has("office_admin"):
		// A draft is the party's own, except one the office opened itself.
		q = q.Where("status <> ? OR origin = ?", StatusDraft, review.OriginProposal)
	case a.P.Has("operator"):
		q = q.Where("operator_org = ?", u.OrgID)
	case a.P.Has("provider"):
		q = q.Where("id IN (?)", s.db.Model(&caseProviderRow{}).Select("case_id").Where("org_id = ?", u.OrgID))
	case a.P.Has("reviewer"), a.P.Has("member_unit"):
		ids, err := s.access.CasesOf(ctx, a.P)
		if err != nil {
			return nil, fmt.Errorf("list assigned cases: %w", err)
		}
		if len(ids) == 0 {
			ids = []string{""}
		}
		q = q.Where("id IN ?", ids)
	default:
		q = q.Where("1 = 0")
	}
	return q, nil
}

// VisibleCaseIDs is a subquery of the ids of the cases the caller may
// list (ListCases), for services beside the vault that keep rows naming a
// case: a row on a case the caller may not see must not reach it either.
func (s *Service) VisibleCaseIDs(ctx context.Context, a Actor) (*gorm.DB, error) {
	q, err := s.visibleCases(ctx, a)
	if err != nil {
		return nil, err
	}
	return q.Select("id"), nil
}

// CaseVisible says whether the caller may list the case (VisibleCaseIDs).
func (s *Service) CaseVisible(ctx context.Context, a Actor, caseID string) (bool, error) {
	if !validID(caseID) {
		return false, nil
	}
	q, err := s.visibleCases(ctx, a)
	if err != nil {
		return false, err
	}
	var ids []string
	if err := q.Where("id = ?", caseID).Limit(1).Pluck("id", &ids).Error; err != nil {
		return false, fmt.Errorf("check case %s: %w", caseID, err)
	}
	return len(ids) == 1, nil
}

// MaterialNames names the materials of ids that the caller may list (as
// ListMaterials shows them: on a case the caller may list, by the kind
// table and, for another party's material, a live consent), for pages that
// refer to materials, such as the access log; the others are left out. It
// is one material.list in the audit trail, not a read per material.
func (s *Service) MaterialNames(ctx context.Context, a Actor, ids []string) (map[string]string, error) {
	out := map[string]string{}
	ids, err := namedIDs(ids, "materials")
	if err != nil || len(ids) == 0 {
		return out, err
	}
	cases, err := s.VisibleCaseIDs(ctx, a)
	if err != nil {
		return nil, err
	}
	var rows []materialRow
	if err := s.db.WithContext(ctx).Omit("header").Where("id IN ? AND case_id IN (?)", ids, cases).Order("case_id, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list material names: %w", err)
	}
	if err := s.record(ctx, a, "material.list", audit.Allowed, "", "materials", "", ""); err != nil {
		return nil, err
	}
	byCase := map[string][]materialRow{}
	consents := map[string]map[string]string{}
	for _, r := range rows {
		visible, needConsent := kindVisible(a.P, r.Kind, r.UploaderOrg)
		if !visible && needConsent {
			granted, ok := consents[r.CaseID]
			if !ok {
				if granted, err = s.consentedMaterials(ctx, r.CaseID, a.P.User.OrgID); err != nil {
					return nil, err
				}
				consents[r.CaseID] = granted
			}
			visible = granted[r.ID] != ""
		}
		if visible {
			byCase[r.CaseID] = append(byCase[r.CaseID], r)
		}
	}
	for caseID, rs := range byCase {
		ms, err := s.openMaterials(ctx, caseID, rs)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			out[m.ID] = m.Filename
		}
	}
	return out, nil
}

// maxCaseTitles bounds the ids CaseTitles and MaterialNames take: a page
// of any list.
const maxCaseTitles = 500

// namedIDs is the ids a page asks names for: those that could have been
// issued, each once, sorted; at most maxCaseTitles of them.
func namedIDs(ids []string, what string) ([]string, error) {
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !validID(id) })
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > maxCaseTitles {
		return nil, invalid("ids", "too_many_ids", fmt.Sprintf("at most %d %s at once", maxCaseTitles, what))
	}
	return ids, nil
}

// CaseTitles names the cases of ids that the caller may list (ListCases),
// for pages that refer to cases, such as a list of complaints; the others
// are left out. It is one listing in the audit trail, not a read per case.
func (s *Service) CaseTitles(ctx context.Context, a Actor, ids []string) (map[string]string, error) {
	out := map[string]string{}
	ids, err := namedIDs(ids, "cases")
	if err != nil || len(ids) == 0 {
		return out, err
	}
	q, err := s.visibleCases(ctx, a)
	if err != nil {
		return nil, err
	}
	var rows []caseRow
	if err := q.Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list case titles: %w", err)
	}
	if err := s.record(ctx, a, "case.list", audit.Allowed, "", "cases", "", ""); err != nil {
		return nil, err
	}
	for _, r := range rows {
		c, err := s.openCase(ctx, r, nil)
		if err != nil {
			return nil, err
		}
		out[c.ID] = c.Title
	}
	return out, nil
}

// Submit files the application with the Review Office: the review
// workflow's submit transition (Art. 7), which starts the determination clock
// (Art. 8). It needs at least one declaration, impact analysis and
// procurement material.
func (s *Service) Submit(ctx context.Context, a Actor, id string) (Case, error) {
	row, providers, d, err := s.authorize(ctx, a, id, access.Action("case.submit"), "case.submit", "case/"+id)
	if err != nil {
		return Case{}, err
	}
	if row.Status != StatusDraft {
		// Said before the materials are looked at, so the answer does not
		// depend on what a submitted case holds.
		if err := s.record(ctx, a, "case.submit", audit.Denied, id, "case/"+id, d.Purpose, "illegal_transition"); err != nil {
			return Case{}, err
		}
		return Case{}, &Error{Kind: ErrConflict, Code: "illegal_transition", Detail: "only a draft case can be submitted", Allowed: []string{}}
	}
	res, err := s.move(ctx, a, row, d.Purpose, "case.submit", review.Submit, review.RoleOperator, review.Input{})
	if err != nil {
		return Case{}, err
	}
	row.Status, row.Edition = string(res.Event.To), res.Event.Edition
	return s.openCase(ctx, row, providers)
}
