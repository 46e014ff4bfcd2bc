package vault

// The member units of the review mechanism: organisations of kind
// member_unit tied to an entry of an edition's member list (12 in 2020, 13
// in 2021), or registered by the office as a CII protection department /
// relevant department. Only they can be asked for opinions. The registry is
// the vault's (its own table), not access's: it is a fact about the review
// mechanism, not about who may log in.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault/review"
)

// MemberUnit is one registered member unit.
type MemberUnit struct {
	Org string `json:"org"`
	// Unit is the code in an edition's member list ("miit", "csrc"), or
	// "department" for a CII protection department or relevant department.
	Unit string `json:"unit"`
	// Name is the unit's name in the member list (empty for a department).
	Name string `json:"name,omitempty"`
	// Editions are the editions under which the unit is a member.
	Editions     []string  `json:"editions"`
	RegisteredBy string    `json:"registered_by"`
	RegisteredAt time.Time `json:"registered_at"`
}

// NewMemberUnit is the body of POST /member-units.
type NewMemberUnit struct {
	Org  string `json:"org"`
	Unit string `json:"unit"`
}

func toMemberUnit(r memberUnitRow) MemberUnit {
	m := MemberUnit{Org: r.OrgID, Unit: r.Code, RegisteredBy: r.RegisteredBy, RegisteredAt: r.RegisteredAt.UTC(), Editions: []string{}}
	for _, ed := range review.Editions() {
		if mem, ok := ed.Member(r.Code); ok {
			m.Name = mem.Name
			m.Editions = append(m.Editions, ed.ID)
		} else if r.Code == review.DepartmentMember {
			m.Editions = append(m.Editions, ed.ID)
		}
	}
	return m
}

// RegisterMemberUnit ties a member_unit organisation to a member of an
// edition's list, or registers it as a department (office_admin). A second
// registration of the same organisation replaces the first; rounds already
// sent keep the members they named.
func (s *Service) RegisterMemberUnit(ctx context.Context, a Actor, in NewMemberUnit) (MemberUnit, error) {
	resource := "member_unit/" + in.Org
	if !a.P.Has("office_admin") {
		if err := s.record(ctx, a, "member_unit.register", audit.Denied, "", resource, "", "forbidden"); err != nil {
			return MemberUnit{}, err
		}
		return MemberUnit{}, fail(ErrForbidden, "forbidden", "only the Review Office registers member units")
	}
	known := in.Unit == review.DepartmentMember
	for _, ed := range review.Editions() {
		if _, ok := ed.Member(in.Unit); ok {
			known = true
		}
	}
	if !known {
		return MemberUnit{}, invalid("unit", "unknown_unit", "unit must be a member of an edition's list (GET /editions) or \"department\"")
	}
	org, err := s.access.Org(ctx, in.Org)
	if errors.Is(err, access.ErrNotFound) || (err == nil && org.Kind != access.OrgKind("member_unit")) {
		return MemberUnit{}, invalid("org", "invalid_org", "org must be an organisation of kind member_unit")
	}
	if err != nil {
		return MemberUnit{}, fmt.Errorf("look up organisation: %w", err)
	}
	if err := s.record(ctx, a, "member_unit.register", audit.Allowed, "", resource, "", in.Unit); err != nil {
		return MemberUnit{}, err
	}
	row := memberUnitRow{OrgID: org.ID, Code: in.Unit, RegisteredBy: a.P.User.ID, RegisteredAt: s.now().UTC().Truncate(time.Microsecond)}
	if err := s.db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "org_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"code", "registered_by", "registered_at"})}).Create(&row).Error; err != nil {
		s.recordFailure(ctx, a, "member_unit.register", "", resource, err)
		return MemberUnit{}, fmt.Errorf("register member unit: %w", err)
	}
	return toMemberUnit(row), nil
}

