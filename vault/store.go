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
	"github.com/crvault/crvault/vault/crypt"
	"github.com/crvault/crvault/vault/review"
)

// Rows as stored. They stay inside this package; callers see Case and Material.
type caseRow struct {
	ID string `gorm:"primaryKey;size:32"`
	// Title and Product are sealed with the case key (sealing.go).
	Title       []byte    `gorm:"not null"`
	Product     []byte    `gorm:"not null"`
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
	ListingVenue          []byte `gorm:"not null;default:''"` // listing_abroad; sealed with the case key
	UsersWithPersonalInfo int64  `gorm:"not null;default:0"`  // listing_abroad
	Origin                string `gorm:"size:16;not null;default:'application'"`
	ProposalID            string `gorm:"size:32;not null;default:''"`
	// Legal hold (retention.go): while set, the case is never shredded.
	LegalHold  bool   `gorm:"not null;default:false"`
	HoldReason []byte `gorm:"not null;default:''"` // sealed with the case key
	HoldBy     string `gorm:"size:64;not null;default:''"`
	HoldAt     *time.Time
	// ShreddedAt: the case key was destroyed (retention.go); BlobsPurgedAt:
	// its blobs were deleted too.
	ShreddedAt    *time.Time
	BlobsPurgedAt *time.Time
	// The running clock's due date, stored so the deadlines list and the
	// sweeper read an index instead of replaying every history
	// (workflow_due.go): DueOn is NULL when no clock runs, DueBasis names
	// the calendar and rules it was derived with ("-": none needed).
	DueOn            *string `gorm:"size:10"`
	DueOnProvisional bool    `gorm:"not null;default:false"`
	DuePhase         string  `gorm:"size:32;not null;default:''"`
	DueBasis         string  `gorm:"size:64;not null;default:'-'"`
	// PartiesTag binds who the case's parties are (its operator, origin
	// and providers) under the vault's rows key (rowtags.go).
	PartiesTag []byte `gorm:"not null;default:''"`
	// StatusTag binds the case's workflow status to the number of its
	// history's last event (case_events), under the rows key
	// (rowtags.go): written by the transaction that appends the event.
	StatusTag []byte `gorm:"not null;default:''"`
	// DueTag binds the due columns above to the case and its history's
	// length under the rows key (duetags.go): written by every UPDATE that
	// writes them.
	DueTag []byte `gorm:"not null;default:''"`

	// statusRefused: StatusTag did not check when the row was read
	// (statusChecked); not a column.
	statusRefused bool
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
	// Master and Escrow name the master key and the escrow set Wrapped is
	// wrapped to ("" on rows from before they were named).
	Master string `gorm:"size:16;not null;default:''"`
	Escrow string `gorm:"size:16;not null;default:''"`
	// Tag binds the key to its case (rowtags.go): a wrapped key copied to
	// another case's row opens, but its tag names the case it came from.
	Tag []byte `gorm:"not null;default:''"`
}

func (r caseKeyRow) wrapped() crypt.Wrapped {
	return crypt.Wrapped{Data: r.Wrapped, Master: r.Master, Escrow: r.Escrow}
}

func (caseKeyRow) TableName() string { return "case_keys" }

