package supervision

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault"
)

// Complaint statuses: open -> investigating -> upheld | dismissed.
const (
	StatusOpen          = "open"
	StatusInvestigating = "investigating"
	StatusUpheld        = "upheld"
	StatusDismissed     = "dismissed"
)

// ActionRecuseSubject is the resolution action that recuses the subject.
const ActionRecuseSubject = "recuse_subject"

// Complaint is a complaint against a reviewer (Art. 17). Its subject is
// named to the parties by the pseudonym they were shown ("R3"), and to the
// inspectors and the office as the user, with the pseudonym beside it.
type Complaint struct {
	ID               string   `json:"id"`
	CaseID           string   `json:"case_id"`
	Subject          string   `json:"subject"`
	SubjectPseudonym string   `json:"subject_pseudonym,omitempty"`
	Kind             string   `json:"kind"`
	Description      string   `json:"description"`
	Evidence         []string `json:"evidence"`
	Status           string   `json:"status"`
	Outcome          string   `json:"outcome,omitempty"`
	// SubjectRecused and ReassignmentRequested say the remedy was applied
	// and the office admins are asked to assign someone else.
	SubjectRecused        bool           `json:"subject_recused"`
	ReassignmentRequested bool           `json:"reassignment_requested"`
	FiledBy               string         `json:"filed_by"`
	FiledByOrg            string         `json:"filed_by_org"`
	FiledAt               time.Time      `json:"filed_at"`
	UpdatedAt             time.Time      `json:"updated_at"`
	ResolvedAt            *time.Time     `json:"resolved_at"`
	History               []StatusChange `json:"history"`
	// Damaged says the stored complaint does not authenticate
	// (complainttags.go): shown to inspectors and office admins only,
	// without the filer, subject and evidence if those were edited; no
	// action is taken on it until it is restored.
	Damaged bool `json:"damaged,omitempty"`
}

// StatusChange is one step of a complaint, with the inspector's note. By,
// the inspector, is shown to inspectors only.
type StatusChange struct {
	Status  string    `json:"status"`
	Note    string    `json:"note"`
	Actions []string  `json:"actions,omitempty"`
	By      string    `json:"by,omitempty"`
	At      time.Time `json:"at"`
}

// NewComplaint is what an operator or provider files. Subject, when given,
// is the pseudonym under which the person appears in the party's view of the
// case ("R3", from GET /audit/events).
type NewComplaint struct {
	Case        string   `json:"case"`
	Subject     string   `json:"subject"`
	Kind        string   `json:"kind"`
	Description string   `json:"description"`
	Evidence    []string `json:"evidence"`
}

// StatusRequest moves a complaint under investigation.
type StatusRequest struct {
	Status string `json:"status"`
	Note   string `json:"note"`
}

// Resolution closes a complaint.
type Resolution struct {
	Outcome string   `json:"outcome"`
	Actions []string `json:"actions"`
	Note    string   `json:"note"`
}

func (s *Service) caseFacts(c vault.Case) access.CaseFacts {
	return access.CaseFacts{ID: c.ID, OperatorOrg: c.OperatorOrg, ProviderOrgs: c.Providers, Status: c.Status}
}

