package access

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// Assign grants userID need-to-know access to caseID in role ("reviewer" or
// "member_unit", which the user must hold globally) for purpose, until
// expiresAt (nil: until revoked). ErrConflict if the user already holds an
// active assignment in that role on the case; ErrBlocked if the user was
// recused from the case or declared a conflict of interest on it.
func (s *Service) Assign(ctx context.Context, by Principal, caseID, userID, role, purpose string, expiresAt *time.Time) (Assignment, error) {
	purpose = strings.TrimSpace(purpose)
	now := s.now().UTC()
	if err := s.checkAssign(ctx, by, caseID, userID, role, purpose, expiresAt, now); err != nil {
		return Assignment{}, fmt.Errorf("assign on case %s: %w", caseID, err)
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	row := assignmentRow{ID: newID(now), CaseID: caseID, UserID: userID, Role: role, Purpose: purpose,
		GrantedBy: by.User.ID, GrantedAt: now}
	if expiresAt != nil {
		t := microTime(expiresAt.UTC())
		row.ExpiresAt = &t
	}
	row.RowTag = s.tag(tagAssignments, row.tagFields(stateOpen)...)
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.assignBlocked(tx, caseID, userID, role); err != nil {
			return err
		}
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		return s.publish(tx, noticeGrant, caseID+" "+userID)
	})
	if err != nil {
		return Assignment{}, fmt.Errorf("assign on case %s: %w", caseID, err)
	}

	k := caseUser{caseID, userID}
	s.touched(k)
	s.mu.Lock()
	s.grants.add(caseID, userID, rowGrant(row, [2]bool{}))
	s.mu.Unlock()
	s.log.InfoContext(ctx, "assignment granted", "assignment", row.ID, "case", caseID, "user", userID, "role", role, "by", by.User.ID)
	return s.toAssignment(row, false, [2]bool{}, now), nil
}

// CheckAssign answers the error Assign would answer now for the same
// arguments, without writing anything, so that a caller auditing before it
// writes can record a refusal as one rather than as a grant that then
// failed. It decides nothing: Assign checks again under its lock, and a
// concurrent assignment can still make it refuse.
func (s *Service) CheckAssign(ctx context.Context, by Principal, caseID, userID, role, purpose string, expiresAt *time.Time) error {
	if err := s.checkAssign(ctx, by, caseID, userID, role, strings.TrimSpace(purpose), expiresAt, s.now().UTC()); err != nil {
		return fmt.Errorf("check assignment on case %s: %w", caseID, err)
	}
	if err := s.assignBlocked(s.db.WithContext(ctx), caseID, userID, role); err != nil {
		return fmt.Errorf("check assignment on case %s: %w", caseID, err)
	}
	return nil
}

// checkAssign validates an assignment's arguments and its user (purpose
// already trimmed).
func (s *Service) checkAssign(ctx context.Context, by Principal, caseID, userID, role, purpose string, expiresAt *time.Time, now time.Time) error {
	if !by.Has(RoleOfficeAdmin) {
		return ErrForbidden
	}
	if userID == by.User.ID {
		// Need to know is granted by a second person, never taken.
		return ErrSelfAssignment
	}
	switch {
	case caseID == "" || len(caseID) > 64:
		return invalid("case", "invalid_case", "case id required")
	case Role(role) != RoleReviewer && Role(role) != RoleMemberUnit:
		return invalid("role", "invalid_role", "must be reviewer or member_unit")
	case purpose == "" || utf8.RuneCountInString(purpose) > 1000:
		return invalid("purpose", "purpose_required", "purpose of 1 to 1000 characters is required")
	case expiresAt != nil && !expiresAt.After(now):
		return invalid("expires_at", "expiry_in_past", "must be in the future")
	}
	u, err := s.User(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return invalid("user", "unknown_user", "no such user")
	}
	if err != nil {
		return err
	}
	if !u.Has(Role(role)) || u.Disabled {
		return invalid("user", "role_not_held", "the user does not hold role "+role)
	}
	return nil
}

