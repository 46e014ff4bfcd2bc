package access

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"
)

// Row tags. Every row that decides who a caller is or what they may do
// (sessions, accounts, organisations, single sign-on links, TOTP recovery
// codes, assignments and declarations) carries a MAC over its id and its deciding columns, under a
// key the database never holds (Options.RowTagger: in vaultd, the vault key
// "rows", wrapped to the master key). A database administrator can still
// insert or edit these rows, but a row whose tag does not check is refused
// as if it did not exist, with an ERROR log line naming the table and the
// row: a session gives no caller, an account or an organisation is unknown,
// an assignment or a declaration grants nothing.
//
// What each tag covers (tagFields below) excludes what slides on its own
// (last_seen_at, totp_last_step) and what decides nothing. Rows that stop
// deciding in a way a deletion could undo carry that in their own tag: a
// revoked session's tag is cleared (a NULL tag never checks), and an
// assignment's tag names its state, revoked or suspended (by a declared
// conflict), rewritten in the transaction that revokes or suspends it; so
// deleting the revocation or the declaration makes the assignment refused,
// not active again.
//
// A tag cannot tell an old genuine row put back from the current one (a
// replay of a row as it was, tag and all): that is for the audit trail,
// where every grant, revocation and sign-in is recorded.
//
// Rows written before tags existed are tagged once by TagUntaggedRows,
// which vaultd runs at start-up and records in the audit log; after that an
// untagged row is refused like any other.

// RowTagger makes and checks row tags; vaultd's is a *crypt.CaseKey. Without
// one (Options.RowTagger nil: tests of other packages, tools that only
// read) rows are neither tagged nor checked.
type RowTagger interface {
	RowTag(table string, fields ...string) []byte
	CheckRowTag(tag []byte, table string, fields ...string) bool
	// RowTagChecker returns a checker for many rows of table, one after
	// another (a start reads a million assignments), which reuses its
	// state so that a row costs no allocation. It is for one goroutine.
	RowTagChecker(table string) RowTagChecker
}

// RowTagChecker checks rows of one table: the row's fields are appended in
// the order RowTag takes them, FieldInt(i) standing for the field
// strconv.FormatInt(i, 10), and Check says whether tag is RowTag's for
// them and begins the next row. *crypt.RowTagChecker is one.
type RowTagChecker interface {
	Field(b []byte)
	FieldString(s string)
	FieldInt(i int64)
	Check(tag []byte) bool
}

// Tagged tables; the name is part of the MAC, so a row cannot pass for
// another table's.
const (
	tagSessions     = "access_sessions"
	tagUsers        = "access_users"
	tagOrgs         = "access_orgs"
	tagIdentities   = "access_oidc_identities"
	tagAssignments  = "access_assignments"
	tagDeclarations = "access_declarations"
	tagRecovery     = "access_recovery_codes"
)

// Assignment states a tag names.
const (
	stateOpen      = ""
	stateSuspended = "suspended"
	stateRevoked   = "revoked"
)

// tagTime is a time as a tag covers it: microseconds, what PostgreSQL keeps.
// Times written into tagged columns are truncated to it first (microTime),
// so that the value read back is the value tagged.
func tagTime(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

func tagOptTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return tagTime(*t)
}

