package supervision

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

type complaintRow struct {
	ID                    string    `gorm:"primaryKey;size:32"`
	CaseID                string    `gorm:"size:64;not null;index"`
	Subject               string    `gorm:"size:64;not null;default:''"`
	Kind                  string    `gorm:"size:32;not null"`
	Description           []byte    `gorm:"not null"`                      // sealed (sealing.go)
	Evidence              string    `gorm:"size:4000;not null;default:''"` // comma-separated material ids
	Status                string    `gorm:"size:16;not null;index"`
	Outcome               string    `gorm:"size:16;not null;default:''"`
	SubjectRecused        bool      `gorm:"not null;default:false"`
	ReassignmentRequested bool      `gorm:"not null;default:false"`
	FiledBy               string    `gorm:"size:64;not null;index"`
	FiledByOrg            string    `gorm:"size:64;not null"`
	FiledAt               time.Time `gorm:"not null"`
	UpdatedAt             time.Time `gorm:"not null"`
	ResolvedAt            *time.Time
	// Tag binds what is fixed at filing (case, filer, subject, evidence),
	// StateTag what each change rewrites (status, outcome, recusal, times),
	// under the vault's rows key (complainttags.go).
	Tag      []byte `gorm:"not null;default:''"`
	StateTag []byte `gorm:"not null;default:''"`

	// badFixed and badState say which tag failed when the row was checked
	// (checkComplaints): not columns.
	badFixed, badState bool `gorm:"-"`
}

// damaged says whether a checked complaint failed either tag.
func (r *complaintRow) damaged() bool { return r.badFixed || r.badState }

func (complaintRow) TableName() string { return "supervision_complaints" }

// complaintChangeRow is one status change of a complaint, with its note.
type complaintChangeRow struct {
	ID          uint      `gorm:"primaryKey"`
	ComplaintID string    `gorm:"size:32;not null;index"`
	Status      string    `gorm:"size:16;not null"`
	Note        []byte    `gorm:"not null"` // sealed
	Actions     string    `gorm:"size:200;not null;default:''"`
	By          string    `gorm:"size:64;not null"`
	At          time.Time `gorm:"not null"`
	// Tag binds the change to its id, complaint, status, actions,
	// inspector and time under the vault's rows key (complainttags.go).
	Tag []byte `gorm:"not null;default:''"`
}

func (complaintChangeRow) TableName() string { return "supervision_complaint_changes" }

type commitmentRow struct {
	ID          string    `gorm:"primaryKey;size:32"`
	CaseID      string    `gorm:"size:64;not null;index"`
	ProviderOrg string    `gorm:"size:64;not null;index"`
	OperatorOrg string    `gorm:"size:64;not null;index"`
	Kind        string    `gorm:"size:32;not null"`
	Text        []byte    `gorm:"not null"` // sealed
	CreatedBy   string    `gorm:"size:64;not null"`
	CreatedAt   time.Time `gorm:"not null"`
	// Status is what supervision found: pending, kept, breached or
	// under_investigation, with who set it, when and why.
	Status     string `gorm:"size:24;not null;default:'pending'"`
	StatusNote []byte `gorm:"not null;default:''"` // sealed
	StatusBy   string `gorm:"size:64;not null;default:''"`
	StatusAt   *time.Time
	// Version counts status changes; a change applies only to the version
	// it read, so concurrent findings cannot overwrite each other unseen.
	Version int `gorm:"not null;default:0"`
	// Tag binds the commitment's id, case and parties under the vault's
	// rows key (commitmenttags.go).
	Tag []byte `gorm:"not null;default:''"`
}

func (commitmentRow) TableName() string { return "supervision_commitments" }

// commitmentChangeRow is one finding on a commitment, kept for good: the
// commitment's own status columns hold only the latest. Born sealed, it is
// not among the legacy sealedColumns.
type commitmentChangeRow struct {
	ID           string    `gorm:"primaryKey;size:32"`
	CommitmentID string    `gorm:"size:32;not null;uniqueIndex:idx_commitment_change_version"`
	Version      int       `gorm:"not null;uniqueIndex:idx_commitment_change_version"` // the commitment's version after it
	Status       string    `gorm:"size:24;not null"`
	Note         []byte    `gorm:"not null"` // sealed
	By           string    `gorm:"size:64;not null"`
	At           time.Time `gorm:"not null"`
	// Tag binds the finding to its commitment, version, status, inspector
	// and time under the vault's rows key (commitmenttags.go).
	Tag []byte `gorm:"not null;default:''"`
}