// assignBlocked refuses an assignment of userID to caseID in role that the
// case's state forbids: ErrBlocked after a recusal or a declared conflict,
// ErrConflict while the same assignment is active.
func (s *Service) assignBlocked(db *gorm.DB, caseID, userID, role string) error {
	var n int64
	if err := db.Model(&recusalRow{}).Where("case_id = ? AND user_id = ?", caseID, userID).Count(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("user %s was recused: %w", userID, ErrBlocked)
	}
	if err := db.Model(&declarationRow{}).Where("case_id = ? AND user_id = ? AND conflict = ?", caseID, userID, true).
		Count(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("user %s declared a conflict of interest: %w", userID, ErrBlocked)
	}
	existing, err := s.caseAssignments(db, caseID, userID)
	if err != nil {
		return err
	}
	for _, a := range existing {
		if a.Role == role && a.Status == StatusActive {
			return fmt.Errorf("assignment %s is active: %w", a.ID, ErrConflict)
		}
	}
	return nil
}

func (s *Service) toAssignment(r assignmentRow, revoked bool, f [2]bool, now time.Time) Assignment {
	a := Assignment{ID: r.ID, CaseID: r.CaseID, UserID: r.UserID, Role: r.Role, Purpose: r.Purpose,
		GrantedBy: r.GrantedBy, GrantedAt: r.GrantedAt.UTC()}
	if r.ExpiresAt != nil {
		t := r.ExpiresAt.UTC()
		a.ExpiresAt = &t
	}
	if revoked {
		a.Status = StatusRevoked
	} else {
		a.Status = rowGrant(r, f).status(now)
	}
	return a
}

// caseAssignments reads the assignments of a case (of one user if userID is
// set) with their derived status, oldest first.
func (s *Service) caseAssignments(db *gorm.DB, caseID, userID string) ([]Assignment, error) {
	return s.caseAssignmentsBut(db, caseID, userID, 0)
}

// caseAssignmentsBut is caseAssignments with their status derived by
// withStatusBut (own: the trail's event of a declaration being stored).
func (s *Service) caseAssignmentsBut(db *gorm.DB, caseID, userID string, own int64) ([]Assignment, error) {
	q := db.Where("case_id = ?", caseID)
	if userID != "" {
		q = q.Where("user_id = ?", userID)
	}
	var rows []assignmentRow
	if err := q.Order("granted_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read assignments: %w", err)
	}
	return s.withStatusBut(db, rows, own)
}

