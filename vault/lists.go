package vault

import (
	"context"
	"fmt"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// The paged lists of the API. Each page is cut from the rows the caller may
// see, never from the rows the table holds: where visibility is decided
// after the query (a material's kind and consents), the list reads on until
// the page is full or the rows run out, so a page is short only when it is
// the last, next_cursor is set only when a further visible item exists, and
// the cursor names a visible item. A page therefore says nothing about
// hidden rows, not even that they exist.

// providersOf loads the providers of several cases in one query.
func (s *Service) providersOf(ctx context.Context, ids []string) (map[string][]string, error) {
	out := make(map[string][]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []caseProviderRow
	if err := s.db.WithContext(ctx).Where("case_id IN ?", ids).Order("case_id, org_id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load providers of cases: %w", err)
	}
	for _, id := range ids {
		out[id] = []string{}
	}
	for _, r := range rows {
		out[r.CaseID] = append(out[r.CaseID], r.OrgID)
	}
	return out, nil
}

// lastSeqsOf is the number of the last event of each of the cases ids (0
// for one with no history), which their status tags cover.
func (s *Service) lastSeqsOf(ctx context.Context, ids []string) (map[string]int64, error) {
	out := make(map[string]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []struct {
		CaseID  string
		LastSeq int64
	}
	if err := s.db.WithContext(ctx).Model(&caseEventRow{}).Select("case_id, MAX(seq) AS last_seq").
		Where("case_id IN ?", ids).Group("case_id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load histories' lengths of cases: %w", err)
	}
	for _, r := range rows {
		out[r.CaseID] = r.LastSeq
	}
	return out, nil
}

// MaterialsPage lists one page of the materials of a case the caller may
// see, in upload (id) order, by keyset on (case_id, id).
func (s *Service) MaterialsPage(ctx context.Context, a Actor, caseID string, limit int, cursor string) (Page[Material], error) {
	after, err := decodeIDCursor("materials", cursor)
	if err != nil {
		return Page[Material]{}, err
	}
	limit = pageLimit(limit)
	_, _, d, err := s.authorize(ctx, a, caseID, "material.list", "material.list", "case/"+caseID)
	if err != nil {
		return Page[Material]{}, err
	}
	if err := s.record(ctx, a, "material.list", audit.Allowed, caseID, "case/"+caseID, d.Purpose, ""); err != nil {
		return Page[Material]{}, err
	}
	var consented map[string]string
	if isParty(a.P) {
		if consented, err = s.consentedMaterials(ctx, caseID, a.P.User.OrgID); err != nil {
			return Page[Material]{}, err
		}
	}
	var shown []materialRow
	for {
		q := s.db.WithContext(ctx).Omit("header").Where("case_id = ?", caseID)
		if after != "" {
			q = q.Where("id > ?", after)
		}
		var rows []materialRow
		if err := q.Order("id").Limit(limit + 1).Find(&rows).Error; err != nil {
			return Page[Material]{}, fmt.Errorf("list materials of case %s: %w", caseID, err)
		}
		for _, r := range rows {
			visible, needConsent := kindVisible(a.P, r.Kind, r.UploaderOrg)
			if visible || needConsent && consented[r.ID] != "" {
				shown = append(shown, r)
			}
		}
		if len(shown) > limit || len(rows) <= limit {
			break
		}
		after = rows[len(rows)-1].ID
	}
	page := Page[Material]{}
	if len(shown) > limit {
		shown = shown[:limit]
		page.NextCursor = encodeCursor("materials", shown[limit-1].ID)
	}
	out, err := s.openMaterials(ctx, caseID, shown)
	if err != nil {
		return Page[Material]{}, err
	}
	if page.Items, err = s.materialsFor(ctx, a.P, caseID, out); err != nil {
		return Page[Material]{}, err
	}
	return page, nil
}

// HistoryPage is one page of History, by the seq the caller is shown (a
// party's history is numbered without the entries hidden from it, so its
// cursor names only what it sees). A case's history is tens of entries and
// is replayed whole for its clock anyway; the page is cut from that.
func (s *Service) HistoryPage(ctx context.Context, a Actor, caseID string, limit int, cursor string) (Page[review.Event], error) {
	after, err := decodeSeqCursor("events", cursor)
	if err != nil {
		return Page[review.Event]{}, err
	}
	limit = pageLimit(limit)
	h, err := s.History(ctx, a, caseID)
	if err != nil {
		return Page[review.Event]{}, err
	}
	page := Page[review.Event]{Items: []review.Event{}}
	for _, e := range h {
		if e.Seq <= after {
			continue
		}
		if len(page.Items) == limit {
			page.NextCursor = encodeCursor("events", fmt.Sprint(page.Items[limit-1].Seq))
			break
		}
		page.Items = append(page.Items, e)
	}
	return page, nil
}

// DeadlinesPage is one page of Deadlines, soonest first, by keyset on
// (due_on, case_id) over the index of stored due dates.
func (s *Service) DeadlinesPage(ctx context.Context, a Actor, within, limit int, cursor string) (Page[Deadline], error) {
	keys, err := decodeCursor("deadlines", cursor, 2)
	if err != nil {
		return Page[Deadline]{}, err
	}
	var after *dueKey
	if keys != nil {
		due, err := calendar.ParseDate(keys[0])
		if err != nil || !validID(keys[1]) {
			return Page[Deadline]{}, errInvalidCursor()
		}
		after = &dueKey{on: due, id: keys[1]}
	}
	limit = pageLimit(limit)
	items, more, err := s.deadlines(ctx, a, within, after, limit)
	if err != nil {
		return Page[Deadline]{}, err
	}
	page := Page[Deadline]{Items: []Deadline{}}
	if more {
		last := items[len(items)-1]
		page.NextCursor = encodeCursor("deadlines", last.DueOn.String(), last.CaseID)
	}
	if page.Items, err = s.titleDeadlines(ctx, items); err != nil {
		return Page[Deadline]{}, err
	}
	return page, nil
}

// AssignmentsPage is one page of Assignments, oldest first, by keyset on
// (case_id, id).
func (s *Service) AssignmentsPage(ctx context.Context, a Actor, caseID string, limit int, cursor string) (Page[access.Assignment], error) {
	after, err := decodeIDCursor("assignments", cursor)
	if err != nil {
		return Page[access.Assignment]{}, err
	}
	limit = pageLimit(limit)
	if _, err := s.assignmentsAllowed(ctx, a, caseID); err != nil {
		return Page[access.Assignment]{}, err
	}
	list, more, err := s.access.AssignmentsPage(ctx, caseID, after, limit)
	if err != nil {
		return Page[access.Assignment]{}, fmt.Errorf("list assignments of case %s: %w", caseID, err)
	}
	page := Page[access.Assignment]{Items: list}
	if more {
		page.NextCursor = encodeCursor("assignments", list[len(list)-1].ID)
	}
	return page, nil
}
