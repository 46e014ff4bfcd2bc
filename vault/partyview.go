package vault

// The party view: what an operator or provider is shown of its case, by the
// rules of visibility.go. Every route that returns materials, history, the
// clock or audit events to a party passes through here.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault/review"
)

// materialsFor names other organisations' uploaders by pseudonym for a party.
func (s *Service) materialsFor(ctx context.Context, p access.Principal, caseID string, ms []Material) ([]Material, error) {
	if !isParty(p) {
		return ms, nil
	}
	pp := s.newPeople()
	for i := range ms {
		name, err := pp.display(ctx, p.User.OrgID, caseID, ms[i].UploadedBy)
		if err != nil {
			return nil, err
		}
		ms[i].UploadedBy = name
	}
	return ms, nil
}

// historyView is the case history as the caller may see it (historyFor);
// mayRead says whether the caller may read the case's materials now.
func (s *Service) historyView(ctx context.Context, p access.Principal, caseID string, h []review.Event, mayRead bool) ([]review.Event, error) {
	if !isParty(p) {
		return historyFor(p, h, nil, mayRead), nil
	}
	pp := s.newPeople()
	var ferr error
	out := historyFor(p, h, func(actor string) string {
		name, err := pp.display(ctx, p.User.OrgID, caseID, actor)
		if err != nil && ferr == nil {
			ferr = err
		}
		return name
	}, false)
	return out, ferr
}

// clockView is the clock as the caller may see it: the member units' answers
// as opinionsFor shows them, and for a party the office staff who extended a
// period by pseudonym; the rest is the case's public timetable.
func (s *Service) clockView(ctx context.Context, p access.Principal, caseID string, c review.Clock) (review.Clock, error) {
	c.Opinions = opinionsFor(p, c.Opinions)
	if !isParty(p) {
		return c, nil
	}
	pp := s.newPeople()
	exts := make([]review.Extension, len(c.Extensions))
	for i, e := range c.Extensions {
		name, err := pp.display(ctx, p.User.OrgID, caseID, e.Actor)
		if err != nil {
			return c, err
		}
		e.Actor = name
		exts[i] = e
	}
	c.Extensions = exts
	return c, nil
}

// auditView filters and renames audit events for one party organisation.
type auditView struct {
	s       *Service
	p       access.Principal
	org     string
	people  *people
	mats    map[string]*materialRow // by id; nil entry: no such material
	consent map[string]map[string]string
}

func (s *Service) newAuditView(p access.Principal) *auditView {
	return &auditView{s: s, p: p, org: p.User.OrgID, people: s.newPeople(), mats: map[string]*materialRow{},
		consent: map[string]map[string]string{}}
}

// materialOf names the material an event's resource is about, if any:
// "material/<id>" optionally followed by " bytes=...".
func materialOfResource(resource string) (string, bool) {
	rest, ok := strings.CutPrefix(resource, "material/")
	if !ok {
		return "", false
	}
	id, _, _ := strings.Cut(rest, " ")
	return id, validID(id)
}

