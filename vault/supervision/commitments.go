package supervision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault"
)

// CommitmentKinds are what a provider may commit to (Art. 6).
var CommitmentKinds = []string{"no_illegal_data", "no_illegal_control", "supply_continuity", "other"}

// Commitment statuses: pending until supervision (inspectors, Art. 18 /
// 2021 Art. 19) finds it kept, breached or under investigation.
const (
	CommitmentPending            = "pending"
	CommitmentKept               = "kept"
	CommitmentBreached           = "breached"
	CommitmentUnderInvestigation = "under_investigation"
	// CommitmentUnverified is shown to inspectors and the office in place
	// of a status the commitment's row cannot prove (commitmenttags.go).
	CommitmentUnverified = "unverified"
)

// Commitment is a provider's commitment on a case, with the operator's
// urgings to keep it (Art. 18).
type Commitment struct {
	ID          string    `json:"id"`
	CaseID      string    `json:"case_id"`
	ProviderOrg string    `json:"provider"`
	OperatorOrg string    `json:"operator_org"`
	Kind        string    `json:"kind"`
	Text        string    `json:"text"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	Urges       []Urge    `json:"urges"`
	// Status is pending, kept, breached or under_investigation; StatusBy,
	// StatusAt and StatusNote say who set it, when and why.
	Status     string     `json:"status"`
	StatusNote string     `json:"status_note,omitempty"`
	StatusBy   string     `json:"status_by,omitempty"`
	StatusAt   *time.Time `json:"status_at,omitempty"`
	// History is every finding, oldest first; the last is the status
	// (those recorded before histories were kept are moved into it once,
	// at start-up).
	History []CommitmentChange `json:"history"`
}

// CommitmentChange is one finding on a commitment. By, the inspector, is
// not shown to the operator and the provider.
type CommitmentChange struct {
	Status string    `json:"status"`
	Note   string    `json:"note"`
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at"`
}

// CommitmentStatusRequest is the body of POST /commitments/{id}/status.
type CommitmentStatusRequest struct {
	Status string `json:"status"`
	Note   string `json:"note"`
}

// Urge records that the operator urged fulfilment.
type Urge struct {
	ID    string    `json:"id"`
	Note  string    `json:"note"`
	By    string    `json:"by"`
	ByOrg string    `json:"by_org"`
	At    time.Time `json:"at"`
}

// NewCommitment is what a provider records.
type NewCommitment struct {
	Kind string `json:"kind"`
	Text string `json:"text"`
}

// UrgeRequest is the operator's note.
type UrgeRequest struct {
	Note string `json:"note"`
}

// AddCommitment records a commitment of the caller's provider organisation
// on a case it is a party to.
func (s *Service) AddCommitment(ctx context.Context, a vault.Actor, caseID string, in NewCommitment) (Commitment, error) {
	cs, err := s.vault.GetCase(ctx, a, caseID)
	if err != nil {
		return Commitment{}, err
	}
	ev := event(a, "commitment.create", audit.Allowed, cs.ID, "case/"+cs.ID, "")
	d, err := s.access.Decide(ctx, a.P, s.caseFacts(cs), access.ActCommitmentCreate)
	if err != nil {
		return Commitment{}, fmt.Errorf("decide commitment on case %s: %w", cs.ID, err)
	}
	if !d.Allowed {
		return Commitment{}, s.deny(ctx, ev, forbidden("only a provider of the case records commitments"))
	}
	if !oneOf(in.Kind, CommitmentKinds...) {
		return Commitment{}, invalid("kind", "invalid_kind", "kind must be no_illegal_data, no_illegal_control, supply_continuity or other")
	}
	text, err := vault.CleanText("text", in.Text, 10000, true)
	if err != nil {
		return Commitment{}, err
	}
	row := commitmentRow{ID: newID(), CaseID: cs.ID, ProviderOrg: a.P.User.OrgID, OperatorOrg: cs.OperatorOrg, Kind: in.Kind,
		CreatedBy: a.P.User.ID, CreatedAt: s.cfg.Now().UTC().Truncate(time.Microsecond), Status: CommitmentPending, StatusNote: []byte{}}
	if row.Text, err = s.seal(ctx, label("supervision_commitments", "text", row.ID), text); err != nil {
		return Commitment{}, err
	}
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return Commitment{}, err
	}
	// Its parties are fixed here: nothing writes these columns again.
	row.Tag = commitmentTag(key, &row)
	ev.Resource = "commitment/" + row.ID
	if err := s.record(ctx, ev); err != nil {
		return Commitment{}, err
	}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return Commitment{}, fmt.Errorf("store commitment: %w", err)
	}
	return s.toCommitment(ctx, a.P, row, nil, true)
}