type materialRow struct {
	ID       string `gorm:"primaryKey;size:32"`
	CaseID   string `gorm:"size:32;not null;uniqueIndex:ux_material_version,priority:1;index"`
	Kind     string `gorm:"size:32;not null;uniqueIndex:ux_material_version,priority:2"`
	Filename []byte `gorm:"not null"` // sealed with the case key
	// FilenameMAC is a keyed hash of the filename under the case key: the
	// versions of one document are found, and numbered uniquely, without
	// the database holding the name.
	FilenameMAC string    `gorm:"size:64;not null;uniqueIndex:ux_material_version,priority:3"`
	Version     int       `gorm:"not null;uniqueIndex:ux_material_version,priority:4"`
	ContentType string    `gorm:"size:255;not null"`
	Size        int64     `gorm:"not null"`
	SHA256      string    `gorm:"column:sha256;size:64;not null"`
	BlobID      string    `gorm:"size:64;not null;uniqueIndex"`
	Header      []byte    `gorm:"not null"` // detached age header, wrapped to the case key
	UploadedBy  string    `gorm:"size:64;not null"`
	UploaderOrg string    `gorm:"size:64;not null"`
	UploadedAt  time.Time `gorm:"not null"`
	// Segments is how many sealed segments a resumable upload left
	// (material_segments); 0 or 1: the material is the one blob above.
	Segments int `gorm:"not null;default:0"`
	// Tag binds the row's deciding columns (its case, kind, uploader and
	// blob) under the case key (rowtags.go).
	Tag []byte `gorm:"not null;default:''"`
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
	{Version: 4, Name: "sealed case text, filename keyed hash, consents, pseudonyms, vault keys", Up: migrateSealed},
	{Version: 5, Name: "resumable uploads: sessions, their segments, segmented materials", Up: migrateUploads},
	{Version: 6, Name: "masters named on wrapped keys, key rotations, legal holds, shredding", Up: migrateKeys},
	// Keyset pagination (lists.go) reads a case's materials in id order.
	{Version: 7, Name: "materials by case in id order, for paging", Up: func(tx *gorm.DB, _ string) error {
		return tx.Exec("CREATE INDEX idx_materials_case_paging ON materials (case_id, id)").Error
	}},
	{Version: 8, Name: "stored due dates of running clocks, indexed for the deadlines list and the sweeper", Up: migrateDue},
	{Version: 9, Name: "pseudonyms numbered per party", Up: migratePartyPseudonyms},
	// Written with the decision, cleared with its notice (workflow_notice.go).
	{Version: 10, Name: "written notices pending, for the notice sweeper", Up: func(tx *gorm.DB, _ string) error {
		return tx.Migrator().CreateTable(&pendingNoticeRow{})
	}},
	{Version: 11, Name: "one live consent per material and organisation", Up: migrateLiveConsents},
	{Version: 12, Name: "row tags binding keys and materials to their place", Up: migrateRowTags},
	{Version: 13, Name: "row tags on consents", Up: migrateConsentTags},
	{Version: 14, Name: "row tags binding upload sessions to their case", Up: migrateUploadTags},
	{Version: 15, Name: "row tags binding a case's parties", Up: migratePartiesTags},
	{Version: 16, Name: "row tags binding a proposal to its member unit and party", Up: migrateProposalTags},
	{Version: 17, Name: "row tags binding a case's status to its history", Up: migrateStatusTags},
	{Version: 18, Name: "row tags binding a case's history events", Up: migrateEventTags},
	{Version: 19, Name: "row tags binding a case's stored due dates", Up: migrateDueTags},
}

// migrateLiveConsents puts a unique index on the live consents of a
// material and organisation: two grants at the same moment both passed
// GrantConsent's check, and withdrawing one left the other in force. Live
// duplicates a race left are withdrawn first, keeping the oldest, which
// grants exactly what each of them granted.
func migrateLiveConsents(tx *gorm.DB, _ string) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := tx.Exec(`UPDATE material_consents SET revoked_at = ?, revoked_by = 'migration'
		WHERE revoked_at IS NULL AND id NOT IN
		(SELECT MIN(id) FROM material_consents WHERE revoked_at IS NULL GROUP BY material_id, org_id)`, now).Error; err != nil {
		return err
	}
	return tx.Exec("CREATE UNIQUE INDEX ux_consent_live ON material_consents (material_id, org_id) WHERE revoked_at IS NULL").Error
}