// FileComplaint files a complaint on a case the caller's organisation is a
// party to, as operator or provider. Callers unrelated to the case get
// not_found; the subject must be a pseudonym of the case that names someone
// assigned to it now or before (the inspector sees who).
func (s *Service) FileComplaint(ctx context.Context, a vault.Actor, in NewComplaint) (Complaint, error) {
	cs, err := s.vault.GetCase(ctx, a, in.Case)
	if err != nil {
		return Complaint{}, err
	}
	ev := event(a, "complaint.create", audit.Allowed, cs.ID, "case/"+cs.ID, "")
	d, err := s.access.Decide(ctx, a.P, s.caseFacts(cs), access.ActComplaintCreate)
	if err != nil {
		return Complaint{}, fmt.Errorf("decide complaint on case %s: %w", cs.ID, err)
	}
	if !d.Allowed {
		return Complaint{}, s.deny(ctx, ev, forbidden("only the operator or a provider of the case may complain"))
	}
	if in.Kind != "unfair" && in.Kind != "confidentiality" {
		return Complaint{}, invalid("kind", "invalid_kind", `kind must be "unfair" or "confidentiality"`)
	}
	desc, err := vault.CleanText("description", in.Description, 10000, true)
	if err != nil {
		return Complaint{}, err
	}
	subject := ""
	if in.Subject != "" {
		uid, ok, err := s.vault.ResolvePseudonym(ctx, cs.ID, a.P.User.OrgID, in.Subject)
		if err != nil {
			return Complaint{}, err
		}
		known := false
		if ok {
			asgs, err := s.access.Assignments(ctx, cs.ID)
			if err != nil {
				return Complaint{}, fmt.Errorf("list assignments of case %s: %w", cs.ID, err)
			}
			for _, g := range asgs {
				known = known || g.UserID == uid
			}
		}
		if !known {
			// Audited, so that tries are for the inspectors to see. The
			// answer tells only what the filer's own party was shown:
			// pseudonyms are numbered per party.
			return Complaint{}, s.deny(ctx, ev, invalid("subject", "unknown_subject", "the subject must be the pseudonym (as in \"R3\") of someone assigned to this case"))
		}
		subject = uid
	}
	if len(in.Evidence) > 50 {
		return Complaint{}, invalid("evidence", "invalid_field", "at most 50 evidence materials")
	}
	for _, id := range in.Evidence {
		m, err := s.vault.GetMaterial(ctx, a, id)
		var ve *vault.Error
		if errors.As(err, &ve) && ve.Kind == vault.ErrNotFound || err == nil && (m.CaseID != cs.ID || m.Kind != "evidence") {
			return Complaint{}, invalid("evidence", "invalid_evidence", "evidence must name evidence materials of this case")
		}
		if err != nil {
			return Complaint{}, err
		}
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	row := complaintRow{ID: newID(), CaseID: cs.ID, Subject: subject, Kind: in.Kind,
		Evidence: strings.Join(in.Evidence, ","), Status: StatusOpen, FiledBy: a.P.User.ID, FiledByOrg: a.P.User.OrgID,
		FiledAt: now, UpdatedAt: now}
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return Complaint{}, fmt.Errorf("tag complaint: %w", err)
	}
	tagComplaint(key, &row)
	if row.Description, err = s.seal(ctx, label("supervision_complaints", "description", row.ID), desc); err != nil {
		return Complaint{}, err
	}
	ev.Resource = "complaint/" + row.ID
	if err := s.record(ctx, ev); err != nil {
		return Complaint{}, err
	}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return Complaint{}, fmt.Errorf("store complaint: %w", err)
	}
	return s.toComplaint(ctx, a.P, row, nil)
}

// present checks r (checkComplaints) and opens it for p: a complaint just
// changed, whose history is read again.
func (s *Service) present(ctx context.Context, p access.Principal, r complaintRow) (Complaint, error) {
	rows := []complaintRow{r}
	history, err := s.checkComplaints(ctx, rows)
	if err != nil {
		return Complaint{}, err
	}
	return s.toComplaint(ctx, p, rows[0], history[r.ID])
}

