package vault

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/review"
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
	// Edition of the Measures governing the case, fixed at submission ("" for a draft).
	Edition               string `gorm:"size:8;not null;default:''"`
	Type                  string `gorm:"size:32;not null;default:'procurement'"`
	ListingVenue          string `gorm:"size:500;not null;default:''"` // listing_abroad
	UsersWithPersonalInfo int64  `gorm:"not null;default:0"`           // listing_abroad
	Origin                string `gorm:"size:16;not null;default:'application'"`
	ProposalID            string `gorm:"size:32;not null;default:''"`
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
	{Version: 2, Name: "review history, imported calendars, deadline flags", Up: func(tx *gorm.DB, _ string) error {
		return tx.Migrator().CreateTable(&caseEventRow{}, &calendarImportRow{}, &deadlineFlagRow{})
	}},
	{Version: 3, Name: "editions and case types, event payloads, member units, proposals", Up: migrateEditions},
}

// migrateEditions adds what the two editions of the Measures need. A case
// submitted before it records its edition by its filing date, as the
// history replays it (review.EditionOn).
func migrateEditions(tx *gorm.DB, _ string) error {
	m := tx.Migrator()
	// Steps 1 and 2 create their tables from today's structs, so on a new
	// database the columns are already there.
	for _, col := range []string{"Edition", "Type", "ListingVenue", "UsersWithPersonalInfo", "Origin", "ProposalID"} {
		if m.HasColumn(&caseRow{}, col) {
			continue
		}
		if err := m.AddColumn(&caseRow{}, col); err != nil {
			return fmt.Errorf("add cases.%s: %w", col, err)
		}
	}
	if !m.HasColumn(&caseEventRow{}, "Payload") {
		if err := m.AddColumn(&caseEventRow{}, "Payload"); err != nil {
			return fmt.Errorf("add case_events.payload: %w", err)
		}
	}
	if err := m.CreateTable(&memberUnitRow{}, &proposalRow{}); err != nil {
		return err
	}
	return tx.Exec(`UPDATE cases SET edition = CASE WHEN (SELECT MIN(on_date) FROM case_events e WHERE e.case_id = cases.id AND e.action = 'submit') < ?
		THEN '2020' ELSE '2021' END WHERE status <> 'draft'`, review.Edition2021.InForce.String()).Error
}

// caseEventRow is one entry of a case's review history (review.Event). The
// table is append-only: the primary key (case_id, seq) is what makes one of
// two racing transitions on a case fail.
type caseEventRow struct {
	CaseID     string    `gorm:"primaryKey;size:32"`
	Seq        int       `gorm:"primaryKey;autoIncrement:false"`
	Action     string    `gorm:"size:32;not null"`
	FromStatus string    `gorm:"size:32;not null"`
	ToStatus   string    `gorm:"size:32;not null"`
	OnDate     string    `gorm:"size:10;not null"` // YYYY-MM-DD in Asia/Shanghai
	At         time.Time `gorm:"not null"`
	Actor      string    `gorm:"size:64;not null"`
	Role       string    `gorm:"size:32;not null"`
	Reason     string    `gorm:"size:4000;not null;default:''"`
	Days       int       `gorm:"not null;default:0"`
	Agree      *bool
	// Payload is the action's structured part (edition, items, members,
	// outcome, conditions, factors, reference, measures...) as JSON: one
	// column, converted only in toEventRow and fromEventRow.
	Payload string `gorm:"type:text;not null;default:''"`
}

func (caseEventRow) TableName() string { return "case_events" }

// calendarImportRow is one calendar file imported at run time. The effective
// calendar is the embedded one with every import applied in id order, so a
// later file for a year replaces an earlier one (a corrected announcement).
type calendarImportRow struct {
	ID         int64     `gorm:"primaryKey;autoIncrement"`
	Year       int       `gorm:"not null;index"`
	Data       []byte    `gorm:"not null"`
	ImportedAt time.Time `gorm:"not null"`
}

func (calendarImportRow) TableName() string { return "calendar_imports" }

// deadlineFlagRow remembers that a case was flagged in a phase, so the
// deadline watcher audits each (case, phase, flag) once and retries the
// webhook until it is delivered.
type deadlineFlagRow struct {
	CaseID     string    `gorm:"primaryKey;size:32"`
	Phase      string    `gorm:"primaryKey;size:32"`
	Flag       string    `gorm:"primaryKey;size:16"`
	DueOn      string    `gorm:"size:10;not null"`
	FlaggedAt  time.Time `gorm:"not null"`
	NotifiedAt *time.Time
}

func (deadlineFlagRow) TableName() string { return "deadline_flags" }

// Migrate brings the vault's tables to this binary's schema version.
func Migrate(ctx context.Context, db *gorm.DB) error {
	return sqldb.Migrate(ctx, db, "vault", migrations)
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns a 26-character opaque id: 48 bits of milliseconds, so ids
// sort by creation for cursors, then 80 random bits.
func NewID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // never fails since Go 1.24: it aborts the process instead
	return idEncoding.EncodeToString(b[:])
}

// memberUnitRow registers an organisation as a member unit of the review
// mechanism: Code is its entry in an edition's member list ("miit"), or
// review.DepartmentMember for a CII protection department or relevant
// department the office registered.
type memberUnitRow struct {
	OrgID        string    `gorm:"primaryKey;size:64"`
	Code         string    `gorm:"size:32;not null"`
	RegisteredBy string    `gorm:"size:64;not null"`
	RegisteredAt time.Time `gorm:"not null"`
}

func (memberUnitRow) TableName() string { return "member_units" }

// proposalRow is a review proposed by a member unit (2020 Art. 15 / 2021
// Art. 16). Title, Product and Reason are free text.
type proposalRow struct {
	ID         string    `gorm:"primaryKey;size:32"`
	Edition    string    `gorm:"size:8;not null"`
	MemberOrg  string    `gorm:"size:64;not null;index"`
	PartyOrg   string    `gorm:"size:64;not null;index"`
	Subject    string    `gorm:"size:32;not null"`
	Title      string    `gorm:"size:500;not null"`
	Product    string    `gorm:"size:500;not null"`
	Reason     string    `gorm:"size:8000;not null"`
	ProposedBy string    `gorm:"size:64;not null"`
	ProposedAt time.Time `gorm:"not null"`
	Status     string    `gorm:"size:16;not null"`
	Reference  string    `gorm:"size:200;not null;default:''"` // the Commission's approval
	ApprovedBy string    `gorm:"size:64;not null;default:''"`
	ApprovedAt *time.Time
	CaseID     string `gorm:"size:32;not null;default:''"`
}

func (proposalRow) TableName() string { return "proposals" }