// load fetches the materials a page of events names, in one query.
func (v *auditView) load(ctx context.Context, evs []audit.Event) error {
	var ids []string
	for _, e := range evs {
		if id, ok := materialOfResource(e.Resource); ok {
			if _, seen := v.mats[id]; !seen {
				v.mats[id] = nil
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var rows []materialRow
	if err := v.s.db.WithContext(ctx).Omit("header", "filename").Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return fmt.Errorf("load materials of audit events: %w", err)
	}
	for i := range rows {
		// Kind and uploader decide which events of a material a party
		// sees: a row whose tag does not check is as unknown (only the
		// party's own events are shown), not obeyed.
		key, err := v.s.keys.caseKey(ctx, rows[i].CaseID)
		switch {
		case errors.Is(err, errShredded):
		case errors.Is(err, errRowTag):
			continue
		case err != nil:
			return err
		case !v.s.checkMaterial(ctx, key, &rows[i]):
			continue
		}
		v.mats[rows[i].ID] = &rows[i]
	}
	return nil
}

// materialVisible is visibleMaterial with the case's consents read once.
func (v *auditView) materialVisible(ctx context.Context, m *materialRow) (bool, error) {
	visible, needConsent := kindVisible(v.p, m.Kind, m.UploaderOrg)
	if !needConsent {
		return visible, nil
	}
	cs, ok := v.consent[m.CaseID]
	if !ok {
		var err error
		if cs, err = v.s.consentedMaterials(ctx, m.CaseID, v.org); err != nil {
			return false, err
		}
		v.consent[m.CaseID] = cs
	}
	return cs[m.ID] != "", nil
}

// visible applies the audit action's rule to one event.
func (v *auditView) visible(ctx context.Context, e audit.Event) (bool, error) {
	rule, _ := auditRuleOf(e.Action)
	if rule == auditNever {
		return false, nil
	}
	own := e.ActorOrg != "" && e.ActorOrg == v.org
	id, isMat := materialOfResource(e.Resource)
	m := v.mats[id]
	if !isMat || m == nil {
		return own, nil
	}
	// An event about a material the caller may not see is not shown, not
	// even the caller's own refused attempt: it would confirm the material
	// exists on the case.
	if ok, err := v.materialVisible(ctx, m); err != nil || !ok {
		return false, err
	}
	if own {
		return true, nil
	}
	switch rule {
	case auditAccessLog:
		if m.UploaderOrg != v.org {
			return false, nil
		}
	case auditUpload:
	default:
		return false, nil
	}
	// Inspectors' actions are deliberation, even on the caller's material.
	who, err := v.people.of(ctx, e.Actor)
	if err != nil {
		return false, err
	}
	return !who.inspector, nil
}

// redact shows an event as a party may see it: never an IP address; for
// another organisation's actor, the pseudonym in place of the user id and
// none of what could identify or second-guess the person (the request id a
// client may have chosen, the denial reason, the hash whose preimage holds
// the user id and address).
func (v *auditView) redact(ctx context.Context, e audit.Event) (audit.Event, error) {
	e.IP = ""
	if e.ActorOrg != "" && e.ActorOrg == v.org {
		return e, nil
	}
	name, err := v.people.display(ctx, v.org, e.CaseID, e.Actor)
	if err != nil {
		return e, err
	}
	e.Actor, e.RequestID, e.Detail, e.Hash = name, "", "", ""
	return e, nil
}

// partyAuditEvents answers a party's audit query: the events of its
// organisation's cases that the rules show, renamed, in pages of exactly
// the asked size so that nothing hidden shows as a gap or a count.
func (s *Service) partyAuditEvents(ctx context.Context, a Actor, f audit.Filter) ([]audit.Event, string, error) {
	ids, err := s.orgCaseIDs(ctx, a.P)
	if err != nil {
		return nil, "", err
	}
	if f.CaseID != "" {
		if !contains(ids, f.CaseID) {
			ids = []string{}
		} else {
			ids = []string{f.CaseID}
		}
	}
	if err := s.record(ctx, a, "audit.query", audit.Allowed, f.CaseID, "audit/events", "", ""); err != nil {
		return nil, "", err
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = audit.DefaultLimit
	case limit > audit.MaxLimit:
		limit = audit.MaxLimit
	}
	if rule, _ := auditRuleOf(f.Action); len(ids) == 0 || f.Action != "" && rule == auditNever {
		return []audit.Event{}, "", nil
	}
	// The actor filter is matched against what the party is shown
	// (a pseudonym or a colleague's id), never against hidden user ids.
	inner := audit.Filter{CaseIDs: ids, Action: f.Action, Outcome: f.Outcome, Since: f.Since, Until: f.Until,
		Actions: partyActions(), Limit: audit.MaxLimit, Cursor: f.Cursor}
	v := s.newAuditView(a.P)
	out := []audit.Event{}
	for {
		page, next, err := s.audit.Query(ctx, inner)
		if err != nil {
			return nil, "", err
		}
		if err := v.load(ctx, page); err != nil {
			return nil, "", err
		}
		for _, e := range page {
			ok, err := v.visible(ctx, e)
			if err != nil {
				return nil, "", err
			}
			if !ok {
				continue
			}
			if e, err = v.redact(ctx, e); err != nil {
				return nil, "", err
			}
			if f.Actor != "" && e.Actor != f.Actor {
				continue
			}
			out = append(out, e)
			if len(out) > limit {
				return out[:limit], audit.CursorAfter(out[limit-1].Seq), nil
			}
		}
		if next == "" {
			return out, "", nil
		}
		inner.Cursor = next
	}
}

// AuditQuery is a search of the audit log.
type AuditQuery = audit.Filter

// AuditEvents searches the log: inspectors see everything; an operator or
// provider sees, on its organisation's cases, what visibility.go shows a
// party; others are refused.
func (s *Service) AuditEvents(ctx context.Context, a Actor, f audit.Filter) ([]audit.Event, string, error) {
	var items []audit.Event
	var next string
	var err error
	switch {
	case a.P.Has(access.RoleInspector):
		if err := s.record(ctx, a, "audit.query", audit.Allowed, f.CaseID, "audit/events", "", ""); err != nil {
			return nil, "", err
		}
		items, next, err = s.audit.Query(ctx, f)
	case isParty(a.P):
		items, next, err = s.partyAuditEvents(ctx, a, f)
	default:
		if err := s.record(ctx, a, "audit.query", audit.Denied, f.CaseID, "audit/events", "", "forbidden"); err != nil {
			return nil, "", err
		}
		return nil, "", fail(ErrForbidden, "forbidden", "only inspectors, operators and providers may read the audit trail")
	}
	if err != nil {
		if errors.Is(err, audit.ErrInvalidCursor) {
			return nil, "", errInvalidCursor()
		}
		if errors.Is(err, audit.ErrInvalid) {
			return nil, "", invalid("cursor", "invalid_query", "the audit query is not valid")
		}
		var ve *Error
		if errors.As(err, &ve) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("query audit log: %w", err)
	}
	return items, next, nil
}

// orgCaseIDs are the cases the caller's organisation is a party of, by
// their checked parties (partiesChecked): a case whose parties tag fails
// is none of them.
func (s *Service) orgCaseIDs(ctx context.Context, p access.Principal) ([]string, error) {
	var rows []caseWithProviders
	org := p.User.OrgID
	err := s.db.WithContext(ctx).Table("cases").
		Select("cases.id, cases.operator_org, cases.origin, cases.parties_tag, "+providerIDsColumn(s.db)).
		Where("cases.operator_org = ? OR cases.id IN (?)", org, s.db.Model(&caseProviderRow{}).Select("case_id").Where("org_id = ?", org)).
		Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list cases of organisation: %w", err)
	}
	ids := []string{}
	for _, r := range rows {
		c, providers, _, err := s.partiesChecked(ctx, r.Case, r.providers())
		if err != nil {
			return nil, err
		}
		if c.OperatorOrg == org || slices.Contains(providers, org) {
			ids = append(ids, c.ID)
		}
	}
	return ids, nil
}