// toComplaint opens a checked complaint, with its verified history, for
// the viewer p. Its filer (an operator or provider) sees the subject by
// pseudonym and not who handled it: the inspectors' actions are theirs. A
// damaged complaint is shown (to staff: parties never get one) marked so,
// and without the columns its failed tag covered when that is its fixed
// tag.
func (s *Service) toComplaint(ctx context.Context, p access.Principal, r complaintRow, history []complaintChangeRow) (Complaint, error) {
	desc, err := s.open(ctx, label("supervision_complaints", "description", r.ID), r.Description)
	if err != nil {
		return Complaint{}, err
	}
	party := p.Has(access.RoleOperator) || p.Has(access.RoleProvider)
	c := Complaint{ID: r.ID, CaseID: r.CaseID, Subject: r.Subject, Kind: r.Kind, Description: desc, Evidence: []string{},
		Status: r.Status, Outcome: r.Outcome, SubjectRecused: r.SubjectRecused, ReassignmentRequested: r.ReassignmentRequested,
		FiledBy: r.FiledBy, FiledByOrg: r.FiledByOrg, FiledAt: r.FiledAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), History: []StatusChange{},
		Damaged: r.damaged()}
	if r.badFixed {
		c.Subject, c.FiledBy, c.FiledByOrg = "", "", ""
		r.Subject, r.Evidence = "", ""
	}
	if r.Subject != "" {
		if c.SubjectPseudonym, err = s.vault.Pseudonym(ctx, r.CaseID, r.FiledByOrg, r.Subject); err != nil {
			return Complaint{}, err
		}
		if party {
			c.Subject, c.SubjectPseudonym = c.SubjectPseudonym, ""
		}
	}
	if r.Evidence != "" {
		c.Evidence = strings.Split(r.Evidence, ",")
	}
	if r.ResolvedAt != nil {
		t := r.ResolvedAt.UTC()
		c.ResolvedAt = &t
	}
	for _, h := range history {
		note, err := s.open(ctx, label("supervision_complaint_changes", "note", changeRow(r.ID, h.Status)), h.Note)
		if err != nil {
			return Complaint{}, err
		}
		sc := StatusChange{Status: h.Status, Note: note, By: h.By, At: h.At.UTC()}
		if party {
			// The complainant is told what became of the complaint and
			// why (the resolution's note), not the inspectors' working
			// notes, which may name the reviewer behind a pseudonym.
			sc.By = ""
			if h.Status == StatusInvestigating {
				sc.Note = ""
			}
		}
		if h.Actions != "" {
			sc.Actions = strings.Split(h.Actions, ",")
		}
		c.History = append(c.History, sc)
	}
	return c, nil
}

// canSee says whether the caller may see a checked complaint: inspectors
// all, the filer their own unless it is damaged (its filed_by may not be
// the filer's), office admins those on the office's cases (2020 Art. 17 /
// 2021 Art. 18 lets parties complain to the office), which are the cases
// it may list: a party's draft is not one, and neither are its complaints.
func (s *Service) canSee(ctx context.Context, a vault.Actor, r complaintRow) (bool, error) {
	p := a.P
	if s.access.Can(p, "complaint", "read_all") || !r.damaged() && r.FiledBy == p.User.ID {
		return true, nil
	}
	if !p.Has(access.RoleOfficeAdmin) {
		return false, nil
	}
	return s.vault.CaseVisible(ctx, a, r.CaseID)
}

// complaint loads and checks a complaint, with its verified history, for
// act; callers who may not see it get not_found, those who may see it but
// not act get forbidden, and an act on a damaged one complaint_damaged.
// All audited.
func (s *Service) complaint(ctx context.Context, a vault.Actor, id, action, perm string) (complaintRow, []complaintChangeRow, error) {
	var r complaintRow
	ev := event(a, action, audit.Allowed, "", "complaint/"+id, "")
	err := gorm.ErrRecordNotFound
	if validID(id) {
		err = s.db.WithContext(ctx).Where("id = ?", id).Take(&r).Error
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return r, nil, s.deny(ctx, ev, notFound("complaint"))
	}
	if err != nil {
		return r, nil, fmt.Errorf("load complaint %s: %w", id, err)
	}
	rows := []complaintRow{r}
	history, err := s.checkComplaints(ctx, rows)
	if err != nil {
		return r, nil, err
	}
	r = rows[0]
	ev.CaseID = r.CaseID
	visible, err := s.canSee(ctx, a, r)
	if err != nil {
		return r, nil, err
	}
	if !visible {
		return r, nil, s.deny(ctx, ev, notFound("complaint"))
	}
	if perm != "" && !s.access.Can(a.P, "complaint", perm) {
		return r, nil, s.deny(ctx, ev, forbidden("only inspectors handle complaints"))
	}
	if perm != "" && r.damaged() {
		return r, nil, s.deny(ctx, ev, complaintDamaged())
	}
	return r, history[r.ID], nil
}

