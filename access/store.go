package access

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

// Table rows. They stay inside this package; other packages see domain types.

type orgRow struct {
	ID   string `gorm:"primaryKey;size:32"`
	Name string `gorm:"size:200;not null;uniqueIndex"`
	// NameKey is keyDigest(nameKey(Name)), unique, so that two names
	// people read as one cannot both be added, even at the same instant.
	// It is NULL only for an organisation added before keys were stored
	// whose key an earlier one already held (see migration 6).
	NameKey   *string   `gorm:"size:64;uniqueIndex"`
	Kind      string    `gorm:"size:32;not null"`
	CreatedAt time.Time `gorm:"not null"`
	// RowTag: see rowtags.go (this and every row tag below).
	RowTag []byte `gorm:"column:row_tag"`
}

func (orgRow) TableName() string { return "access_orgs" }

type userRow struct {
	ID           string    `gorm:"primaryKey;size:32"`
	Username     string    `gorm:"size:64;not null;uniqueIndex"`
	DisplayName  string    `gorm:"size:200;not null"`
	OrgID        string    `gorm:"size:32;not null;index"`
	Roles        string    `gorm:"size:200;not null"` // comma-separated
	PasswordHash string    `gorm:"size:255;not null"` // PHC string
	Disabled     bool      `gorm:"not null"`
	CreatedAt    time.Time `gorm:"not null"`

	// Separation of duties: an account a sysadmin creates with a role that
	// reaches content stays pending_approval until a second person approves.
	Status     string     `gorm:"size:32;not null;default:active"`
	CreatedBy  string     `gorm:"size:32;not null;default:''"` // "" for the command line
	ApprovedBy string     `gorm:"size:32;not null;default:''"`
	ApprovedAt *time.Time `gorm:""`

	// TOTP (RFC 6238). Secrets are sealed (Options.Sealer), never plain.
	TOTPSecret   []byte `gorm:"column:totp_secret"`                       // confirmed secret; nil: not enrolled
	TOTPPending  []byte `gorm:"column:totp_pending"`                      // secret awaiting its first code
	TOTPLastStep int64  `gorm:"column:totp_last_step;not null;default:0"` // newest step used: no replay

	RowTag []byte `gorm:"column:row_tag"`
}

func (userRow) TableName() string { return "access_users" }

type sessionRow struct {
	ID          string     `gorm:"primaryKey;size:32"`
	TokenHash   string     `gorm:"size:64;not null;uniqueIndex"` // hex SHA-256 of the token
	UserID      string     `gorm:"size:32;not null;index"`
	CreatedAt   time.Time  `gorm:"not null"`
	LastSeenAt  time.Time  `gorm:"not null"`
	AbsoluteEnd time.Time  `gorm:"not null"`
	RevokedAt   *time.Time `gorm:""`
	// SecondFactor names a second factor proven outside this service for
	// the session ("amr": the identity provider's, trusted by
	// configuration); "" when the account's own TOTP is what counts.
	SecondFactor string `gorm:"size:32;not null;default:''"`
	// RowTag is NULL once the session is revoked: a revoked session's row
	// never checks again, whatever is done to revoked_at.
	RowTag []byte `gorm:"column:row_tag"`
}

func (sessionRow) TableName() string { return "access_sessions" }

// assignmentRow is immutable once written but for its tag; its status is
// derived from revocation rows, declarations and the expiry. The tag also
// covers whether it was revoked or suspended (rowtags.go), so removing the
// row that says so grants nothing.
type assignmentRow struct {
	ID        string     `gorm:"primaryKey;size:32"`
	CaseID    string     `gorm:"size:64;not null;index:idx_access_assign_case_user"`
	UserID    string     `gorm:"size:32;not null;index:idx_access_assign_case_user"`
	Role      string     `gorm:"size:32;not null"`
	Purpose   string     `gorm:"size:1000;not null"`
	GrantedBy string     `gorm:"size:32;not null"`
	GrantedAt time.Time  `gorm:"not null"`
	ExpiresAt *time.Time `gorm:""`
	RowTag    []byte     `gorm:"column:row_tag"`
}

func (assignmentRow) TableName() string { return "access_assignments" }

type revocationRow struct {
	AssignmentID string    `gorm:"primaryKey;size:32"`
	RevokedBy    string    `gorm:"size:32;not null"`
	RevokedAt    time.Time `gorm:"not null"`
	Reason       string    `gorm:"size:1000;not null"`
}

func (revocationRow) TableName() string { return "access_assignment_revocations" }

type declarationRow struct {
	ID           string    `gorm:"primaryKey;size:32"`
	AssignmentID string    `gorm:"size:32;not null;index"`
	CaseID       string    `gorm:"size:64;not null;index"`
	UserID       string    `gorm:"size:32;not null"`
	Conflict     bool      `gorm:"not null"`
	Statement    []byte    `gorm:"not null"` // sealed with the case key (Options.Sealer)
	CreatedAt    time.Time `gorm:"not null"`
	RowTag       []byte    `gorm:"column:row_tag"`
}

func (declarationRow) TableName() string { return "access_declarations" }

type recusalRow struct {
	CaseID    string    `gorm:"primaryKey;size:64"`
	UserID    string    `gorm:"primaryKey;size:32"`
	Reason    string    `gorm:"size:1000;not null"`
	CreatedAt time.Time `gorm:"not null"`
}

func (recusalRow) TableName() string { return "access_recusals" }

// recoveryCodeRow is one TOTP recovery code: only its SHA-256 (salted with
// the user id) is stored, and it works once.
type recoveryCodeRow struct {
	UserID string     `gorm:"primaryKey;size:32"`
	Hash   string     `gorm:"primaryKey;size:64"`
	UsedAt *time.Time `gorm:""`
	// RowTag is cleared when the code is used, like a revoked session's.
	RowTag []byte `gorm:"column:row_tag"`
}