// UrgeCommitment records that the case's operator urged the provider to
// keep the commitment (Art. 18).
func (s *Service) UrgeCommitment(ctx context.Context, a vault.Actor, caseID, id string, in UrgeRequest) (Commitment, error) {
	cs, err := s.vault.GetCase(ctx, a, caseID)
	if err != nil {
		return Commitment{}, err
	}
	ev := event(a, "commitment.urge", audit.Allowed, cs.ID, "commitment/"+id, "")
	if !a.P.Has(access.RoleOperator) || cs.OperatorOrg != a.P.User.OrgID {
		// Before the commitment is looked up, so the answer says nothing
		// of which ids exist on the case.
		return Commitment{}, s.deny(ctx, ev, forbidden("only the operator of the case urges fulfilment"))
	}
	var row commitmentRow
	err = gorm.ErrRecordNotFound
	if validID(id) {
		err = s.db.WithContext(ctx).Where("id = ? AND case_id = ?", id, cs.ID).Take(&row).Error
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Commitment{}, s.deny(ctx, ev, notFound("commitment"))
	}
	if err != nil {
		return Commitment{}, fmt.Errorf("load commitment %s: %w", id, err)
	}
	chk, err := s.commitmentChecker(ctx)
	if err != nil {
		return Commitment{}, err
	}
	if !s.commitmentChecked(ctx, chk, &row) || row.OperatorOrg != cs.OperatorOrg {
		// Moved to this case or edited outside crvault: not this
		// operator's to urge.
		return Commitment{}, s.deny(ctx, ev, notFound("commitment"))
	}
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return Commitment{}, err
	}
	hs, proven, err := s.findings(ctx, key, &row)
	if err != nil {
		return Commitment{}, err
	}
	if !proven {
		// Listed to no party (ListCommitments): not one to urge.
		return Commitment{}, s.deny(ctx, ev, notFound("commitment"))
	}
	note, err := vault.CleanText("note", in.Note, 4000, true)
	if err != nil {
		return Commitment{}, err
	}
	if err := s.record(ctx, ev); err != nil {
		return Commitment{}, err
	}
	u := urgeRow{ID: newID(), CommitmentID: row.ID, By: a.P.User.ID, ByOrg: a.P.User.OrgID, At: s.cfg.Now().UTC().Truncate(time.Microsecond)}
	if u.Note, err = s.seal(ctx, label("supervision_commitment_urges", "note", u.ID), note); err != nil {
		return Commitment{}, err
	}
	u.Tag = urgeTag(key, &u)
	if err := s.db.WithContext(ctx).Create(&u).Error; err != nil {
		return Commitment{}, fmt.Errorf("store urge: %w", err)
	}
	return s.toCommitment(ctx, a.P, row, hs, true)
}

// toCommitment opens a commitment for the viewer p: the operator and the
// provider see the inspectors' finding but not which inspector made it.
// hs are its findings whose tags check, oldest first (findings), and
// proven says whether they prove its status columns: the status shown is
// the latest of them, or pending with none, and CommitmentUnverified when
// not proven (such a row reaches staff only). Its urges are those whose
// tags check (commitmenttags.go): one that fails is left out, for every
// viewer, before its note is opened.
func (s *Service) toCommitment(ctx context.Context, p access.Principal, r commitmentRow, hs []commitmentChangeRow, proven bool) (Commitment, error) {
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return Commitment{}, err
	}
	text, err := s.open(ctx, label("supervision_commitments", "text", r.ID), r.Text)
	if err != nil {
		return Commitment{}, err
	}
	// The status columns are not read: proven, they say what the latest
	// finding says, and the note is the finding's.
	c := Commitment{ID: r.ID, CaseID: r.CaseID, ProviderOrg: r.ProviderOrg, OperatorOrg: r.OperatorOrg, Kind: r.Kind, Text: text,
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.UTC(), Urges: []Urge{}, Status: CommitmentPending, History: []CommitmentChange{}}
	if !proven {
		c.Status = CommitmentUnverified
	}
	party := p.Has(access.RoleOperator) || p.Has(access.RoleProvider)
	for _, h := range hs {
		note, err := s.open(ctx, label("supervision_commitment_changes", "note", h.ID), h.Note)
		if err != nil {
			return Commitment{}, err
		}
		ch := CommitmentChange{Status: h.Status, Note: note, By: h.By, At: h.At.UTC()}
		if party {
			ch.By = ""
		}
		c.History = append(c.History, ch)
	}
	if n := len(c.History); proven && n > 0 {
		last := c.History[n-1]
		c.Status, c.StatusNote, c.StatusBy, c.StatusAt = last.Status, last.Note, last.By, &last.At
	}
	var us []urgeRow
	if err := s.db.WithContext(ctx).Where("commitment_id = ?", r.ID).Order("id").Find(&us).Error; err != nil {
		return c, fmt.Errorf("load urges of commitment %s: %w", r.ID, err)
	}
	for _, u := range us {
		if !s.urgeChecked(ctx, key, &u) {
			continue
		}
		note, err := s.open(ctx, label("supervision_commitment_urges", "note", u.ID), u.Note)
		if err != nil {
			return Commitment{}, err
		}
		c.Urges = append(c.Urges, Urge{ID: u.ID, Note: note, By: u.By, ByOrg: u.ByOrg, At: u.At.UTC()})
	}
	return c, nil
}