func (commitmentChangeRow) TableName() string { return "supervision_commitment_changes" }

// urgeRow records that the operator urged the provider to keep a
// commitment (Art. 18).
type urgeRow struct {
	ID           string    `gorm:"primaryKey;size:32"`
	CommitmentID string    `gorm:"size:32;not null;index"`
	Note         []byte    `gorm:"not null"` // sealed
	By           string    `gorm:"size:64;not null"`
	ByOrg        string    `gorm:"size:64;not null"`
	At           time.Time `gorm:"not null"`
	// Tag binds the urge to its commitment, author and time under the
	// vault's rows key (commitmenttags.go).
	Tag []byte `gorm:"not null;default:''"`
}

func (urgeRow) TableName() string { return "supervision_commitment_urges" }

// reportRow is a report from the public. It holds nothing about the
// reporter: no address, no agent, only the receipt's argon2id hash.
type reportRow struct {
	ID             string    `gorm:"primaryKey;size:32"`
	ReceiptHash    string    `gorm:"size:200;not null"`
	SubjectOrg     string    `gorm:"size:64;not null;default:''"`
	Commitment     string    `gorm:"size:32;not null;default:''"`
	Description    []byte    `gorm:"not null"` // sealed
	Status         string    `gorm:"size:16;not null;index"`
	Outcome        []byte    `gorm:"not null"` // sealed; empty until closed
	LinkProvider   string    `gorm:"size:64;not null;default:''"`
	LinkCommitment string    `gorm:"size:32;not null;default:''"`
	LinkCase       string    `gorm:"size:64;not null;default:''"`
	CreatedAt      time.Time `gorm:"not null"`
	UpdatedAt      time.Time `gorm:"not null"`
	// Tag binds the report's links, what its reporter named and its
	// status under the vault's rows key (reporttags.go).
	Tag []byte `gorm:"not null;default:''"`
}

func (reportRow) TableName() string { return "supervision_reports" }

type reportMessageRow struct {
	ID        string    `gorm:"primaryKey;size:32"`
	ReportID  string    `gorm:"size:32;not null;index"`
	From      string    `gorm:"column:sender;size:16;not null"` // "reporter" or "inspector"
	Author    string    `gorm:"size:64;not null;default:''"`    // inspector's user id; "" for the reporter
	Text      []byte    `gorm:"not null"`                       // sealed
	CreatedAt time.Time `gorm:"not null"`
}

func (reportMessageRow) TableName() string { return "supervision_report_messages" }

type attachmentRow struct {
	ID          string    `gorm:"primaryKey;size:32"`
	ReportID    string    `gorm:"size:32;not null;index"`
	Filename    []byte    `gorm:"not null"` // sealed
	ContentType string    `gorm:"size:255;not null"`
	Size        int64     `gorm:"not null"`
	SHA256      string    `gorm:"size:64;not null"`
	BlobID      string    `gorm:"size:64;not null"`
	Header      []byte    `gorm:"not null"`
	CreatedAt   time.Time `gorm:"not null"`
}

func (attachmentRow) TableName() string { return "supervision_report_attachments" }

// keyRow is the supervision key, wrapped to the master key like a case key.
type keyRow struct {
	ID        string    `gorm:"primaryKey;size:16"`
	Wrapped   []byte    `gorm:"not null"`
	CreatedAt time.Time `gorm:"not null"`
	// Master and Escrow name what Wrapped is wrapped to (vault/keys.go).
	Master string `gorm:"size:16;not null;default:''"`
	Escrow string `gorm:"size:16;not null;default:''"`
	// Tag binds the key to its row (vault/rowtags.go): a key copied here
	// from another table's row is refused.
	Tag []byte `gorm:"not null;default:''"`
}

func (keyRow) TableName() string { return "supervision_keys" }