// evidenceCited is the vault's EvidenceIndex: whether a complaint on the
// case lists the material among its evidence (kept comma-separated; ids
// hold no comma, nor any of LIKE's wildcards once checked).
func (s *Service) evidenceCited(ctx context.Context, caseID, materialID string) (bool, error) {
	if !validID(materialID) || strings.ContainsAny(materialID, "_%") {
		return false, nil
	}
	// The case and evidence are columns a database administrator can
	// edit: only a complaint whose tag covers them cites the material (a
	// few read, in case rows were copied to cite it).
	var rows []complaintRow
	err := s.db.WithContext(ctx).Select(complaintTagColumns).Where("case_id = ? AND (',' || evidence || ',') LIKE ?", caseID, "%,"+materialID+",%").
		Order("id").Limit(8).Find(&rows).Error
	if err != nil {
		return false, fmt.Errorf("find complaints citing %s: %w", materialID, err)
	}
	if len(rows) == 0 {
		return false, nil
	}
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return false, fmt.Errorf("check complaints citing %s: %w", materialID, err)
	}
	for i := range rows {
		if key.CheckRowTag(rows[i].Tag, complaintsTable, complaintFields(&rows[i])...) {
			return true, nil
		}
		s.vault.TagRefused(ctx, complaintsTable, rows[i].ID,
			"complaint refused as citing evidence: its row tag does not check (case or evidence edited outside crvault, or written by an older vaultd)",
			"case", caseID, "material", materialID, "tagged", len(rows[i].Tag) > 0)
	}
	return false, nil
}

// GetComplaint returns one complaint, with its history and outcome.
func (s *Service) GetComplaint(ctx context.Context, a vault.Actor, id string) (Complaint, error) {
	r, history, err := s.complaint(ctx, a, id, "complaint.read", "")
	if err != nil {
		return Complaint{}, err
	}
	if err := s.record(ctx, event(a, "complaint.read", audit.Allowed, r.CaseID, "complaint/"+id, "")); err != nil {
		return Complaint{}, err
	}
	return s.toComplaint(ctx, a.P, r, history)
}

// ComplaintFilter selects complaints in ListComplaints.
type ComplaintFilter struct {
	Status, CaseID string
	Limit          int
	Cursor         string
}

