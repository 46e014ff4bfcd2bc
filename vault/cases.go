package vault

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	tagKey, err := s.rowsKey(ctx)
	if err != nil {
		return Case{}, err
	}
	err = s.keys.StoreNewKey(ctx, func(tx *gorm.DB, wrapped crypt.Wrapped, k *crypt.CaseKey) error {
		r, err := newCaseRow(k, c, a.P.User.ID)
		if err != nil {
			return err
		}
		r.DueBasis = basisNone // a draft: no clock runs
		// The parties are fixed here, for the case's life: nothing writes
		// case_providers or these columns again, so the tag stays true.
		r.PartiesTag = partiesTag(tagKey, r.ID, r.OperatorOrg, r.Origin, providers)
		// A draft has no history yet: its status tag names event 0.
		r.StatusTag = statusTag(tagKey, r.ID, r.Status, 0)
		r.DueTag = dueTag(tagKey, r.ID, dueOf(&r), 0)
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

// ListCases lists the cases the caller may see, in creation order. The
// query's filter on parties is checked row by row against the cases'
// parties tags (listable), so the list reads on, as lists.go's do, until
// the page is full or the rows run out.
func (s *Service) ListCases(ctx context.Context, a Actor, status string, limit int, cursor string) (Page[Case], error) {
	after, err := decodeIDCursor("cases", cursor)
	if err != nil {
		return Page[Case]{}, err
	}
	limit = pageLimit(limit)
	var shown []caseRow
	provs := map[string][]string{}
	for {
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
		kept, ps, err := s.listable(ctx, a, rows)
		if err != nil {
			return Page[Case]{}, err
		}
		shown = append(shown, kept...)
		maps.Copy(provs, ps)
		if len(shown) > limit || len(rows) <= limit {
			break
		}
		after = rows[len(rows)-1].ID
	}
	if err := s.record(ctx, a, "case.list", audit.Allowed, "", "cases", "", ""); err != nil {
		return Page[Case]{}, err
	}
	page := Page[Case]{Items: []Case{}}
	if len(shown) > limit {
		shown = shown[:limit]
		page.NextCursor = encodeCursor("cases", shown[limit-1].ID)
	}
	for _, r := range shown {
		c, err := s.openCase(ctx, r, providersFor(a.P, provs[r.ID]))
		if err != nil {
			return Page[Case]{}, err
		}
		page.Items = append(page.Items, c)
	}
	return page, nil
}

// visibleCases is the query of the cases a caller may list, as far as SQL
// can tell: who the parties are is decided on columns a database
// administrator can edit, so its rows are kept only if listable keeps
// them (or, as a subquery, through VisibleCaseIDs).
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

// listedBy is visibleCases' filter on one case's facts, once its parties
// are checked (factsOf): what decides it in SQL, decided on what crvault
// stored. Assignees' cases are access's, whose rows carry their own tags.
func listedBy(p access.Principal, f access.CaseFacts) bool {
	org := p.User.OrgID
	switch {
	case p.TOTPEnrolmentRequired:
		return false
	case p.Has("inspector"):
		return true
	case p.Has("office_admin"):
		return f.Status != StatusDraft || f.OpenedByOffice
	case p.Has("operator"):
		return f.OperatorOrg == org
	case p.Has("provider"):
		return slices.Contains(f.ProviderOrgs, org)
	case p.Has("reviewer"), p.Has("member_unit"):
		return true
	}
	return false
}

// listable keeps the rows of visibleCases whose checked parties
// (partiesChecked) still let the caller list them, with their providers:
// a case whose parties tag fails is no organisation's, and not the
// office's while it is a draft. A case whose status tag fails
// (statusChecked) is no one's to list: the status the query filtered on
// is not crvault's. Two HMACs and no key unwrap per row.
func (s *Service) listable(ctx context.Context, a Actor, rows []caseRow) ([]caseRow, map[string][]string, error) {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	provs, err := s.providersOf(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	seqs, err := s.lastSeqsOf(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	kept := make([]caseRow, 0, len(rows))
	for _, r := range rows {
		c, ps, ok, err := s.partiesChecked(ctx, r, provs[r.ID])
		if err != nil {
			return nil, nil, err
		}
		seq := seqs[r.ID]
		if good, err := s.statusOK(ctx, c, seq); err != nil {
			return nil, nil, err
		} else if !good {
			// The page and its histories' lengths were two statements: a
			// transition committed between them moved both. Read the
			// three together before calling the row damaged.
			now, nowSeq, err := s.statusNow(ctx, c.ID)
			if errors.Is(err, gorm.ErrRecordNotFound) {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			c.Status, c.StatusTag, seq = now.Status, now.StatusTag, nowSeq
		}
		if c, err = s.statusChecked(ctx, c, seq); err != nil {
			return nil, nil, err
		}
		if !c.statusRefused && listedBy(a.P, caseFactsOf(c, ps, ok)) {
			kept = append(kept, c)
			provs[r.ID] = ps
		}
	}
	return kept, provs, nil
}

// checkedCaseIDs runs q (a query of cases) and returns the ids of the
// cases whose checked parties and status keep them for the caller
// (listedBy).
func (s *Service) checkedCaseIDs(ctx context.Context, a Actor, q *gorm.DB) ([]string, error) {
	var rows []caseWithProviders
	if err := q.Select("cases.id, cases.operator_org, cases.origin, cases.status, cases.parties_tag, cases.status_tag, " +
		providerIDsColumn(s.db) + ", " + lastSeqColumn).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list cases to check: %w", err)
	}
	ids := []string{}
	for _, r := range rows {
		c, ps, ok, err := s.partiesChecked(ctx, r.Case, r.providers())
		if err != nil {
			return nil, err
		}
		if c, err = s.statusChecked(ctx, c, r.LastSeq); err != nil {
			return nil, err
		}
		if !c.statusRefused && listedBy(a.P, caseFactsOf(c, ps, ok)) {
			ids = append(ids, c.ID)
		}
	}
	return ids, nil
}

// VisibleCaseIDs is a subquery of the ids of the cases the caller may
// list (ListCases), for services beside the vault that keep rows naming a
// case: a row on a case the caller may not see must not reach it either.
// Where the parties decide (an operator's or provider's cases, and the
// drafts the office opened), the cases SQL finds are checked against
// their parties tags first, and the subquery names those that pass: an
// organisation's cases, and the office's open drafts, are few enough.
func (s *Service) VisibleCaseIDs(ctx context.Context, a Actor) (*gorm.DB, error) {
	q, err := s.visibleCases(ctx, a)
	if err != nil {
		return nil, err
	}
	p := a.P
	switch {
	case p.TOTPEnrolmentRequired, p.Has("inspector"):
	case p.Has("office_admin"):
		drafts, err := s.checkedCaseIDs(ctx, a, q.Session(&gorm.Session{}).Where("status = ?", StatusDraft))
		if err != nil {
			return nil, err
		}
		// The office's other cases are too many to check one by one
		// here, and a test of each one's history would make every list
		// filtered by this subquery read the whole history table at
		// 100,000 cases: the services beside the vault show their own
		// rows, never the case's content, and ListCases and every
		// case-scoped request check the status tag itself.
		return s.db.Model(&caseRow{}).Select("id").Where("status <> ? OR id IN ?", StatusDraft, nonEmpty(drafts)), nil
	case p.Has("operator"), p.Has("provider"):
		ids, err := s.checkedCaseIDs(ctx, a, q)
		if err != nil {
			return nil, err
		}
		return s.db.Model(&caseRow{}).Select("id").Where("id IN ?", nonEmpty(ids)), nil
	}
	return q.Select("id"), nil
}

// nonEmpty is ids, or a list matching no case: "IN ()" is not SQL.
func nonEmpty(ids []string) []string {
	if len(ids) == 0 {
		return []string{""}
	}
	return ids
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
	ids, err := s.checkedCaseIDs(ctx, a, q.Where("id = ?", caseID))
	if err != nil {
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
	if rows, _, err = s.listable(ctx, a, rows); err != nil {
		return nil, err
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