// MemberUnits lists the registered member units (office_admin and member
// units: who is in the mechanism is no secret to its members), a page at a
// time in organisation id order.
func (s *Service) MemberUnits(ctx context.Context, a Actor, limit int, cursor string) (Page[MemberUnit], error) {
	after, err := decodeIDCursor("member_units", cursor)
	if err != nil {
		return Page[MemberUnit]{}, err
	}
	limit = pageLimit(limit)
	if !a.P.Has("office_admin") && !a.P.Has("member_unit") {
		if err := s.record(ctx, a, "member_unit.list", audit.Denied, "", "member_units", "", "forbidden"); err != nil {
			return Page[MemberUnit]{}, err
		}
		return Page[MemberUnit]{}, fail(ErrForbidden, "forbidden", "only the Review Office and member units list member units")
	}
	q := s.db.WithContext(ctx)
	if after != "" {
		q = q.Where("org_id > ?", after)
	}
	var rows []memberUnitRow
	if err := q.Order("org_id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return Page[MemberUnit]{}, fmt.Errorf("list member units: %w", err)
	}
	if err := s.record(ctx, a, "member_unit.list", audit.Allowed, "", "member_units", "", ""); err != nil {
		return Page[MemberUnit]{}, err
	}
	page := Page[MemberUnit]{Items: make([]MemberUnit, 0, len(rows))}
	rows, page.NextCursor = idPage("member_units", rows, limit, func(r memberUnitRow) string { return r.OrgID })
	for _, r := range rows {
		page.Items = append(page.Items, toMemberUnit(r))
	}
	return page, nil
}

// memberCode is the registered code of an organisation ("" if none).
func (s *Service) memberCode(ctx context.Context, orgID string) (string, error) {
	var r memberUnitRow
	err := s.db.WithContext(ctx).Where("org_id = ?", orgID).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("member unit %s: %w", orgID, err)
	}
	return r.Code, nil
}

// EditionInfo describes an edition for clients: what GET /editions serves.
type EditionInfo struct {
	ID                string          `json:"id"`
	Title             string          `json:"title"`
	InForce           string          `json:"in_force"`
	DeterminationDays int             `json:"determination_days"`
	PreliminaryDays   int             `json:"preliminary_days"`
	ExtensionDays     int             `json:"extension_days"`
	OpinionDays       int             `json:"opinion_days"`
	SpecialDays       int             `json:"special_days"`
	CaseTypes         []string        `json:"case_types"`
	ListingThreshold  int64           `json:"listing_threshold"`
	Members           []review.Member `json:"members"`
	Factors           []review.Factor `json:"factors"`
	Current           bool            `json:"current"` // what a submission today follows
}

// Editions describes both editions of the Measures.
func (s *Service) Editions() []EditionInfo {
	cur := s.edition()
	var out []EditionInfo
	for _, ed := range review.Editions() {
		out = append(out, EditionInfo{ID: ed.ID, Title: ed.Title, InForce: ed.InForce.String(), DeterminationDays: ed.DeterminationDays,
			PreliminaryDays: ed.PreliminaryDays, ExtensionDays: ed.ExtensionDays, OpinionDays: ed.OpinionDays, SpecialDays: ed.SpecialDays,
			CaseTypes: ed.CaseTypes, ListingThreshold: ed.ListingThreshold, Members: ed.Members, Factors: ed.Factors, Current: ed == cur})
	}
	return out
}

// EditionsPage is Editions a page at a time, like every list; the cursor
// names the last edition of the page before.
func (s *Service) EditionsPage(limit int, cursor string) (Page[EditionInfo], error) {
	keys, err := decodeCursor("editions", cursor, 1)
	if err != nil {
		return Page[EditionInfo]{}, err
	}
	all := s.Editions()
	start := 0
	if keys != nil {
		i := slices.IndexFunc(all, func(e EditionInfo) bool { return e.ID == keys[0] })
		if i < 0 {
			return Page[EditionInfo]{}, errInvalidCursor()
		}
		start = i + 1
	}
	items, next := idPage("editions", all[start:], pageLimit(limit), func(e EditionInfo) string { return e.ID })
	return Page[EditionInfo]{Items: append([]EditionInfo{}, items...), NextCursor: next}, nil
}