// ListComplaints lists what the caller may see, oldest first, with counts
// by status.
func (s *Service) ListComplaints(ctx context.Context, a vault.Actor, f ComplaintFilter) (Page[Complaint], error) {
	if f.Status != "" && !oneOf(f.Status, StatusOpen, StatusInvestigating, StatusUpheld, StatusDismissed) {
		return Page[Complaint]{}, invalid("status", "invalid_status", "status must be open, investigating, upheld or dismissed")
	}
	if f.Cursor != "" && !validID(f.Cursor) {
		return Page[Complaint]{}, invalid("cursor", "invalid_cursor", "cursor is not one this server issued")
	}
	limit := pageLimit(f.Limit)
	q := s.db.WithContext(ctx).Model(&complaintRow{})
	// Staff (inspectors, office admins) are shown damaged complaints as
	// damaged; parties are not shown them.
	staff := true
	switch {
	case s.access.Can(a.P, "complaint", "read_all"):
	case a.P.Has(access.RoleOfficeAdmin):
		cases, err := s.vault.VisibleCaseIDs(ctx, a)
		if err != nil {
			return Page[Complaint]{}, err
		}
		q = q.Where("filed_by = ? OR case_id IN (?)", a.P.User.ID, cases)
	default:
		staff = false
		q = q.Where("filed_by = ?", a.P.User.ID)
	}
	if f.CaseID != "" {
		q = sqldb.WhereText(q, "case_id = ?", f.CaseID)
	}
	// Counted from checked rows, not by the database: a status edited
	// outside crvault is counted as damaged, not as what it says. Every
	// matching complaint is read for it (without its description):
	// complaints are few.
	var all []complaintRow
	if err := q.Session(&gorm.Session{}).Select(complaintTagColumns).Find(&all).Error; err != nil {
		return Page[Complaint]{}, fmt.Errorf("count complaints: %w", err)
	}
	history, err := s.checkComplaints(ctx, all)
	if err != nil {
		return Page[Complaint]{}, err
	}
	counts, checked := complaintCounts(all, staff), make(map[string]complaintRow, len(all))
	for _, r := range all {
		checked[r.ID] = r
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Cursor != "" {
		q = q.Where("id > ?", f.Cursor)
	}
	var rows []complaintRow
	if err := q.Order("id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return Page[Complaint]{}, fmt.Errorf("list complaints: %w", err)
	}
	page := Page[Complaint]{Items: []Complaint{}, Counts: counts}
	if len(rows) > limit {
		rows = rows[:limit]
		page.NextCursor = rows[limit-1].ID
	}
	// The page's rows take their checks from the counts'; one filed since
	// is checked now.
	var late []complaintRow
	for i := range rows {
		if c, ok := checked[rows[i].ID]; ok {
			rows[i].badFixed, rows[i].badState = c.badFixed, c.badState
		} else {
			late = append(late, rows[i])
		}
	}
	if len(late) > 0 {
		more, err := s.checkComplaints(ctx, late)
		if err != nil {
			return Page[Complaint]{}, err
		}
		for _, r := range late {
			checked[r.ID], history[r.ID] = r, more[r.ID]
		}
		for i := range rows {
			c := checked[rows[i].ID]
			rows[i].badFixed, rows[i].badState = c.badFixed, c.badState
		}
	}
	kept := rows[:0]
	for _, r := range rows {
		if staff || !r.damaged() {
			kept = append(kept, r)
		}
	}
	rows = kept
	seen := make([]listed, len(rows))
	for i, r := range rows {
		seen[i] = listed{r.CaseID, r.ID}
	}
	if err := s.recordList(ctx, event(a, "complaint.list", audit.Allowed, f.CaseID, "complaints", ""), seen); err != nil {
		return Page[Complaint]{}, err
	}
	for _, r := range rows {
		c, err := s.toComplaint(ctx, a.P, r, history[r.ID])
		if err != nil {
			return Page[Complaint]{}, err
		}
		page.Items = append(page.Items, c)
	}
	return page, nil
}

// complaintCounts counts checked complaints by status, the damaged ones
// under "damaged" for staff and not at all for a party.
func complaintCounts(rows []complaintRow, staff bool) map[string]int64 {
	out := map[string]int64{}
	for _, r := range rows {
		switch {
		case !r.damaged():
			out[r.Status]++
		case staff:
			out[countDamaged]++
		}
	}
	return out
}

func countByStatus(q *gorm.DB) (map[string]int64, error) {
	var rows []struct {
		Status string
		N      int64
	}
	if err := q.Select("status, COUNT(*) AS n").Group("status").Scan(&rows).Error; err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, nil
}

func oneOf(v string, xs ...string) bool {
	for _, x := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// SetComplaintStatus moves an open complaint to investigating (inspectors).
func (s *Service) SetComplaintStatus(ctx context.Context, a vault.Actor, id string, in StatusRequest) (Complaint, error) {
	r, _, err := s.complaint(ctx, a, id, "complaint.status", "resolve")
	if err != nil {
		return Complaint{}, err
	}
	if in.Status != StatusInvestigating {
		return Complaint{}, invalid("status", "invalid_status", `status must be "investigating"; resolve with /resolution`)
	}
	note, err := vault.CleanText("note", in.Note, 4000, false)
	if err != nil {
		return Complaint{}, err
	}
	if r.Status != StatusOpen {
		return Complaint{}, conflict("illegal_transition", "only an open complaint can be put under investigation", allowedFrom(r.Status)...)
	}
	if err := s.record(ctx, event(a, "complaint.status", audit.Allowed, r.CaseID, "complaint/"+id, in.Status)); err != nil {
		return Complaint{}, err
	}
	if err := s.change(ctx, &r, in.Status, note, nil, a.P.User.ID, nil); err != nil {
		return Complaint{}, err
	}
	return s.present(ctx, a.P, r)
}

func allowedFrom(status string) []string {
	switch status {
	case StatusOpen:
		return []string{StatusInvestigating}
	case StatusInvestigating:
		return []string{StatusUpheld, StatusDismissed}
	}
	return []string{}
}

// change moves r to status only if nobody else moved it since it was read.
func (s *Service) change(ctx context.Context, r *complaintRow, status, note string, actions []string, by string, more func(*complaintRow)) error {
	apply, err := s.changer(ctx, r, status, note, actions, by, more)
	if err != nil {
		return err
	}
	return s.db.WithContext(ctx).Transaction(apply)
}

// changer seals the note of a change and returns the step, to run in a
// transaction, that makes it: r moves to status, with what more changes,
// only if nobody else moved it since it was read (concurrent_update
// otherwise), and is reloaded. Its state is written whole with the state
// tag over it, in one UPDATE, and the change row is tagged once the
// database has numbered it.
func (s *Service) changer(ctx context.Context, r *complaintRow, status, note string, actions []string, by string, more func(*complaintRow)) (func(tx *gorm.DB) error, error) {
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	sealed, err := s.seal(ctx, label("supervision_complaint_changes", "note", changeRow(r.ID, status)), note)
	if err != nil {
		return nil, err
	}
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("tag complaint %s: %w", r.ID, err)
	}
	next := *r
	next.Status, next.UpdatedAt = status, now
	if more != nil {
		more(&next)
	}
	next.StateTag = key.RowTag(complaintStateDomain, complaintStateFields(&next)...)
	upd := map[string]any{"status": next.Status, "outcome": next.Outcome, "subject_recused": next.SubjectRecused,
		"reassignment_requested": next.ReassignmentRequested, "resolved_at": next.ResolvedAt, "updated_at": next.UpdatedAt,
		"state_tag": next.StateTag}
	return func(tx *gorm.DB) error {
		res := tx.Model(&complaintRow{}).Where("id = ? AND status = ?", r.ID, r.Status).Updates(upd)
		if res.Error != nil {
			return fmt.Errorf("update complaint %s: %w", r.ID, res.Error)
		}
		if res.RowsAffected != 1 {
			return conflict("concurrent_update", "the complaint changed while this request ran; retry")
		}
		h := complaintChangeRow{ComplaintID: r.ID, Status: status, Note: sealed, Actions: strings.Join(actions, ","), By: by, At: now}
		if err := tx.Create(&h).Error; err != nil {
			return fmt.Errorf("record change of complaint %s: %w", r.ID, err)
		}
		if err := tx.Model(&complaintChangeRow{}).Where("id = ?", h.ID).UpdateColumn("tag", complaintChangeTag(key, &h)).Error; err != nil {
			return fmt.Errorf("tag change of complaint %s: %w", r.ID, err)
		}
		return tx.Where("id = ?", r.ID).Take(r).Error
	}, nil
}

// Resolve upholds or dismisses a complaint under investigation. Upheld with
// recuse_subject, the subject loses every grant on the case before Resolve
// returns, cannot be assigned to it again, and the office admins are asked
// to reassign (an audited "case.reassignment_requested" and a flag on the
// complaint that office admins see in their complaint list).
//
// The resolution and its recusal are one database transaction: either the
// complaint is upheld with its subject recused, or, if any part fails, the
// complaint is still under investigation, nobody is recused, and the
// inspector may simply resolve it again. An upheld complaint whose remedy
// did not take effect, to be completed later, cannot arise. Of inspectors
// resolving at once, one wins and the others get concurrent_update, their
// attempt audited as refused and nothing of it applied.
func (s *Service) Resolve(ctx context.Context, a vault.Actor, id string, in Resolution) (Complaint, error) {
	r, _, err := s.complaint(ctx, a, id, "complaint.resolve", "resolve")
	if err != nil {
		return Complaint{}, err
	}
	if in.Outcome != StatusUpheld && in.Outcome != StatusDismissed {
		return Complaint{}, invalid("outcome", "invalid_outcome", `outcome must be "upheld" or "dismissed"`)
	}
	recuse := false
	for _, act := range in.Actions {
		if act != ActionRecuseSubject {
			return Complaint{}, invalid("actions", "invalid_action", `the only action is "recuse_subject"`)
		}
		recuse = true
	}
	if recuse && in.Outcome != StatusUpheld {
		return Complaint{}, invalid("actions", "invalid_action", "only an upheld complaint recuses its subject")
	}
	if recuse && r.Subject == "" {
		return Complaint{}, invalid("actions", "no_subject", "this complaint names no subject to recuse")
	}
	note, err := vault.CleanText("note", in.Note, 4000, true)
	if err != nil {
		return Complaint{}, err
	}
	if r.Status != StatusInvestigating {
		return Complaint{}, conflict("illegal_transition", "only a complaint under investigation can be resolved", allowedFrom(r.Status)...)
	}
	res := "complaint/" + id
	if a.P.User.ID == r.Subject || a.P.User.ID == r.FiledBy {
		// Nobody judges a complaint about themselves, or their own.
		return Complaint{}, s.deny(ctx, event(a, "complaint.resolve", audit.Denied, r.CaseID, res, ""),
			&vault.Error{Kind: vault.ErrForbidden, Code: "self_resolution", Detail: "another inspector must resolve a complaint about you, or filed by you"})
	}
	resolvedAt := s.cfg.Now().UTC().Truncate(time.Microsecond)
	var actions []string
	if recuse {
		actions = []string{ActionRecuseSubject}
	}
	apply, err := s.changer(ctx, &r, in.Outcome, note, actions, a.P.User.ID, func(n *complaintRow) {
		n.Outcome, n.ResolvedAt = in.Outcome, &resolvedAt
		n.SubjectRecused, n.ReassignmentRequested = recuse, recuse
	})
	if err != nil {
		return Complaint{}, err
	}
	// Audited before it is written, as every change is: the resolution,
	// and with a recusal the recusal and the request to reassign. The
	// conditional status update then decides between inspectors resolving
	// at once: the winner's transaction applies the remedy with the
	// resolution, a loser's applies nothing, and its events are followed
	// by refusals. The audit log is not written inside the transaction:
	// on SQLite its writer waits for the same database.
	evs := []audit.Event{event(a, "complaint.resolve", audit.Allowed, r.CaseID, res, in.Outcome)}
	if recuse {
		e := event(a, "assignment.recuse", audit.Allowed, r.CaseID, "user/"+r.Subject, "complaint_upheld")
		e.Purpose = res
		evs = append(evs, e, event(a, "case.reassignment_requested", audit.Allowed, r.CaseID, res, "subject_recused"))
	}
	for i := range evs {
		seq, err := s.recordSeq(ctx, evs[i])
		if err != nil {
			s.unrecord(ctx, evs[:i], err)
			return Complaint{}, err
		}
		evs[i].Seq = seq
	}
	if recuse {
		err = s.access.RecuseWith(ctx, r.CaseID, r.Subject, "complaint "+r.ID+" upheld", apply)
	} else {
		err = s.db.WithContext(ctx).Transaction(apply)
	}
	if err != nil {
		s.unrecord(ctx, evs, err)
		if errors.As(err, new(*vault.Error)) {
			return Complaint{}, err
		}
		return Complaint{}, fmt.Errorf("resolve complaint %s: %w", r.ID, err)
	}
	return s.present(ctx, a.P, r)
}

// unrecord follows events audited as allowed whose change then did not
// take effect because of cause: each again, refused with the code of a
// refusal (concurrent_update) or as an error, naming the event it undoes
// (";undoes=<seq>", which vault.GrantEnds reads: only a refusal the
// server wrote after its own allowed event undoes it). Best effort: the
// request fails either way.
func (s *Service) unrecord(ctx context.Context, evs []audit.Event, cause error) {
	outcome, detail := audit.Errored, "internal"
	var ve *vault.Error
	if errors.As(cause, &ve) {
		outcome, detail = audit.Denied, ve.Code
		if ve.Kind == vault.ErrUnavailable {
			outcome = audit.Errored
		}
	}
	for _, e := range evs {
		e.Outcome, e.Detail = outcome, detail
		if e.Seq > 0 {
			e.Detail += vault.UndoMark + strconv.FormatInt(e.Seq, 10)
		}
		e.Seq = 0
		_ = s.record(context.WithoutCancel(ctx), e)
	}
}