// SetCommitmentStatus records what supervision found about a commitment
// (inspectors): kept, breached or under_investigation, with a note. Each
// finding is kept in the commitment's history. Findings on one commitment
// are serialised: in this process by a lock held from the read through the
// audit record to the update, so the audit log and the history agree on
// their order; across processes by the version the update is conditional
// on, and the one that lost answers concurrent_update, its audit record
// followed by an errored one.
func (s *Service) SetCommitmentStatus(ctx context.Context, a vault.Actor, id string, in CommitmentStatusRequest) (Commitment, error) {
	ev := event(a, "commitment.status", audit.Allowed, "", "commitment/"+id, in.Status)
	if !a.P.Has(access.RoleInspector) {
		return Commitment{}, s.deny(ctx, ev, forbidden("only inspectors supervise commitments"))
	}
	s.commitmentMu.Lock()
	defer s.commitmentMu.Unlock()
	var row commitmentRow
	err := gorm.ErrRecordNotFound
	if validID(id) {
		err = s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Commitment{}, s.deny(ctx, ev, notFound("commitment"))
	}
	if err != nil {
		return Commitment{}, fmt.Errorf("load commitment %s: %w", id, err)
	}
	chk, err := s.commitmentChecker(ctx)
	if err != nil {
		return Commitment{}, err
	}
	if !s.commitmentChecked(ctx, chk, &row) {
		// Listed to inspectors without its parties; no finding is
		// recorded on a row whose case and parties are not the ones
		// crvault stored.
		return Commitment{}, s.deny(ctx, ev, notFound("commitment"))
	}
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return Commitment{}, err
	}
	hs, proven, err := s.findings(ctx, key, &row)
	if err != nil {
		return Commitment{}, err
	}
	if !proven {
		// Its version is not one the findings prove: a finding counted
		// on it would extend a history that is not the one shown.
		ev.CaseID = row.CaseID
		return Commitment{}, s.deny(ctx, ev, statusDamaged())
	}
	ev.CaseID = row.CaseID
	if !oneOf(in.Status, CommitmentKept, CommitmentBreached, CommitmentUnderInvestigation) {
		return Commitment{}, invalid("status", "invalid_status", "status must be kept, breached or under_investigation")
	}
	note, err := vault.CleanText("note", in.Note, 4000, in.Status == CommitmentBreached)
	if err != nil {
		return Commitment{}, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	sealedNote, err := s.seal(ctx, label("supervision_commitments", "status_note", row.ID), note)
	if err != nil {
		return Commitment{}, err
	}
	change := commitmentChangeRow{ID: newID(), CommitmentID: row.ID, Version: row.Version + 1, Status: in.Status, By: a.P.User.ID, At: now}
	if change.Note, err = s.seal(ctx, label("supervision_commitment_changes", "note", change.ID), note); err != nil {
		return Commitment{}, err
	}
	change.Tag = changeTag(key, &change)
	if err := s.record(ctx, ev); err != nil {
		return Commitment{}, err
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&commitmentRow{}).Where("id = ? AND version = ?", row.ID, row.Version).
			Updates(map[string]any{"status": in.Status, "status_note": sealedNote, "status_by": a.P.User.ID, "status_at": now, "version": change.Version})
		if res.Error != nil {
			return fmt.Errorf("set status of commitment %s: %w", row.ID, res.Error)
		}
		if res.RowsAffected != 1 {
			return conflict("concurrent_update", "the commitment changed while this request ran; reload it and retry")
		}
		if err := tx.Create(&change).Error; err != nil {
			return fmt.Errorf("record finding on commitment %s: %w", row.ID, err)
		}
		return nil
	})
	if err != nil {
		// The allowed record above did not take effect: say so.
		ev.Outcome, ev.Detail = audit.Errored, "concurrent_update"
		var ve *vault.Error
		if !errors.As(err, &ve) {
			ev.Detail = "internal"
		}
		_ = s.record(context.WithoutCancel(ctx), ev)
		return Commitment{}, err
	}
	row.Status, row.StatusNote, row.StatusBy, row.StatusAt, row.Version = in.Status, sealedNote, a.P.User.ID, &now, change.Version
	return s.toCommitment(ctx, a.P, row, append(hs, change), true)
}