func (recoveryCodeRow) TableName() string { return "access_recovery_codes" }

// throttleRow counts failed logins for one key: a (username, client) pair
// ("p:...") or a username across every client ("u:..."). It lives in the
// database so that every instance sharing it throttles alike.
type throttleRow struct {
	Key          string     `gorm:"primaryKey;size:200"`
	Fails        int        `gorm:"not null"`
	WindowStart  time.Time  `gorm:"not null"` // first failure of the current count
	BlockedUntil time.Time  `gorm:"not null"` // pair backoff: no attempt before this
	KnownAt      *time.Time `gorm:""`         // pair: last successful login from this client
	UpdatedAt    time.Time  `gorm:"not null;index"`
}

func (throttleRow) TableName() string { return "access_login_throttle" }

var migrations = []sqldb.Step{
	{Version: 1, Name: "accounts, sessions, assignments, declarations, recusals", Up: func(tx *gorm.DB, _ string) error {
		return tx.AutoMigrate(&orgRow{}, &userRow{}, &sessionRow{}, &assignmentRow{},
			&revocationRow{}, &declarationRow{}, &recusalRow{})
	}},
	{Version: 2, Name: "account approval, TOTP, recovery codes, shared login throttle", Up: func(tx *gorm.DB, _ string) error {
		return tx.AutoMigrate(&userRow{}, &recoveryCodeRow{}, &throttleRow{})
	}},
	{Version: 3, Name: "declaration statements sealed: bytes", Up: func(tx *gorm.DB, dialect string) error {
		return sqldb.ColumnToBytes(tx, dialect, "access_declarations", "statement")
	}},
	{Version: 4, Name: "single sign-on: identities, sign-in states, TOTP tickets, second factor of sessions", Up: func(tx *gorm.DB, _ string) error {
		if !tx.Migrator().HasColumn(&sessionRow{}, "SecondFactor") {
			if err := tx.Migrator().AddColumn(&sessionRow{}, "SecondFactor"); err != nil {
				return err
			}
		}
		return tx.Migrator().CreateTable(&oidcIdentityRow{}, &oidcStateRow{}, &oidcTicketRow{})
	}},
	// AssignmentsPage reads a case's assignments in id order.
	{Version: 5, Name: "assignments by case in id order, for paging", Up: func(tx *gorm.DB, _ string) error {
		return tx.Exec("CREATE INDEX idx_access_assign_case_paging ON access_assignments (case_id, id)").Error
	}},
	{Version: 6, Name: "organisation names unique as people read them (name_key)", Up: migrateOrgNameKeys},
	{Version: 7, Name: "row tags on the rows that decide access", Up: migrateRowTags},
}

// migrateOrgNameKeys stores every organisation's name key under a unique
// index. Names that were added before they were compared this way may
// already share a key: the oldest keeps it, the others keep NULL (a unique
// index allows many) and are still found by their exact names, and by
// orgsByKey, which reads the NULL rows' names.
func migrateOrgNameKeys(tx *gorm.DB, _ string) error {
	m := tx.Migrator()
	if !m.HasColumn(&orgRow{}, "NameKey") {
		if err := m.AddColumn(&orgRow{}, "NameKey"); err != nil {
			return err
		}
	}
	var rows []orgRow
	if err := tx.Select("id", "name").Order("created_at, id").Find(&rows).Error; err != nil {
		return err
	}
	taken := map[string]bool{}
	for _, r := range rows {
		key := keyDigest(nameKey(r.Name))
		if taken[key] {
			continue
		}
		taken[key] = true
		if err := tx.Model(&orgRow{}).Where("id = ?", r.ID).Update("name_key", key).Error; err != nil {
			return err
		}
	}
	if !m.HasIndex(&orgRow{}, "NameKey") {
		return m.CreateIndex(&orgRow{}, "NameKey")
	}
	return nil
}

// Migrate brings the access tables up to date (component "access").
func Migrate(ctx context.Context, db *gorm.DB) error {
	return sqldb.Migrate(ctx, db, "access", migrations)
}

// newID returns a 32-hex-digit opaque id that sorts roughly by creation time,
// which keeps cursor pagination in creation order.
func newID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16) // 48 bits of milliseconds first
	if _, err := rand.Read(b[6:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // rand.Read never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}

func joinRoles(rs []Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

func splitRoles(s string) []Role {
	if s == "" {
		return []Role{}
	}
	parts := strings.Split(s, ",")
	rs := make([]Role, len(parts))
	for i, p := range parts {
		rs[i] = Role(p)
	}
	return rs
}

func (r userRow) user() User {
	status := r.Status
	switch {
	case r.Disabled:
		status = UserDisabled
	case status == "":
		status = UserActive
	}
	u := User{ID: r.ID, Username: r.Username, DisplayName: r.DisplayName, OrgID: r.OrgID,
		Roles: splitRoles(r.Roles), Disabled: r.Disabled, Status: status, CreatedBy: r.CreatedBy,
		ApprovedBy: r.ApprovedBy, TOTPEnabled: r.TOTPSecret != nil, CreatedAt: r.CreatedAt.UTC()}
	if r.ApprovedAt != nil {
		t := r.ApprovedAt.UTC()
		u.ApprovedAt = &t
	}
	return u
}

// active reports whether the account may sign in at all.
func (r userRow) active() bool { return !r.Disabled && (r.Status == UserActive || r.Status == "") }

func (r orgRow) org() Org {
	return Org{ID: r.ID, Name: r.Name, Kind: OrgKind(r.Kind), CreatedAt: r.CreatedAt.UTC()}
}
