package access

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

var usernameRE = regexp.MustCompile(`^[a-z0-9._-]{3,64}$`)

// reachesContent reports whether a role can reach a case's content or
// deliberations (every role but sysadmin: the inspector reads complaint
// and report evidence and the whole audit trail). An account holding one,
// created by a sysadmin, needs a second person's approval.
func reachesContent(r Role) bool { return r != RoleSysadmin }

// CleanDisplayName trims a display name and drops control and format
// characters (Unicode Cc and Cf: bidi overrides, zero-width joiners), which
// could make a name render as someone else's.
func CleanDisplayName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) || unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// nameKey is how people tell organisation names apart, and so how a typed
// name finds its organisation: the same name with full-width or half-width
// characters (华为技术（深圳）有限公司 and 华为技术(深圳)有限公司, ＡＢＣ and
// ABC, the ideographic space), other spacing or other letter case is the
// same name. Chinese company names are registered with full-width
// brackets and typed with either. Compatibility normalisation (NFKC) folds
// the widths.
func nameKey(name string) string {
	return strings.ToLower(strings.Join(strings.Fields(norm.NFKC.String(CleanDisplayName(name))), " "))
}

// keyDigest is what the database holds of a name key: compatibility
// normalisation can make a 200-character name many times longer, too long
// for a PostgreSQL index entry, and the index only needs equality.
func keyDigest(key string) string {
	d := sha256.Sum256([]byte(key))
	return hex.EncodeToString(d[:])
}

// CreateOrg adds an organisation. ErrConflict if the name is taken, also
// written another way (nameKey).
func (s *Service) CreateOrg(ctx context.Context, name string, kind OrgKind) (Org, error) {
	// An organisation's name is shown beside every reader in an access log,
	// so it must not be able to render as another's.
	name = CleanDisplayName(name)
	if name == "" || utf8.RuneCountInString(name) > 200 {
		return Org{}, invalid("name", "invalid_name", "must be 1 to 200 characters")
	}
	if !kind.Valid() {
		return Org{}, invalid("kind", "unknown_kind", "must be one of operator, provider, office, member_unit, supervision")
	}
	// This check names the organisation in the way; the unique index on
	// the key is what holds when two sysadmins add variants of one name at
	// the same instant.
	key := nameKey(name)
	digest := keyDigest(key)
	switch ids, err := s.orgsByKey(ctx, key); {
	case err != nil:
		return Org{}, err
	case len(ids) > 0:
		return Org{}, fmt.Errorf("create org %q: the name of organisation %s written another way: %w", name, ids[0], ErrConflict)
	}
	now := s.now().UTC()
	row := orgRow{ID: newID(now), Name: name, NameKey: &digest, Kind: string(kind), CreatedAt: now}
	row.RowTag = s.tag(tagOrgs, row.tagFields()...)
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return Org{}, fmt.Errorf("create org %q: %w", name, ErrConflict)
		}
		return Org{}, fmt.Errorf("create org: %w", err)
	}
	s.log.InfoContext(ctx, "org created", "org", row.ID, "kind", kind)
	return row.org(), nil
}

// Org returns the organisation with the id.
func (s *Service) Org(ctx context.Context, id string) (Org, error) {
	return s.findOrg(ctx, "id = ?", id)
}

// OrgByName returns the organisation with the name, or else the one
// organisation whose name is the same written another way (nameKey). When
// several are, it answers ErrNotFound rather than guess.
func (s *Service) OrgByName(ctx context.Context, name string) (Org, error) {
	o, err := s.findOrg(ctx, "name = ?", name)
	if !errors.Is(err, ErrNotFound) {
		return o, err
	}
	ids, kerr := s.orgsByKey(ctx, nameKey(name))
	if kerr != nil {
		return Org{}, kerr
	}
	if len(ids) != 1 {
		return Org{}, err
	}
	return s.Org(ctx, ids[0])
}

// OrgByRef returns the organisation a person or a configuration names by
// id or by name (OrgByName), the id first.
func (s *Service) OrgByRef(ctx context.Context, ref string) (Org, error) {
	org, err := s.Org(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		org, err = s.OrgByName(ctx, ref)
	}
	return org, err
}

