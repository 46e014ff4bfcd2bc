package access

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
// where every grant, revocation and sign-in is recorded, and whose ends of
// assignments prevail over the tables (trailends.go).
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
//
// An upgraded database may hold a million assignments: each table is read
// in pages of tagBatch rows, in key order, and each page's tags are
// written by one statement, so the queries are two per page, not one or
// three per row (which took minutes).
func TagUntaggedRows(ctx context.Context, db *gorm.DB, tags RowTagger) (RowTagCounts, error) {
	return tagUntaggedRows(ctx, db, tags, tagBatch)
}

// tagBatch is how many rows TagUntaggedRows reads and tags per statement:
// three parameters a row stay well within both backends' limits (SQLite's
// 32,766, PostgreSQL's 65,535).
const tagBatch = 1000

func tagUntaggedRows(ctx context.Context, db *gorm.DB, tags RowTagger, batch int) (RowTagCounts, error) {
	var c RowTagCounts
	pg := db.Dialector.Name() == "postgres"
	trueLit := "1" // SQLite keeps booleans as integers
	if pg {
		trueLit = "true"
	}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if pg {
			// Each page's statements are the same text with other keys:
			// plan them for their keys, not once for any keys (the
			// generic plan a prepared statement may get after five runs
			// cannot tell a page's range from the whole table).
			if err := tx.Exec("SET LOCAL plan_cache_mode = force_custom_plan").Error; err != nil {
				return err
			}
		}
		for _, u := range []struct {
			n *int
			untaggedTable
		}{
			{&c.Orgs, untaggedTable{table: tagOrgs, keys: []string{"id"}, cols: "t.name, t.kind",
				tag: func(sc scanner) ([]any, []byte, error) {
					var r orgRow
					err := sc.Scan(&r.ID, &r.Name, &r.Kind)
					return []any{r.ID}, tags.RowTag(tagOrgs, r.tagFields()...), err
				}}},
			{&c.Users, untaggedTable{table: tagUsers, keys: []string{"id"}, cols: "t.username, t.org_id, t.roles, t.password_hash, t.status, t.disabled, t.totp_secret",
				tag: func(sc scanner) ([]any, []byte, error) {
					var r userRow
					err := sc.Scan(&r.ID, &r.Username, &r.OrgID, &r.Roles, &r.PasswordHash, &r.Status, &r.Disabled, &r.TOTPSecret)
					return []any{r.ID}, tags.RowTag(tagUsers, r.tagFields()...), err
				}}},
			{&c.Identities, untaggedTable{table: tagIdentities, keys: []string{"issuer", "subject"}, cols: "t.user_id",
				tag: func(sc scanner) ([]any, []byte, error) {
					var r oidcIdentityRow
					err := sc.Scan(&r.Issuer, &r.Subject, &r.UserID)
					return []any{r.Issuer, r.Subject}, tags.RowTag(tagIdentities, r.tagFields()...), err
				}}},
			// Revoked sessions stay untagged: they are refused either way.
			{&c.Sessions, untaggedTable{table: tagSessions, keys: []string{"id"}, cols: "t.token_hash, t.user_id, t.absolute_end, t.second_factor",
				where: "t.revoked_at IS NULL",
				tag: func(sc scanner) ([]any, []byte, error) {
					var r sessionRow
					err := sc.Scan(&r.ID, &r.TokenHash, &r.UserID, &r.AbsoluteEnd, &r.SecondFactor)
					return []any{r.ID}, tags.RowTag(tagSessions, r.tagFields()...), err
				}}},
			// Used recovery codes stay untagged, as revoked sessions do.
			{&c.RecoveryCodes, untaggedTable{table: tagRecovery, keys: []string{"user_id", "hash"}, where: "t.used_at IS NULL",
				tag: func(sc scanner) ([]any, []byte, error) {
					var r recoveryCodeRow
					err := sc.Scan(&r.UserID, &r.Hash)
					return []any{r.UserID, r.Hash}, tags.RowTag(tagRecovery, r.tagFields()...), err
				}}},
			{&c.Declarations, untaggedTable{table: tagDeclarations, keys: []string{"id"}, cols: "t.assignment_id, t.case_id, t.user_id, t.conflict",
				tag: func(sc scanner) ([]any, []byte, error) {
					var r declarationRow
					err := sc.Scan(&r.ID, &r.AssignmentID, &r.CaseID, &r.UserID, &r.Conflict)
					return []any{r.ID}, tags.RowTag(tagDeclarations, r.tagFields()...), err
				}}},
			// An assignment's state (revoked, suspended by a declared
			// conflict) is read with it, by the indexes on assignment_id.
			// "LIMIT 1 OFFSET 0" keeps PostgreSQL from turning an EXISTS
			// into a hashed subplan, which reads the whole revocations or
			// declarations table for every page: a million assignments
			// took 115 s, growing with the square of the table (the
			// planner cannot simplify an EXISTS with an OFFSET).
			{&c.Assignments, untaggedTable{table: tagAssignments, keys: []string{"id"},
				cols: "t.case_id, t.user_id, t.role, t.purpose, t.granted_by, t.expires_at, " +
					"EXISTS (SELECT 1 FROM access_assignment_revocations r WHERE r.assignment_id = t.id LIMIT 1 OFFSET 0), " +
					"EXISTS (SELECT 1 FROM access_declarations d WHERE d.assignment_id = t.id AND d.conflict = " + trueLit + " LIMIT 1 OFFSET 0)",
				tag: func(sc scanner) ([]any, []byte, error) {
					var r assignmentRow
					var revoked, suspended bool
					err := sc.Scan(&r.ID, &r.CaseID, &r.UserID, &r.Role, &r.Purpose, &r.GrantedBy, &r.ExpiresAt, &revoked, &suspended)
					return []any{r.ID}, tags.RowTag(tagAssignments, r.tagFields(assignmentState(revoked, suspended))...), err
				}}},
		} {
			n, err := u.tagAll(tx, pg, batch)
			if err != nil {
				return fmt.Errorf("%s: %w", u.table, err)
			}
			*u.n = n
		}
		return nil
	})
	if err != nil {
		return RowTagCounts{}, fmt.Errorf("access: tag untagged rows: %w", err)
	}
	return c, nil
}