// AssignmentsPage lists up to limit assignments of the case after the one
// with id after ("" from the first), in id (creation) order, by keyset on
// (case_id, id); more says whether another follows.
func (s *Service) AssignmentsPage(ctx context.Context, caseID, after string, limit int) ([]Assignment, bool, error) {
	db := s.db.WithContext(ctx)
	q := db.Where("case_id = ?", caseID)
	if after != "" {
		q = q.Where("id > ?", after)
	}
	var rows []assignmentRow
	if err := q.Order("id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return nil, false, fmt.Errorf("assignments of case %s: %w", caseID, err)
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	as, err := s.withStatus(db, rows)
	if err != nil {
		return nil, false, fmt.Errorf("assignments of case %s: %w", caseID, err)
	}
	if as == nil {
		as = []Assignment{}
	}
	return as, more, nil
}

// withStatus derives the status of assignment rows from their revocations
// and declarations, and from what the trail says the office ended.
func (s *Service) withStatus(db *gorm.DB, rows []assignmentRow) ([]Assignment, error) {
	return s.withStatusBut(db, rows, 0)
}

// withStatusBut is withStatus but for the trail's event numbered own (0:
// none), a declared conflict that is the declaration being stored: the
// vault audits it as allowed before access stores it, so a read of the
// trail in between (another request's, or a notice's) may hold it
// already, and it must not be what refuses it. Any other conflict the
// trail holds still suspends.
func (s *Service) withStatusBut(db *gorm.DB, rows []assignmentRow, own int64) ([]Assignment, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	var revoked []string
	if err := db.Model(&revocationRow{}).Where("assignment_id IN ?", ids).Pluck("assignment_id", &revoked).Error; err != nil {
		return nil, fmt.Errorf("read revocations: %w", err)
	}
	var decls []declarationRow
	if err := db.Select("id, assignment_id, case_id, user_id, conflict, row_tag").Where("assignment_id IN ?", ids).Find(&decls).Error; err != nil {
		return nil, fmt.Errorf("read declarations: %w", err)
	}
	ctx := db.Statement.Context
	flags := map[string][2]bool{}
	for _, d := range decls {
		if !s.tagOK(ctx, tagDeclarations, d.ID, d.RowTag, d.tagFields()...) {
			continue
		}
		f := flags[d.AssignmentID]
		if d.Conflict {
			f[1] = true
		} else {
			f[0] = true
		}
		flags[d.AssignmentID] = f
	}
	now := s.now()
	out := make([]Assignment, 0, len(rows))
	for _, r := range rows {
		isRevoked := slices.Contains(revoked, r.ID)
		// An assignment the database administrator inserted or edited, or
		// whose revocation or declared conflict he deleted, is not listed
		// and counts for nothing.
		if !s.tagOK(ctx, tagAssignments, r.ID, r.RowTag, r.tagFields(assignmentState(isRevoked, flags[r.ID][1]))...) {
			continue
		}
		// What the trail says the office ended is listed so, whatever
		// the row says (trailends.go).
		f := flags[r.ID]
		if !isRevoked {
			// Told the row is suspended already, trailOf neither
			// suspends it nor reports a conflict the trail holds.
			onlyOwn := own > 0 && !s.ends.conflictBesides(caseUser{r.CaseID, r.UserID}, own)
			ended, suspend := s.trailOfRow(ctx, r, f[1] || onlyOwn)
			isRevoked, f[1] = ended, f[1] || suspend
		}
		out = append(out, s.toAssignment(r, isRevoked, f, now))
	}
	return out, nil
}

// Assignments lists every assignment of the case, oldest first, with status.
func (s *Service) Assignments(ctx context.Context, caseID string) ([]Assignment, error) {
	as, err := s.caseAssignments(s.db.WithContext(ctx), caseID, "")
	if err != nil {
		return nil, fmt.Errorf("assignments of case %s: %w", caseID, err)
	}
	if as == nil {
		as = []Assignment{}
	}
	return as, nil
}

// AssignedUsers returns the users holding an active assignment on the case in
// role ("" for any role).
func (s *Service) AssignedUsers(ctx context.Context, caseID, role string) ([]string, error) {
	as, err := s.Assignments(ctx, caseID)
	if err != nil {
		return nil, err
	}
	users := []string{}
	for _, a := range as {
		if a.Status == StatusActive && (role == "" || a.Role == role) && !slices.Contains(users, a.UserID) {
			users = append(users, a.UserID)
		}
	}
	return users, nil
}

// CasesOf returns the ids of the cases where p holds an active assignment.
func (s *Service) CasesOf(ctx context.Context, p Principal) ([]string, error) {
	db := s.db.WithContext(ctx)
	var rows []assignmentRow
	err := db.Where("user_id = ?", p.User.ID).
		Where("id NOT IN (?)", db.Model(&revocationRow{}).Select("assignment_id")).
		Where("id NOT IN (?)", db.Model(&declarationRow{}).Select("assignment_id").Where("conflict = ?", true)).
		Order("case_id").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("cases of user %s: %w", p.User.ID, err)
	}
	now := s.now()
	cases := []string{}
	for _, r := range rows {
		if !s.tagOK(ctx, tagAssignments, r.ID, r.RowTag, r.tagFields(stateOpen)...) {
			continue
		}
		// The trail's ends prevail here too (review h30h F2): a revoked,
		// recused or suspended assignee does not list the case.
		if ended, suspend := s.trailOfRow(ctx, r, false); ended || suspend {
			continue
		}
		if (r.ExpiresAt == nil || now.Before(*r.ExpiresAt)) && p.Has(Role(r.Role)) &&
			(len(cases) == 0 || cases[len(cases)-1] != r.CaseID) {
			cases = append(cases, r.CaseID)
		}
	}
	return cases, nil
}

// Revoke ends an assignment; the very next Decide sees it. ErrNotFound if the
// case has no such unrevoked assignment.
func (s *Service) Revoke(ctx context.Context, by Principal, caseID, assignmentID string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	now := s.now().UTC()
	var row assignmentRow
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Where("id = ? AND case_id = ?", assignmentID, caseID).Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := s.revokeRows(tx, []assignmentRow{row}, by.User.ID, "revoked", now); err != nil {
			return err
		}
		return s.publish(tx, noticeGrant, caseID+" "+row.UserID)
	})
	if err != nil {
		return fmt.Errorf("revoke assignment %s: %w", assignmentID, err)
	}
	s.ends.revoke(caseID, assignmentID)
	if err := s.forget(caseID, row.UserID, assignmentID); err != nil {
		return fmt.Errorf("revoke assignment %s: %w", assignmentID, err)
	}
	s.log.InfoContext(ctx, "assignment revoked", "assignment", assignmentID, "case", caseID, "by", by.User.ID)
	return nil
}