func microTime(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func tagBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func (r *sessionRow) tagFields() []string {
	return []string{r.ID, r.TokenHash, r.UserID, tagTime(r.AbsoluteEnd), r.SecondFactor}
}

// userRow's tag covers what signs in (username, password hash, whether TOTP
// is enrolled) and what it may do (organisation, roles, status, disabled).
// The TOTP secret itself is sealed to its account already; the tag only
// keeps it from being removed.
func (r *userRow) tagFields() []string {
	return []string{r.ID, r.Username, r.OrgID, r.Roles, r.PasswordHash, r.Status, tagBool(r.Disabled), tagBool(r.TOTPSecret != nil)}
}

func (r *orgRow) tagFields() []string { return []string{r.ID, r.Name, r.Kind} }

func (r *oidcIdentityRow) tagFields() []string { return []string{r.Issuer, r.Subject, r.UserID} }

// A recovery code the database administrator inserts (its hash is of a code
// he chose) must not stand in for an account's second factor.
func (r *recoveryCodeRow) tagFields() []string { return []string{r.UserID, r.Hash} }

func assignmentTagFields(id, caseID, userID, role, purpose, grantedBy string, expires *time.Time, state string) []string {
	return []string{id, caseID, userID, role, purpose, grantedBy, tagOptTime(expires), state}
}

func (r *assignmentRow) tagFields(state string) []string {
	return assignmentTagFields(r.ID, r.CaseID, r.UserID, r.Role, r.Purpose, r.GrantedBy, r.ExpiresAt, state)
}

func declarationTagFields(id, assignmentID, caseID, userID string, conflict bool) []string {
	return []string{id, assignmentID, caseID, userID, tagBool(conflict)}
}

func (r *declarationRow) tagFields() []string {
	return declarationTagFields(r.ID, r.AssignmentID, r.CaseID, r.UserID, r.Conflict)
}

// assignmentState is the state an assignment's tag names, from its
// revocation and its (checked) conflict declarations.
func assignmentState(revoked, suspended bool) string {
	switch {
	case revoked:
		return stateRevoked
	case suspended:
		return stateSuspended
	}
	return stateOpen
}

// tag is the tag of a row of table, nil without a RowTagger.
func (s *Service) tag(table string, fields ...string) []byte {
	if s.tags == nil {
		return nil
	}
	return s.tags.RowTag(table, fields...)
}

// tagOK checks a row's tag; a row that fails is logged loudly, and the
// caller refuses it as if it did not exist.
func (s *Service) tagOK(ctx context.Context, table, id string, tag []byte, fields ...string) bool {
	if s.tags == nil || s.tags.CheckRowTag(tag, table, fields...) {
		return true
	}
	s.tagRefused(ctx, table, id)
	return false
}

func (s *Service) tagRefused(ctx context.Context, table, id string) {
	s.rowTagRefusals.WithLabelValues(table).Inc()
	s.log.ErrorContext(ctx, "access: row tag does not check: the row was written or changed outside vaultd and is refused as if absent",
		"table", table, "row", id)
}

// RowTagCounts are what TagUntaggedRows tagged, per table.
type RowTagCounts struct {
	Orgs, Users, Identities, Sessions, Assignments, Declarations, RecoveryCodes int
}

// Total is the number of rows tagged.
func (c RowTagCounts) Total() int {
	return c.Orgs + c.Users + c.Identities + c.Sessions + c.Assignments + c.Declarations + c.RecoveryCodes
}

func (c RowTagCounts) String() string {
	return fmt.Sprintf("orgs=%d users=%d identities=%d sessions=%d assignments=%d declarations=%d recovery_codes=%d",
		c.Orgs, c.Users, c.Identities, c.Sessions, c.Assignments, c.Declarations, c.RecoveryCodes)
}

// TagUntaggedRows tags every row written before row tags existed, as it
// stands, in one transaction: unrevoked sessions, accounts, organisations,
// single sign-on links, assignments (with their state), declarations and
// unused recovery codes.
// It trusts the rows it tags, so it must run once only, at the upgrade:
// vaultd records it in the audit log and never runs it again once that
// record exists (a database administrator who blanks tags and restarts
// must not get his rows tagged). Run it before New, which refuses untagged
// rows.
func TagUntaggedRows(ctx context.Context, db *gorm.DB, tags RowTagger) (RowTagCounts, error) {
	var c RowTagCounts
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var orgs []orgRow
		if err := tx.Select("id", "name", "kind").Where("row_tag IS NULL").Find(&orgs).Error; err != nil {
			return err
		}
		for _, r := range orgs {
			if err := tx.Model(&orgRow{}).Where("id = ?", r.ID).Update("row_tag", tags.RowTag(tagOrgs, r.tagFields()...)).Error; err != nil {
				return err
			}
		}
		c.Orgs = len(orgs)

		var users []userRow
		if err := tx.Select("id", "username", "org_id", "roles", "password_hash", "status", "disabled", "totp_secret").
			Where("row_tag IS NULL").Find(&users).Error; err != nil {
			return err
		}
		for _, r := range users {
			if err := tx.Model(&userRow{}).Where("id = ?", r.ID).Update("row_tag", tags.RowTag(tagUsers, r.tagFields()...)).Error; err != nil {
				return err
			}
		}
		c.Users = len(users)

		var links []oidcIdentityRow
		if err := tx.Select("issuer", "subject", "user_id").Where("row_tag IS NULL").Find(&links).Error; err != nil {
			return err
		}
		for _, r := range links {
			if err := tx.Model(&oidcIdentityRow{}).Where("issuer = ? AND subject = ?", r.Issuer, r.Subject).
				Update("row_tag", tags.RowTag(tagIdentities, r.tagFields()...)).Error; err != nil {
				return err
			}
		}
		c.Identities = len(links)

		// Revoked sessions stay untagged: they are refused either way.
		var sessions []sessionRow
		if err := tx.Select("id", "token_hash", "user_id", "absolute_end", "second_factor").
			Where("row_tag IS NULL AND revoked_at IS NULL").Find(&sessions).Error; err != nil {
			return err
		}
		for _, r := range sessions {
			if err := tx.Model(&sessionRow{}).Where("id = ?", r.ID).Update("row_tag", tags.RowTag(tagSessions, r.tagFields()...)).Error; err != nil {
				return err
			}
		}
		c.Sessions = len(sessions)

		// Used recovery codes stay untagged, as revoked sessions do.
		var codes []recoveryCodeRow
		if err := tx.Select("user_id", "hash").Where("row_tag IS NULL AND used_at IS NULL").Find(&codes).Error; err != nil {
			return err
		}
		for _, r := range codes {
			if err := tx.Model(&recoveryCodeRow{}).Where("user_id = ? AND hash = ?", r.UserID, r.Hash).
				Update("row_tag", tags.RowTag(tagRecovery, r.tagFields()...)).Error; err != nil {
				return err
			}
		}
		c.RecoveryCodes = len(codes)

		var decls []declarationRow
		if err := tx.Select("id", "assignment_id", "case_id", "user_id", "conflict").Where("row_tag IS NULL").Find(&decls).Error; err != nil {
			return err
		}
		for _, r := range decls {
			if err := tx.Model(&declarationRow{}).Where("id = ?", r.ID).Update("row_tag", tags.RowTag(tagDeclarations, r.tagFields()...)).Error; err != nil {
				return err
			}
		}
		c.Declarations = len(decls)

		var as []assignmentRow
		if err := tx.Where("row_tag IS NULL").Find(&as).Error; err != nil {
			return err
		}
		for _, r := range as {
			var revoked, suspended int64
			if err := tx.Model(&revocationRow{}).Where("assignment_id = ?", r.ID).Count(&revoked).Error; err != nil {
				return err
			}
			if err := tx.Model(&declarationRow{}).Where("assignment_id = ? AND conflict = ?", r.ID, true).Count(&suspended).Error; err != nil {
				return err
			}
			tag := tags.RowTag(tagAssignments, r.tagFields(assignmentState(revoked > 0, suspended > 0))...)
			if err := tx.Model(&assignmentRow{}).Where("id = ?", r.ID).Update("row_tag", tag).Error; err != nil {
				return err
			}
		}
		c.Assignments = len(as)
		return nil
	})
	if err != nil {
		return RowTagCounts{}, fmt.Errorf("access: tag untagged rows: %w", err)
	}
	return c, nil
}

// migrateRowTags adds the row_tag columns (tables made by AutoMigrate from
// this binary's rows have them already).
func migrateRowTags(tx *gorm.DB, _ string) error {
	m := tx.Migrator()
	for _, model := range []any{&orgRow{}, &userRow{}, &sessionRow{}, &assignmentRow{}, &declarationRow{}, &oidcIdentityRow{}, &recoveryCodeRow{}} {
		if !m.HasColumn(model, "RowTag") {
			if err := m.AddColumn(model, "RowTag"); err != nil {
				return err
			}
		}
	}
	return nil
}
