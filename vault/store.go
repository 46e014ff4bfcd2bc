package vault

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

// Rows as stored. They stay inside this package; callers see Case and Material.
type caseRow struct {
	ID          string    `gorm:"primaryKey;size:32"`
	Title       string    `gorm:"size:500;not null"`
	Product     string    `gorm:"size:500;not null"`
	OperatorOrg string    `gorm:"size:64;not null;index"`
	Status      string    `gorm:"size:32;not null;index"`
	CreatedBy   string    `gorm:"size:64;not null"`
	CreatedAt   time.Time `gorm:"not null"`
	UpdatedAt   time.Time `gorm:"not null"`
	// Revision guards concurrent transitions: an update must name the
	// revision it read, so two racing transitions cannot both succeed.
	Revision int64 `gorm:"not null;default:0"`
}

func (caseRow) TableName() string { return "cases" }

type caseProviderRow struct {
	CaseID string `gorm:"primaryKey;size:32"`
	OrgID  string `gorm:"primaryKey;size:64;index"`
}

func (caseProviderRow) TableName() string { return "case_providers" }

// caseKeyRow holds the case's age identity, wrapped to the master key.
// Deleting it crypto-shreds every material of the case.
type caseKeyRow struct {
	CaseID    string    `gorm:"primaryKey;size:32"`
	Wrapped   []byte    `gorm:"not null"`
	CreatedAt time.Time `gorm:"not null"`
}

func (caseKeyRow) TableName() string { return "case_keys" }

type materialRow struct {
	ID          string    `gorm:"primaryKey;size:32"`
	CaseID      string    `gorm:"size:32;not null;uniqueIndex:ux_material_version,priority:1;index"`
	Kind        string    `gorm:"size:32;not null;uniqueIndex:ux_material_version,priority:2"`
	Filename    string    `gorm:"size:255;not null;uniqueIndex:ux_material_version,priority:3"`
	Version     int       `gorm:"not null;uniqueIndex:ux_material_version,priority:4"`
	ContentType string    `gorm:"size:255;not null"`
	Size        int64     `gorm:"not null"`
	SHA256      string    `gorm:"column:sha256;size:64;not null"`
	BlobID      string    `gorm:"size:64;not null;uniqueIndex"`
	Header      []byte    `gorm:"not null"` // detached age header, wrapped to the case key
	UploadedBy  string    `gorm:"size:64;not null"`
	UploaderOrg string    `gorm:"size:64;not null"`
	UploadedAt  time.Time `gorm:"not null"`
}

func (materialRow) TableName() string { return "materials" }

var migrations = []sqldb.Step{
	{Version: 1, Name: "cases, providers, case keys, materials", Up: func(tx *gorm.DB, _ string) error {
		return tx.Migrator().CreateTable(&caseRow{}, &caseProviderRow{}, &caseKeyRow{}, &materialRow{})
	}},
}

// Migrate brings the vault's tables to this binary's schema version.
func Migrate(ctx context.Context, db *gorm.DB) error {
	return sqldb.Migrate(ctx, db, "vault", migrations)
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// newID returns a 26-character opaque id: 48 bits of milliseconds, so ids
// sort by creation for cursors, then 80 random bits.
func newID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // never fails since Go 1.24: it aborts the process instead
	return idEncoding.EncodeToString(b[:])
}