// revokeRows records revocations; ErrNotFound if one was already revoked.
func (s *Service) revokeRows(tx *gorm.DB, rows []assignmentRow, by, reason string, now time.Time) error {
	for _, r := range rows {
		var n int64
		if err := tx.Model(&revocationRow{}).Where("assignment_id = ?", r.ID).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrNotFound
		}
		if err := tx.Create(&revocationRow{AssignmentID: r.ID, RevokedBy: by, RevokedAt: now, Reason: reason}).Error; err != nil {
			return err
		}
		// The assignment's own tag now says revoked: deleting the
		// revocation row makes it refused, not active again. (A row that
		// did not check gets a revoked tag too: it grants nothing either
		// way.)
		if err := tx.Model(&assignmentRow{}).Where("id = ?", r.ID).
			Update("row_tag", s.tag(tagAssignments, r.tagFields(stateRevoked)...)).Error; err != nil {
			return err
		}
	}
	return nil
}

// forget drops the assignment from memory (ids empty: all of the user's on
// the case) and re-derives the user's Casbin grants on the case.
func (s *Service) forget(caseID, userID string, ids ...string) error {
	k := caseUser{caseID, userID}
	s.touched(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	var kept []grant
	for _, g := range s.grants.get(caseID, userID) {
		if len(ids) > 0 && !slices.Contains(ids, g.id) {
			kept = append(kept, g)
		}
	}
	s.grants.set(caseID, userID, kept)
	return nil
}

// Recuse revokes every assignment of the user on the case at once and blocks
// new ones (complaint resolution "recuse_subject"). It is idempotent: a
// user already recused keeps the one recusal, and only assignments still
// unrevoked are revoked.
func (s *Service) Recuse(ctx context.Context, caseID, userID, reason string) error {
	return s.RecuseWith(ctx, caseID, userID, reason, nil)
}

// RecuseWith is Recuse in one database transaction with also, which runs in
// it first: the change the recusal belongs to (a complaint upheld), so that
// both take effect or neither does. also must use only tx (on SQLite a
// second connection would wait for this transaction), must not append to
// the audit log (its writer waits for the same database), and may run
// while this service's assignment changes wait. The database must be the
// one this service was built on.
func (s *Service) RecuseWith(ctx context.Context, caseID, userID, reason string, also func(tx *gorm.DB) error) error {
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) > 1000 {
		return invalid("reason", "too_long", "at most 1000 characters")
	}
	// Taken before the transaction begins, as every assignment change
	// does: the other order could wait on each other.
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	now := s.now().UTC()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if also != nil {
			if err := also(tx); err != nil {
				return err
			}
		}
		var n int64
		if err := tx.Model(&recusalRow{}).Where("case_id = ? AND user_id = ?", caseID, userID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			if err := tx.Create(&recusalRow{CaseID: caseID, UserID: userID, Reason: reason, CreatedAt: now}).Error; err != nil {
				return err
			}
		}
		var rows []assignmentRow
		if err := tx.Where("case_id = ? AND user_id = ?", caseID, userID).
			Where("id NOT IN (?)", tx.Model(&revocationRow{}).Select("assignment_id")).Find(&rows).Error; err != nil {
			return err
		}
		if err := s.revokeRows(tx, rows, "", "recused: "+reason, now); err != nil {
			return err
		}
		return s.publish(tx, noticeGrant, caseID+" "+userID)
	})
	if err != nil {
		return fmt.Errorf("recuse user %s from case %s: %w", userID, caseID, err)
	}
	s.ends.recuse(caseUser{caseID, userID})
	if err := s.forget(caseID, userID); err != nil {
		return fmt.Errorf("recuse user %s from case %s: %w", userID, caseID, err)
	}
	s.log.InfoContext(ctx, "user recused", "case", caseID, "user", userID)
	return nil
}