// CommitmentFilter selects commitments.
type CommitmentFilter struct {
	Provider, CaseID string
	Limit            int
	Cursor           string
}

// ListCommitments lists commitments: inspectors any provider's, office
// admins those on the cases the office may list (not a party's draft), a
// provider its own organisation's, an operator those on its cases; others
// are refused. Each row's tag is checked (commitmenttags.go): one that
// fails is listed to no party, and to inspectors and the office without
// its provider and operator. So are its status columns, against its
// findings: one they do not prove is listed to no party, and to
// inspectors and the office as CommitmentUnverified. A page may then hold fewer than limit items
// with more to come.
func (s *Service) ListCommitments(ctx context.Context, a vault.Actor, f CommitmentFilter) (Page[Commitment], error) {
	if f.Cursor != "" && !validID(f.Cursor) {
		return Page[Commitment]{}, invalid("cursor", "invalid_cursor", "cursor is not one this server issued")
	}
	ev := event(a, "commitment.list", audit.Allowed, f.CaseID, "commitments", "")
	q := s.db.WithContext(ctx).Model(&commitmentRow{})
	org := a.P.User.OrgID
	switch {
	case a.P.Has(access.RoleInspector):
	case a.P.Has(access.RoleOfficeAdmin):
		cases, err := s.vault.VisibleCaseIDs(ctx, a)
		if err != nil {
			return Page[Commitment]{}, err
		}
		q = q.Where("case_id IN (?)", cases)
	case a.P.Has(access.RoleProvider), a.P.Has(access.RoleOperator):
		if a.P.Has(access.RoleProvider) {
			if f.Provider != "" && f.Provider != org {
				return Page[Commitment]{}, s.deny(ctx, ev, forbidden("a provider sees only its own commitments"))
			}
			q = q.Where("provider_org = ?", org)
		} else {
			q = q.Where("operator_org = ?", org)
		}
		// The organisation columns are copies a database administrator
		// can edit: the case must also be one the caller's organisation
		// is a party of by the case's parties tag (review h30h F3).
		cases, err := s.vault.VisibleCaseIDs(ctx, a)
		if err != nil {
			return Page[Commitment]{}, err
		}
		q = q.Where("case_id IN (?)", cases)
	default:
		return Page[Commitment]{}, s.deny(ctx, ev, forbidden("your role may not list commitments"))
	}
	if f.Provider != "" {
		q = sqldb.WhereText(q, "provider_org = ?", f.Provider)
	}
	if f.CaseID != "" {
		q = sqldb.WhereText(q, "case_id = ?", f.CaseID)
	}
	if f.Cursor != "" {
		q = q.Where("id > ?", f.Cursor)
	}
	limit := pageLimit(f.Limit)
	var rows []commitmentRow
	if err := q.Order("id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return Page[Commitment]{}, fmt.Errorf("list commitments: %w", err)
	}
	page := Page[Commitment]{Items: []Commitment{}}
	if len(rows) > limit {
		rows = rows[:limit]
		page.NextCursor = rows[limit-1].ID
	}
	chk, err := s.commitmentChecker(ctx)
	if err != nil {
		return Page[Commitment]{}, err
	}
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return Page[Commitment]{}, err
	}
	staff := a.P.Has(access.RoleInspector) || a.P.Has(access.RoleOfficeAdmin)
	type checked struct {
		row    commitmentRow
		hs     []commitmentChangeRow
		proven bool
	}
	var kept []checked
	for _, r := range rows {
		if !s.commitmentChecked(ctx, chk, &r) {
			if !staff {
				continue
			}
			r.ProviderOrg, r.OperatorOrg = "", ""
		}
		hs, proven, err := s.findings(ctx, key, &r)
		if err != nil {
			return Page[Commitment]{}, err
		}
		if !proven && !staff {
			continue
		}
		kept = append(kept, checked{r, hs, proven})
	}
	seen := make([]listed, len(kept))
	for i, k := range kept {
		seen[i] = listed{k.row.CaseID, k.row.ID}
	}
	if err := s.recordList(ctx, ev, seen); err != nil {
		return Page[Commitment]{}, err
	}
	for _, k := range kept {
		c, err := s.toCommitment(ctx, a.P, k.row, k.hs, k.proven)
		if err != nil {
			return Page[Commitment]{}, err
		}
		page.Items = append(page.Items, c)
	}
	return page, nil
}