// migrateDue adds the due columns of cases and their indexes. Filling them
// needs each open case's history replayed, and so its key: the migration
// marks every open case stale (an empty due_basis) and the service derives them
// on the first deadlines read or sweep (refreshDue), as it does after a
// calendar change.
func migrateDue(tx *gorm.DB, _ string) error {
	m := tx.Migrator()
	for _, col := range []string{"DueOn", "DueOnProvisional", "DuePhase", "DueBasis"} {
		if !m.HasColumn(&caseRow{}, col) {
			if err := m.AddColumn(&caseRow{}, col); err != nil {
				return fmt.Errorf("add cases.%s: %w", col, err)
			}
		}
	}
	for _, q := range []string{
		"CREATE INDEX idx_cases_due ON cases (due_on, id) WHERE due_on IS NOT NULL",
		"CREATE INDEX idx_cases_due_basis ON cases (due_basis)",
	} {
		if err := tx.Exec(q).Error; err != nil {
			return err
		}
	}
	return tx.Model(&caseRow{}).Where("status IN ?", openStatuses).Update("due_basis", "").Error
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
	Reason     []byte    `gorm:"not null"` // sealed with the case key; empty when none
	Days       int       `gorm:"not null;default:0"`
	Agree      *bool
	// Payload is the action's structured part (edition, items, members,
	// outcome, conditions, factors, reference, measures...) as JSON, sealed
	// with the case key: one column, converted only in toEventRow and
	// fromEventRow.
	Payload []byte `gorm:"not null;default:''"`
	// Tag binds the event's columns a decision reads (its case and number,
	// action, statuses, dates, actor, days and answer) under the rows key
	// (eventtags.go), so that a database edit of the history is refused.
	Tag []byte `gorm:"not null;default:''"`
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

// pendingNoticeRow says that the decision recorded as event Seq of a case
// owes the party a written notice not yet stored. It is inserted in the
// transaction that appends the event and deleted in the one that inserts
// the notice material, so a notice is written exactly once, whether by the
// request that took the decision or, after a crash, by the notice sweeper.
// Actor, ActorOrg, Purpose and RequestID are what the notice is attributed
// to (the decision's author, or "system"; see noticeAuthor).
type pendingNoticeRow struct {
	CaseID    string    `gorm:"primaryKey;size:32"`
	Seq       int       `gorm:"primaryKey;autoIncrement:false"`
	Actor     string    `gorm:"size:64;not null"`
	ActorOrg  string    `gorm:"size:64;not null;default:''"`
	Purpose   string    `gorm:"size:1000;not null;default:''"`
	RequestID string    `gorm:"size:200;not null;default:''"`
	DecidedAt time.Time `gorm:"not null;index"`
}

func (pendingNoticeRow) TableName() string { return "pending_notices" }

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
// Art. 16). Title, Product, Reason and Reference are free text, sealed with
// the vault's proposals key (sealing.go): no case, and so no case key,
// exists yet.
type proposalRow struct {
	ID         string    `gorm:"primaryKey;size:32"`
	Edition    string    `gorm:"size:8;not null"`
	MemberOrg  string    `gorm:"size:64;not null;index"`
	PartyOrg   string    `gorm:"size:64;not null;index"`
	Subject    string    `gorm:"size:32;not null"`
	Title      []byte    `gorm:"not null"`
	Product    []byte    `gorm:"not null"`
	Reason     []byte    `gorm:"not null"`
	ProposedBy string    `gorm:"size:64;not null"`
	ProposedAt time.Time `gorm:"not null"`
	Status     string    `gorm:"size:16;not null"`
	Reference  []byte    `gorm:"not null;default:''"` // the Commission's approval
	ApprovedBy string    `gorm:"size:64;not null;default:''"`
	ApprovedAt *time.Time
	CaseID     string `gorm:"size:32;not null;default:''"`
	// Tag binds who proposed it, whom it names and, once approved, which
	// case it opened, under the vault's rows key (rowtags.go).
	Tag []byte `gorm:"not null;default:''"`
}

func (proposalRow) TableName() string { return "proposals" }

// consentRow is a providing organisation's consent that another party
// organisation of the case may see one of its materials (Art. 16). It is
// never deleted: a withdrawal sets RevokedAt, and checks read the table at
// every access, so a withdrawal takes effect at once on every instance.
type consentRow struct {
	ID         string    `gorm:"primaryKey;size:32"`
	MaterialID string    `gorm:"size:32;not null;index"`
	CaseID     string    `gorm:"size:32;not null;index"`
	OrgID      string    `gorm:"size:64;not null"` // the organisation that may see the material
	Purpose    []byte    `gorm:"not null"`         // sealed with the case key
	GrantedBy  string    `gorm:"size:64;not null"`
	GrantedAt  time.Time `gorm:"not null"`
	RevokedBy  string    `gorm:"size:64;not null;default:''"`
	RevokedAt  *time.Time
	// Tag binds the consent's deciding columns and its state (live or
	// revoked) under the case key (rowtags.go): a row inserted, edited or
	// un-revoked outside crvault gives no access.
	Tag []byte `gorm:"not null;default:''"`
}

func (consentRow) TableName() string { return "material_consents" }

// pseudonymRow is the stable name ("R3") under which a person appeared to
// the parties of one case until migration 9, numbered across all of them.
// Kept as it was: migration 9 copies its rows to partyPseudonymRow.
type pseudonymRow struct {
	CaseID    string    `gorm:"primaryKey;size:32;uniqueIndex:ux_case_pseudonym,priority:1"`
	UserID    string    `gorm:"primaryKey;size:64"`
	Pseudonym string    `gorm:"size:16;not null;uniqueIndex:ux_case_pseudonym,priority:2"`
	CreatedAt time.Time `gorm:"not null"`
}

func (pseudonymRow) TableName() string { return "case_pseudonyms" }

// partyPseudonymRow is the stable name ("R3") under which a person appears
// to one party (ViewerOrg) of one case, numbered in the order that party
// was shown them, so that a name tells a party nothing of who the others
// were shown. Only the vault maps it back, for inspectors.
type partyPseudonymRow struct {
	CaseID    string    `gorm:"primaryKey;size:32;uniqueIndex:ux_party_pseudonym,priority:1"`
	ViewerOrg string    `gorm:"primaryKey;size:64;uniqueIndex:ux_party_pseudonym,priority:2"`
	UserID    string    `gorm:"primaryKey;size:64"`
	Pseudonym string    `gorm:"size:16;not null;uniqueIndex:ux_party_pseudonym,priority:3"`
	CreatedAt time.Time `gorm:"not null"`
}

func (partyPseudonymRow) TableName() string { return "party_pseudonyms" }

// migratePartyPseudonyms gives every party of a case its own pseudonyms.
// A name already shown must not change, and which party was shown which
// name was not recorded, so each existing name is copied to every party of
// its case (the operator and each provider).
func migratePartyPseudonyms(tx *gorm.DB, _ string) error {
	if err := tx.Migrator().CreateTable(&partyPseudonymRow{}); err != nil {
		return err
	}
	return tx.Exec(`INSERT INTO party_pseudonyms (case_id, viewer_org, user_id, pseudonym, created_at)
		SELECT p.case_id, o.org, p.user_id, p.pseudonym, p.created_at FROM case_pseudonyms p
		JOIN (SELECT id AS case_id, operator_org AS org FROM cases UNION SELECT case_id, org_id FROM case_providers) o
		ON o.case_id = p.case_id`).Error
}

// vaultKeyRow is a key of the vault's own, for text that belongs to no case
// (proposals), wrapped to the master key like a case key.
type vaultKeyRow struct {
	Name      string    `gorm:"primaryKey;size:32"`
	Wrapped   []byte    `gorm:"not null"`
	CreatedAt time.Time `gorm:"not null"`
	Master    string    `gorm:"size:16;not null;default:''"`
	Escrow    string    `gorm:"size:16;not null;default:''"`
	Tag       []byte    `gorm:"not null;default:''"` // binds the key to its name (rowtags.go)
}

func (vaultKeyRow) TableName() string { return "vault_keys" }

// migrateSealed makes the case and proposal text columns hold sealed bytes,
// indexes material versions by the filename's keyed hash instead of the
// name, and adds consents, pseudonyms and the vault's own keys. Rows written before it are sealed by
// Service.SealLegacy, which needs the keys; until then each legacy material
// carries a placeholder hash unique to its row, so the new index holds.
func migrateSealed(tx *gorm.DB, dialect string) error {
	for _, c := range [][2]string{{"cases", "title"}, {"cases", "product"}, {"cases", "listing_venue"}, {"materials", "filename"},
		{"case_events", "reason"}, {"case_events", "payload"},
		{"proposals", "title"}, {"proposals", "product"}, {"proposals", "reason"}, {"proposals", "reference"}} {
		if err := sqldb.ColumnToBytes(tx, dialect, c[0], c[1]); err != nil {
			return err
		}
	}
	m := tx.Migrator()
	if !m.HasColumn(&materialRow{}, "filename_mac") {
		if err := tx.Exec("ALTER TABLE materials ADD COLUMN filename_mac varchar(64) NOT NULL DEFAULT ''").Error; err != nil {
			return err
		}
	}
	for _, q := range []string{
		"UPDATE materials SET filename_mac = 'legacy-' || id WHERE filename_mac = ''",
		"DROP INDEX IF EXISTS ux_material_version",
		"CREATE UNIQUE INDEX ux_material_version ON materials (case_id, kind, filename_mac, version)",
	} {
		if err := tx.Exec(q).Error; err != nil {
			return err
		}
	}
	for _, t := range []any{&consentRow{}, &pseudonymRow{}, &vaultKeyRow{}} {
		if !m.HasTable(t) {
			if err := m.CreateTable(t); err != nil {
				return err
			}
		}
	}
	return nil
}

// masterRow is a master key the vault has used, named by its fingerprint:
// "active" wraps new keys (one at a time), "retiring" may still be named by
// wrapped rows, "retired" is named by none and may be destroyed.
type masterRow struct {
	Fingerprint string    `gorm:"primaryKey;size:16"`
	Recipient   string    `gorm:"type:text;not null"`
	State       string    `gorm:"size:16;not null;index"`
	CreatedAt   time.Time `gorm:"not null"`
	RetiredAt   *time.Time
}

func (masterRow) TableName() string { return "vault_masters" }

// rotationRow is one master key rotation; FinishedAt is nil while rows are
// still being rewrapped, so a second run knows to continue it.
type rotationRow struct {
	ID         int64     `gorm:"primaryKey;autoIncrement"`
	FromMaster string    `gorm:"size:16;not null"`
	ToMaster   string    `gorm:"size:16;not null"`
	StartedAt  time.Time `gorm:"not null"`
	FinishedAt *time.Time
	Rewrapped  int64 `gorm:"not null;default:0"`
}

func (rotationRow) TableName() string { return "vault_key_rotations" }

// migrateKeys names the master (and escrow set) of each wrapped key, and
// adds the tables of masters and rotations and the retention columns of
// cases. Existing rows name no master; Keyring.Init names them after the
// one master that opened them.
func migrateKeys(tx *gorm.DB, _ string) error {
	m := tx.Migrator()
	for _, t := range []any{&caseKeyRow{}, &vaultKeyRow{}} {
		for _, col := range []string{"Master", "Escrow"} {
			if !m.HasColumn(t, col) {
				if err := m.AddColumn(t, col); err != nil {
					return fmt.Errorf("add %s: %w", col, err)
				}
			}
		}
	}
	for _, col := range []string{"LegalHold", "HoldReason", "HoldBy", "HoldAt", "ShreddedAt", "BlobsPurgedAt"} {
		if !m.HasColumn(&caseRow{}, col) {
			if err := m.AddColumn(&caseRow{}, col); err != nil {
				return fmt.Errorf("add cases.%s: %w", col, err)
			}
		}
	}
	for _, t := range []any{&masterRow{}, &rotationRow{}} {
		if !m.HasTable(t) {
			if err := m.CreateTable(t); err != nil {
				return err
			}
		}
	}
	return nil
}
