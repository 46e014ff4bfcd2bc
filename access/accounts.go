package access

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"gorm.io/gorm"
)

var usernameRE = regexp.MustCompile(`^[a-z0-9._-]{3,64}$`)


// CreateOrg adds an organisation. ErrConflict if the name is taken.
func (s *Service) CreateOrg(ctx context.Context, name string, kind OrgKind) (Org, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 200 {
		return Org{}, invalid("name", "invalid_name", "must be 1 to 200 characters")
	}
	if !kind.Valid() {
		return Org{}, invalid("kind", "unknown_kind", "must be one of operator, provider, office, member_unit, supervision")
	}
	now := s.now().UTC()
	row := orgRow{ID: newID(now), Name: name, Kind: string(kind), CreatedAt: now}
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

// OrgByName returns the organisation with the name.
func (s *Service) OrgByName(ctx context.Context, name string) (Org, error) {
	return s.findOrg(ctx, "name = ?", name)
}

func (s *Service) findOrg(ctx context.Context, where, arg string) (Org, error) {
	var row orgRow
	err := s.db.WithContext(ctx).Where(where, arg).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Org{}, fmt.Errorf("org %q: %w", arg, ErrNotFound)
	}
	if err != nil {
		return Org{}, fmt.Errorf("find org: %w", err)
	}
	return row.org(), nil
}

// CreateUser adds an account. The username must match [a-z0-9._-]{3,64}, the
// organisation (name or id) must exist and fit every role, and the password
// must have at least MinPasswordLen characters. ErrConflict if the username
// is taken; ErrInvalid (a *FieldError) for bad input.
func (s *Service) CreateUser(ctx context.Context, u NewUser) (User, error) {
	if !usernameRE.MatchString(u.Username) {
		return User{}, invalid("username", "invalid_username", "must be 3 to 64 of a-z, 0-9, '.', '_', '-'")
	}
	u.DisplayName = strings.TrimSpace(u.DisplayName)
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
	if strings.TrimSpace(u.Org) == "" {
		return User{}, invalid("org", "org_required", "organisation name or id is required")
	}
	org, err := s.Org(ctx, u.Org)
	if errors.Is(err, ErrNotFound) {
		org, err = s.OrgByName(ctx, u.Org)
	}
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
		Roles: joinRoles(roles), PasswordHash: hash, CreatedAt: now}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return User{}, fmt.Errorf("create user %q: %w", u.Username, ErrConflict)
		}
		return User{}, fmt.Errorf("create user: %w", err)
	}
	s.log.InfoContext(ctx, "user created", "user", row.ID, "org", org.ID, "roles", row.Roles)
	return row.user(), nil
}

// User returns the account with the id.
func (s *Service) User(ctx context.Context, id string) (User, error) {
	row, err := s.userRow(ctx, "id = ?", id)
	if err != nil {
		return User{}, err
	}
	return row.user(), nil
}

func (s *Service) userRow(ctx context.Context, where, arg string) (userRow, error) {
	var row userRow
	err := s.db.WithContext(ctx).Where(where, arg).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return row, fmt.Errorf("user: %w", ErrNotFound)
	}
	if err != nil {
		return row, fmt.Errorf("find user: %w", err)
	}
	return row, nil
}

// ListUsers returns up to limit accounts (default 50, max 500) in creation
// order after cursor, and the cursor of the next page ("" at the end).
func (s *Service) ListUsers(ctx context.Context, limit int, cursor string) ([]User, string, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	q := s.db.WithContext(ctx).Order("id").Limit(limit + 1)
	if cursor != "" {
		q = q.Where("id > ?", cursor)
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
		out[i] = r.user()
	}
	return out, next, nil
}

// DisableUser disables the account and revokes all its sessions at once.
func (s *Service) DisableUser(ctx context.Context, id string) error {
	now := s.now().UTC()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&userRow{}).Where("id = ?", id).Update("disabled", true)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return tx.Model(&sessionRow{}).Where("user_id = ? AND revoked_at IS NULL", id).
			Update("revoked_at", now).Error
	})
	if err != nil {
		return fmt.Errorf("disable user %s: %w", id, err)
	}
	s.log.InfoContext(ctx, "user disabled", "user", id)
	return nil
}