// orgsByKey lists the organisations whose names have the key: the one that
// holds it, and any added before keys were stored that shares it (their
// key is NULL, so their names are read and keyed here). The stored key is
// only an index: it is outside the row's tag, so a database administrator
// could swap two organisations' keys and send a name typed another way to
// the other organisation. A row counts only if its name has the key; the
// caller then reads the organisation by id, which checks the name's tag, so
// the name that counted is the organisation's own.
func (s *Service) orgsByKey(ctx context.Context, key string) ([]string, error) {
	if key == "" {
		return nil, nil
	}
	rows, err := s.db.WithContext(ctx).Model(&orgRow{}).Select("id", "name", "name_key").
		Where("name_key = ? OR name_key IS NULL", keyDigest(key)).Order("created_at, id").Rows()
	if err != nil {
		return nil, fmt.Errorf("list org names: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id, name string
		var stored *string
		if err := rows.Scan(&id, &name, &stored); err != nil {
			return nil, fmt.Errorf("list org names: %w", err)
		}
		switch {
		case nameKey(name) == key:
			ids = append(ids, id)
		case stored != nil:
			// The stored key is not its name's: not vaultd's writing
			// (CreateOrg and migration 6 store the name's key).
			s.log.ErrorContext(ctx, "access: an organisation's name_key is not its name's: ignored for lookups by name",
				"table", tagOrgs, "row", id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list org names: %w", err)
	}
	return ids, nil
}

func (s *Service) findOrg(ctx context.Context, where, arg string) (Org, error) {
	var row orgRow
	// Names come from forms: one PostgreSQL cannot hold is no one's.
	err := sqldb.WhereText(s.db.WithContext(ctx), where, arg).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Org{}, fmt.Errorf("org %q: %w", arg, ErrNotFound)
	}
	if err != nil {
		return Org{}, fmt.Errorf("find org: %w", err)
	}
	// An organisation whose kind or name the database administrator set
	// is no organisation: its accounts sign in nowhere.
	if !s.tagOK(ctx, tagOrgs, row.ID, row.RowTag, row.tagFields()...) {
		return Org{}, fmt.Errorf("org %q: %w", arg, ErrNotFound)
	}
	return row.org(), nil
}

// CreateUser adds an account. The username must match [a-z0-9._-]{3,64}, the
// organisation (name or id) must exist and fit every role, sysadmin comes
// alone, and the password must pass CheckPassword. An account created by a
// sysadmin through the API (u.By set) with a role that reaches content is
// pending_approval until ApproveUser; one made on the command line is active.
// ErrConflict if the username is taken; ErrInvalid (a *FieldError) for bad
// input.
func (s *Service) CreateUser(ctx context.Context, u NewUser) (User, error) {
	if !usernameRE.MatchString(u.Username) {
		return User{}, invalid("username", "invalid_username", "must be 3 to 64 of a-z, 0-9, '.', '_', '-'")
	}
	u.DisplayName = CleanDisplayName(u.DisplayName)
	if utf8.RuneCountInString(u.DisplayName) > 200 {
		return User{}, invalid("display_name", "too_long", "at most 200 characters")
	}
	if u.DisplayName == "" {
		u.DisplayName = u.Username
	}
	if err := CheckPassword("password", u.Password); err != nil {
		return User{}, err
	}
	if len(u.Roles) == 0 {
		return User{}, invalid("roles", "roles_required", "at least one role")
	}
	roles := slices.Clone(u.Roles)
	slices.Sort(roles)
	roles = slices.Compact(roles)
	if slices.Contains(roles, RoleSysadmin) && len(roles) > 1 {
		return User{}, invalid("roles", "sysadmin_exclusive", "sysadmin combines with no other role (separation of duties)")
	}
	if strings.TrimSpace(u.Org) == "" {
		return User{}, invalid("org", "org_required", "organisation name or id is required")
	}
	org, err := s.OrgByRef(ctx, u.Org)
	if errors.Is(err, ErrNotFound) {
		return User{}, invalid("org", "unknown_org", "no such organisation")
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	for _, r := range roles {
		if !r.Valid() {
			return User{}, invalid("roles", "unknown_role", fmt.Sprintf("unknown role %q", r))
		}
		if want, ok := roleOrgKind[r]; ok && want != org.Kind {
			return User{}, invalid("roles", "role_org_mismatch",
				fmt.Sprintf("role %s needs an organisation of kind %s, not %s", r, want, org.Kind))
		}
	}
	hash, err := s.hasher.Hash(u.Password)
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	now := s.now().UTC()
	row := userRow{ID: newID(now), Username: u.Username, DisplayName: u.DisplayName, OrgID: org.ID,
		Roles: joinRoles(roles), PasswordHash: hash, CreatedAt: now, Status: UserActive}
	if u.By != nil {
		row.CreatedBy = u.By.User.ID
		if slices.ContainsFunc(roles, reachesContent) {
			row.Status = UserPendingApproval
		}
	}
	row.RowTag = s.tag(tagUsers, row.tagFields()...)
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return User{}, fmt.Errorf("create user %q: %w", u.Username, ErrConflict)
		}
		return User{}, fmt.Errorf("create user: %w", err)
	}
	s.log.InfoContext(ctx, "user created", "user", row.ID, "org", org.ID, "roles", row.Roles, "status", row.Status)
	return row.user(), nil
}

// MayApprove reports whether by may approve the pending account u: an
// office_admin may approve any; for an operator or provider account, so may
// an account of the same organisation holding the same kind of role. Nobody
// approves an account they created, or their own. It does not look at u's
// status.
func (s *Service) MayApprove(ctx context.Context, by Principal, u User) (bool, error) {
	if by.TOTPEnrolmentRequired || by.User.Disabled || by.Has(RoleSysadmin) {
		return false, nil
	}
	if by.Has(RoleOfficeAdmin) {
		return true, nil
	}
	if by.User.OrgID != u.OrgID {
		return false, nil
	}
	for _, r := range []Role{RoleOperator, RoleProvider} {
		if by.Has(r) && u.Has(r) {
			return true, nil
		}
	}
	return false, nil
}

// ApproveUser makes a pending account active. ErrNotFound if there is no
// such account; ErrSelfApproval if by created it or is it; ErrForbidden if
// by may not approve it (MayApprove); a *StateError "not_pending" if it is
// not pending.
func (s *Service) ApproveUser(ctx context.Context, by Principal, id string) (User, error) {
	row, err := s.userRow(ctx, "id = ?", id)
	if err != nil {
		return User{}, fmt.Errorf("approve user %s: %w", id, err)
	}
	u := row.user()
	if by.User.ID == row.ID || (row.CreatedBy != "" && by.User.ID == row.CreatedBy) {
		return User{}, fmt.Errorf("approve user %s: %w", id, ErrSelfApproval)
	}
	ok, err := s.MayApprove(ctx, by, u)
	if err != nil {
		return User{}, err
	}
	if !ok {
		return User{}, fmt.Errorf("approve user %s: %w", id, ErrForbidden)
	}
	if u.Status != UserPendingApproval {
		return User{}, &StateError{Code: "not_pending", Detail: "the account is not awaiting approval"}
	}
	now := s.now().UTC()
	approved := row
	approved.Status = UserActive
	res := s.db.WithContext(ctx).Model(&userRow{}).Where("id = ? AND status = ?", id, UserPendingApproval).
		Updates(map[string]any{"status": UserActive, "approved_by": by.User.ID, "approved_at": now,
			"row_tag": s.tag(tagUsers, approved.tagFields()...)})
	s.accounts.flushUser(id)
	if res.Error != nil {
		return User{}, fmt.Errorf("approve user %s: %w", id, res.Error)
	}
	if res.RowsAffected != 1 {
		return User{}, &StateError{Code: "not_pending", Detail: "the account is not awaiting approval"}
	}
	s.log.InfoContext(ctx, "user approved", "user", id, "by", by.User.ID)
	return s.User(ctx, id)
}

// User returns the account with the id.
func (s *Service) User(ctx context.Context, id string) (User, error) {
	row, err := s.userRow(ctx, "id = ?", id)
	if err != nil {
		return User{}, err
	}
	return row.user(), nil
}

// UserByUsername returns the account with the username, read as sign-in
// reads it (typedUsername): "Zhangsan " names zhangsan.
func (s *Service) UserByUsername(ctx context.Context, username string) (User, error) {
	username = typedUsername(username)
	if !usernameRE.MatchString(username) {
		return User{}, fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	row, err := s.userRow(ctx, "username = ?", username)
	if err != nil {
		return User{}, err
	}
	return row.user(), nil
}

// CachedUser is User read through Authenticate's account cache: at most
// accountCacheTTL old, and dropped at once when the account changes (on
// another instance, when its notice arrives). Reads that only show who
// someone is, or pick their pseudonym, run on every audited request and
// use it; anything that changes an account or grants access reads User.
func (s *Service) CachedUser(ctx context.Context, id string) (User, error) {
	a, err := s.account(ctx, id, s.now().UTC())
	if err != nil {
		return User{}, err
	}
	return a.user.user(), nil
}

func (s *Service) userRow(ctx context.Context, where, arg string) (userRow, error) {
	var row userRow
	err := sqldb.WhereText(s.db.WithContext(ctx), where, arg).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return row, fmt.Errorf("user: %w", ErrNotFound)
	}
	if err != nil {
		return row, fmt.Errorf("find user: %w", err)
	}
	// An account the database administrator inserted or edited (roles,
	// status, organisation, password hash) is unknown: it signs in
	// nowhere, and a session of it is refused.
	if !s.tagOK(ctx, tagUsers, row.ID, row.RowTag, row.tagFields()...) {
		return userRow{}, fmt.Errorf("user: %w", ErrNotFound)
	}
	return row, nil
}

// UserFilter narrows ListUsers.
type UserFilter struct {
	Status string // active, pending_approval, disabled; "" for all
	OrgID  string // "" for all
}

// ListUsers returns up to limit accounts (default 50, max 500) in creation
// order after cursor, and the cursor of the next page ("" at the end).
func (s *Service) ListUsers(ctx context.Context, f UserFilter, limit int, cursor string) ([]User, string, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	q := s.db.WithContext(ctx).Order("id").Limit(limit + 1)
	if cursor != "" {
		q = q.Where("id > ?", cursor)
	}
	switch f.Status {
	case "":
	case UserDisabled:
		q = q.Where("disabled = ?", true)
	case UserActive, UserPendingApproval:
		q = q.Where("disabled = ? AND status = ?", false, f.Status)
	default:
		return nil, "", invalid("status", "invalid_status", "status must be active, pending_approval or disabled")
	}
	if f.OrgID != "" {
		q = q.Where("org_id = ?", f.OrgID)
	}
	var rows []userRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[limit-1].ID
	}
	out := make([]User, len(rows))
	for i, r := range rows {
		if !s.tagOK(ctx, tagUsers, r.ID, r.RowTag, r.tagFields()...) {
			// Listed as what it is to sign-in: disabled.
			r.Disabled = true
		}
		out[i] = r.user()
	}
	return out, next, nil
}