type scanner interface{ Scan(dest ...any) error }

// untaggedTable says how TagUntaggedRows tags one table's rows.
type untaggedTable struct {
	table string   // the table, and the tag's table name
	keys  []string // its primary key's columns, which the rows are paged by
	cols  string   // what else tag reads, after the keys (the table is t)
	where string   // which untagged rows are tagged; "" for all
	// tag scans a row (keys, then cols) and returns its key and tag.
	tag func(scanner) (key []any, tag []byte, err error)
}

// tagAll tags the table's untagged rows, batch at a time, and says how
// many. It runs its statements on the transaction's connection directly:
// gorm would expand a []byte parameter written after a parenthesis into a
// list.
func (u *untaggedTable) tagAll(tx *gorm.DB, pg bool, batch int) (int, error) {
	ctx, conn := tx.Statement.Context, tx.Statement.ConnPool
	var n int // parameters so far in the statement being written
	ph := func() string {
		n++
		if pg {
			return "$" + strconv.Itoa(n)
		}
		return "?"
	}
	keys := "t." + strings.Join(u.keys, ", t.")
	// The page is chosen first, then its rows' columns read, so that the
	// assignments' EXISTS (their state) run for the page's rows only,
	// whatever plan the database picks.
	inner := "SELECT * FROM " + u.table + " t WHERE t.row_tag IS NULL"
	if u.where != "" {
		inner += " AND " + u.where
	}
	page := " ORDER BY " + keys + " LIMIT " + strconv.Itoa(batch)
	outer := func(inner string) string {
		sel := "SELECT " + keys
		if u.cols != "" {
			sel += ", " + u.cols
		}
		return sel + " FROM (" + inner + ") t ORDER BY " + keys
	}
	first := outer(inner + page)
	// A page starts after the last key of the one before (on the primary
	// key's index), not over again: a row a page's update missed is not
	// read forever.
	after := make([]string, len(u.keys))
	for i := range after {
		after[i] = ph()
	}
	next := outer(inner + " AND (" + keys + ") > (" + strings.Join(after, ", ") + ")" + page)

	// One statement per page sets each row's tag, matched by its key. The
	// page's range of keys is said as well, so that the update need read
	// no more of the table than the page.
	match := make([]string, len(u.keys))
	qualified := make([]string, len(u.keys))
	for i, k := range u.keys {
		match[i] = fmt.Sprintf("%s.%s = v.column%d", u.table, k, i+1)
		qualified[i] = u.table + "." + k
	}
	inPage := func() string {
		lo, hi := make([]string, len(u.keys)), make([]string, len(u.keys))
		for i := range lo {
			lo[i] = ph()
		}
		for i := range hi {
			hi[i] = ph()
		}
		k := "(" + strings.Join(qualified, ", ") + ")"
		return " AND " + k + " >= (" + strings.Join(lo, ", ") + ") AND " + k + " <= (" + strings.Join(hi, ", ") + ")"
	}
	// SQLite: a list of (key..., tag) values, one per row. PostgreSQL:
	// one array per column, unnested: a few parameters to plan, not three
	// thousand.
	update := func(rows int) string {
		n = 0
		var b strings.Builder
		if pg {
			cols := make([]string, len(u.keys))
			for i := range cols {
				cols[i] = ph() + "::text[]"
			}
			fmt.Fprintf(&b, "UPDATE %s SET row_tag = v.column%d FROM unnest(%s, %s::bytea[]) AS v(", u.table, len(u.keys)+1, strings.Join(cols, ", "), ph())
			for i := range len(u.keys) + 1 {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "column%d", i+1)
			}
			b.WriteString(")")
		} else {
			fmt.Fprintf(&b, "UPDATE %s SET row_tag = v.column%d FROM (VALUES ", u.table, len(u.keys)+1)
			for r := range rows {
				if r > 0 {
					b.WriteString(", ")
				}
				b.WriteString("(")
				for range u.keys {
					b.WriteString(ph() + ", ")
				}
				b.WriteString(ph() + ")")
			}
			b.WriteString(") AS v")
		}
		b.WriteString(" WHERE " + strings.Join(match, " AND ") + inPage())
		return b.String()
	}
	// updateArgs are update's parameters for a page's values (key...,
	// tag per row), then its first and last keys.
	updateArgs := func(vals []any, rows int) []any {
		w := len(u.keys) + 1
		lo, hi := vals[:len(u.keys)], vals[len(vals)-w:len(vals)-1]
		if !pg {
			return append(append(slices.Clip(vals), lo...), hi...)
		}
		args := make([]any, 0, w+2*len(u.keys))
		for c := range len(u.keys) {
			col := make([]string, rows)
			for r := range rows {
				col[r] = vals[r*w+c].(string)
			}
			args = append(args, col)
		}
		tags := make([][]byte, rows)
		for r := range rows {
			tags[r] = vals[r*w+len(u.keys)].([]byte)
		}
		return append(append(append(args, tags), lo...), hi...)
	}

	total := 0
	var last []any
	for {
		q, args := first, []any(nil)
		if last != nil {
			q, args = next, last
		}
		vals, rows, err := u.readPage(ctx, conn, q, args, batch)
		if err != nil {
			return total, err
		}
		if rows == 0 {
			return total, nil
		}
		if _, err := conn.ExecContext(ctx, update(rows), updateArgs(vals, rows)...); err != nil {
			return total, fmt.Errorf("write tags: %w", err)
		}
		total += rows
		if rows < batch {
			return total, nil
		}
		last = vals[len(vals)-len(u.keys)-1 : len(vals)-1]
	}
}

// readPage reads a page of rows and returns their keys and tags, in the
// order of the update's values, and how many rows. The rows are closed
// before the update: a PostgreSQL connection runs one statement at a time.
func (u *untaggedTable) readPage(ctx context.Context, conn gorm.ConnPool, q string, args []any, batch int) ([]any, int, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("read untagged rows: %w", err)
	}
	defer rows.Close()
	vals := make([]any, 0, batch*(len(u.keys)+1))
	n := 0
	for rows.Next() {
		key, tag, err := u.tag(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("read untagged rows: %w", err)
		}
		vals = append(append(vals, key...), tag)
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read untagged rows: %w", err)
	}
	return vals, n, nil
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