var migrations = []sqldb.Step{
	{Version: 1, Name: "complaints, commitments, reports, supervision key", Up: func(tx *gorm.DB, _ string) error {
		return tx.Migrator().CreateTable(&complaintRow{}, &complaintChangeRow{}, &commitmentRow{}, &urgeRow{},
			&reportRow{}, &reportMessageRow{}, &attachmentRow{}, &keyRow{})
	}},
	{Version: 2, Name: "commitment status", Up: func(tx *gorm.DB, _ string) error {
		// Step 1 creates the table from today's struct: on a new database
		// the columns are already there.
		for _, col := range []string{"Status", "StatusNote", "StatusBy", "StatusAt"} {
			if tx.Migrator().HasColumn(&commitmentRow{}, col) {
				continue
			}
			if err := tx.Migrator().AddColumn(&commitmentRow{}, col); err != nil {
				return err
			}
		}
		return nil
	}},
	{Version: 3, Name: "complaint, commitment and report texts sealed: bytes", Up: func(tx *gorm.DB, dialect string) error {
		for _, c := range sealedColumns {
			if err := sqldb.ColumnToBytes(tx, dialect, c.table, c.column); err != nil {
				return err
			}
		}
		return nil
	}},
	{Version: 4, Name: "supervision key names its master and escrow set", Up: func(tx *gorm.DB, _ string) error {
		for _, col := range []string{"Master", "Escrow"} {
			if !tx.Migrator().HasColumn(&keyRow{}, col) {
				if err := tx.Migrator().AddColumn(&keyRow{}, col); err != nil {
					return err
				}
			}
		}
		return nil
	}},
	{Version: 5, Name: "commitment versions and finding history", Up: func(tx *gorm.DB, _ string) error {
		// Findings recorded before this step stay in the commitment's own
		// status columns; the history starts with the next one.
		if !tx.Migrator().HasColumn(&commitmentRow{}, "Version") {
			if err := tx.Migrator().AddColumn(&commitmentRow{}, "Version"); err != nil {
				return err
			}
		}
		return tx.Migrator().CreateTable(&commitmentChangeRow{})
	}},
	{Version: 6, Name: "supervision key bound to its row by a tag", Up: func(tx *gorm.DB, _ string) error {
		if tx.Migrator().HasColumn(&keyRow{}, "Tag") {
			return nil
		}
		return tx.Migrator().AddColumn(&keyRow{}, "Tag")
	}},
	// Rows already there are tagged once at start-up (TagLegacyRows).
	{Version: 7, Name: "commitments bound to their case and parties by a tag", Up: func(tx *gorm.DB, _ string) error {
		if tx.Migrator().HasColumn(&commitmentRow{}, "Tag") {
			return nil
		}
		return tx.Migrator().AddColumn(&commitmentRow{}, "Tag")
	}},
	// Rows already there are tagged once at start-up (TagLegacyRows).
	{Version: 8, Name: "commitment urges and findings bound to their commitment by a tag", Up: func(tx *gorm.DB, _ string) error {
		for _, m := range []any{&urgeRow{}, &commitmentChangeRow{}} {
			if tx.Migrator().HasColumn(m, "Tag") {
				continue
			}
			if err := tx.Migrator().AddColumn(m, "Tag"); err != nil {
				return err
			}
		}
		return nil
	}},
	// Rows already there are tagged once at start-up (TagLegacyRows).
	{Version: 9, Name: "reports' links and status bound by a tag", Up: func(tx *gorm.DB, _ string) error {
		if tx.Migrator().HasColumn(&reportRow{}, "Tag") {
			return nil
		}
		return tx.Migrator().AddColumn(&reportRow{}, "Tag")
	}},
	// Rows already there are tagged once at start-up (TagLegacyComplaints).
	{Version: 10, Name: "complaints and their changes bound by tags", Up: func(tx *gorm.DB, _ string) error {
		for _, c := range []struct {
			model any
			col   string
		}{{&complaintRow{}, "Tag"}, {&complaintRow{}, "StateTag"}, {&complaintChangeRow{}, "Tag"}} {
			if tx.Migrator().HasColumn(c.model, c.col) {
				continue
			}
			if err := tx.Migrator().AddColumn(c.model, c.col); err != nil {
				return err
			}
		}
		return nil
	}},
}

// Migrate brings the supervision tables to this binary's schema version
// (component "supervision").
func Migrate(ctx context.Context, db *gorm.DB) error {
	return sqldb.Migrate(ctx, db, "supervision", migrations)
}