// LatestDeclaration says where the user stands on conflicts of interest on
// the case: the newest declaration of a conflict if there is one (a
// conflict, once declared, suspends the assignments it was made on for
// good), else the newest declaration, without its statement (sealed, and
// not needed for that); found is false when the user has made none.
func (s *Service) LatestDeclaration(ctx context.Context, caseID, userID string) (d Declaration, found bool, err error) {
	var rows []declarationRow
	if err := s.db.WithContext(ctx).Select("id", "assignment_id", "case_id", "user_id", "conflict", "created_at", "row_tag").
		Where("case_id = ? AND user_id = ?", caseID, userID).Order("conflict DESC, created_at DESC, id DESC").Limit(1).Find(&rows).Error; err != nil {
		return Declaration{}, false, fmt.Errorf("read declarations on case %s: %w", caseID, err)
	}
	if len(rows) == 0 {
		return Declaration{}, false, nil
	}
	r := rows[0]
	if !s.tagOK(ctx, tagDeclarations, r.ID, r.RowTag, r.tagFields()...) {
		return Declaration{}, false, nil
	}
	return Declaration{ID: r.ID, CaseID: r.CaseID, UserID: r.UserID, Conflict: r.Conflict, CreatedAt: r.CreatedAt.UTC()}, true, nil
}

// Declare records p's declaration on conflicts of interest for every active
// assignment p holds on the case. conflict:false opens content reads;
// conflict:true suspends the assignments at once. ErrNotFound if p holds no
// active assignment on the case.
func (s *Service) Declare(ctx context.Context, p Principal, caseID string, conflict bool, statement string) (Declaration, error) {
	return s.DeclareAs(ctx, p, caseID, conflict, statement, 0)
}

// DeclareAs is Declare for the declaration the audit trail records as
// event (its allowed declaration.create, appended before this call; 0 for
// none): a read of the trail between the two learns a declared conflict
// before it is stored, and that conflict must not refuse its own
// declaration (it did: 404, and the conflict undone). A conflict declared
// before still leaves nothing to declare on.
func (s *Service) DeclareAs(ctx context.Context, p Principal, caseID string, conflict bool, statement string, event int64) (Declaration, error) {
	statement = strings.TrimSpace(statement)
	if statement == "" || utf8.RuneCountInString(statement) > 4000 {
		return Declaration{}, invalid("statement", "statement_required", "statement of 1 to 4000 characters is required")
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	now := s.now().UTC()
	var decl declarationRow
	var touched []string
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The trail may hold this very declaration already (event):
		// its assignment is the one to declare on, not one it suspends.
		as, err := s.caseAssignmentsBut(tx, caseID, p.User.ID, event)
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.Status != StatusActive || !p.Has(Role(a.Role)) {
				continue
			}
			decl = declarationRow{ID: newID(now), AssignmentID: a.ID, CaseID: caseID, UserID: p.User.ID,
				Conflict: conflict, CreatedAt: now}
			if decl.Statement, err = s.sealStatement(ctx, caseID, decl.ID, statement); err != nil {
				return err
			}
			decl.RowTag = s.tag(tagDeclarations, decl.tagFields()...)
			if err := tx.Create(&decl).Error; err != nil {
				return err
			}
			if conflict {
				// Suspended for good: the assignment's tag says so, so
				// deleting the declaration does not lift it.
				tag := s.tag(tagAssignments, assignmentTagFields(a.ID, a.CaseID, a.UserID, a.Role, a.Purpose, a.GrantedBy, a.ExpiresAt, stateSuspended)...)
				if err := tx.Model(&assignmentRow{}).Where("id = ?", a.ID).Update("row_tag", tag).Error; err != nil {
					return err
				}
			}
			touched = append(touched, a.ID)
		}
		if len(touched) == 0 {
			return ErrNotFound
		}
		return s.publish(tx, noticeGrant, caseID+" "+p.User.ID)
	})
	if err != nil {
		return Declaration{}, fmt.Errorf("declare on case %s: %w", caseID, err)
	}

	k := caseUser{caseID, p.User.ID}
	if conflict {
		s.ends.conflict(k)
	}
	s.touched(k)
	s.mu.Lock()
	gs := s.grants.get(caseID, p.User.ID)
	for i := range gs {
		if slices.Contains(touched, gs[i].id) {
			if conflict {
				gs[i].suspended = true
			} else {
				gs[i].declared = true
			}
		}
	}
	s.mu.Unlock()
	s.log.InfoContext(ctx, "declaration", "case", caseID, "user", p.User.ID, "conflict", conflict)
	return Declaration{ID: decl.ID, CaseID: caseID, UserID: p.User.ID, Conflict: conflict,
		Statement: statement, CreatedAt: now}, nil
}