// DisableUser disables the account and revokes all its sessions at once.
func (s *Service) DisableUser(ctx context.Context, id string) error {
	now := s.now().UTC()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row userRow
		err := tx.Where("id = ?", id).Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		// A row that did not check stays untagged: disabling it must not
		// vouch for what the database administrator wrote in it.
		var tag []byte
		if s.tagOK(ctx, tagUsers, row.ID, row.RowTag, row.tagFields()...) {
			row.Disabled = true
			tag = s.tag(tagUsers, row.tagFields()...)
		}
		res := tx.Model(&userRow{}).Where("id = ?", id).Updates(map[string]any{"disabled": true, "row_tag": tag})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if err := revokeSessions(tx, id, now); err != nil {
			return err
		}
		return s.publish(tx, noticeUser, id)
	})
	s.accounts.flushUser(id)
	if err != nil {
		return fmt.Errorf("disable user %s: %w", id, err)
	}
	s.log.InfoContext(ctx, "user disabled", "user", id)
	return nil
}

func revokeSessions(tx *gorm.DB, userID string, now time.Time) error {
	return tx.Model(&sessionRow{}).Where("user_id = ? AND revoked_at IS NULL", userID).
		Updates(revokedSession(now)).Error
}

// ChangePassword replaces p's password after checking the current one, and
// ends every session of the account, the caller's included. A wrong current
// password answers ErrBadCredentials and counts as a failed login from ip; the
// new one must pass CheckPassword and differ from the current one.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, next, ip string) error {
	row, err := s.userRow(ctx, "id = ?", p.User.ID)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	now := s.now().UTC()
	keys, release, err := s.guardAttempt(ctx, row.Username, ip, now)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	defer release()
	ok, err := s.hasher.Verify(truncate(current, maxPasswordLen), row.PasswordHash)
	if err != nil || !ok || len(current) > maxPasswordLen {
		if err := s.recordFailure(ctx, keys, now); err != nil {
			return fmt.Errorf("change password: %w", err)
		}
		return ErrBadCredentials
	}
	if err := CheckPassword("new", next); err != nil {
		return err
	}
	if next == current {
		return invalid("new", "password_unchanged", "the new password must differ from the current one")
	}
	hash, err := s.hasher.Hash(next)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		changed := row
		changed.PasswordHash = hash
		if err := tx.Model(&userRow{}).Where("id = ?", row.ID).
			Updates(map[string]any{"password_hash": hash, "row_tag": s.tag(tagUsers, changed.tagFields()...)}).Error; err != nil {
			return err
		}
		if err := revokeSessions(tx, row.ID, now); err != nil {
			return err
		}
		return s.publish(tx, noticeUser, row.ID)
	})
	s.accounts.flushUser(row.ID)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	s.log.InfoContext(ctx, "password changed; sessions ended", "user", row.ID)
	return nil
}
