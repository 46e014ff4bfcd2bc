// Package supervision is the inspectors' domain (Art. 6, 17 and 18 of the
// Cybersecurity Review Measures): complaints against reviewers, providers'
// commitments, and reports from the public.
//
// It promises:
//   - Every action on a complaint, commitment or report is audited before it
//     takes effect, and refused (ErrUnavailable) when the audit log cannot be
//     written.
//   - A complaint's evidence bundle carries each event with its inclusion
//     proof against a signed checkpoint, and VerifyEvidence checks it with the
//     checkpoint verifier key alone, trusting nothing the server says.
//   - Upholding a complaint with "recuse_subject" revokes the subject's
//     grants on the case before the answer is sent, and blocks re-assignment.
//     The resolution and the recusal are one database transaction: if the
//     recusal fails, the complaint is still under investigation and the
//     inspector resolves it again; it is never upheld without its remedy.
//   - An anonymous reporter leaves no IP address, user agent or other
//     identifying data in the database, the audit log or the server log: the
//     receipt is kept only as an argon2id hash, and throttling counts a keyed
//     hash of the client address whose key lives in memory and rotates daily.
//   - Report attachments are streamed and age-encrypted to a supervision key
//     (wrapped by the master key) that only inspectors' audited reads open.
package supervision

import (
	"context"
	"encoding/base32"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/crypt"
)

// Anonymous is the audit actor of every action taken with a receipt.
const Anonymous = "anonymous"

// Config tunes the service; zero values take the defaults.
type Config struct {
	// MaxAttachmentSize bounds one report attachment (default 100 MiB).
	MaxAttachmentSize int64
	// ReceiptFailures is how many wrong receipts one client may send per
	// FailureWindow before it is refused with 429 (default 10 per hour).
	ReceiptFailures int
	FailureWindow   time.Duration
	// ReportsPerWindow bounds new reports per client per FailureWindow
	// (default 20); every attempt counts.
	ReportsPerWindow int
	// MaxAttachmentsPerReport and MaxReportBytes bound what one receipt
	// can attach: files (default 20) and their bytes together (default
	// 500 MiB). MaxReporterMessages bounds its messages (default 100).
	// Beyond them the desk answers 422 attachment_limit or message_limit.
	MaxAttachmentsPerReport int
	MaxReportBytes          int64
	MaxReporterMessages     int
	Logger                  *slog.Logger
	Registerer              prometheus.Registerer
	// Hasher hashes receipts (default access.DefaultArgon2id).
	Hasher access.PasswordHasher
	Now    func() time.Time
	// Keyring wraps and opens the supervision key (default: a keyring of
	// its own over db and the master given to New).
	Keyring *vault.Keyring
}

// Service is safe for concurrent use.
type Service struct {
	db       *gorm.DB
	vault    *vault.Service
	access   *access.Service
	audit    *audit.Log
	keys     *vault.Keyring
	blobs    blob.Store
	cfg      Config
	log      *slog.Logger
	throttle *throttle
	failures prometheus.Counter

	keyMu sync.Mutex
	key   *crypt.CaseKey

	// commitmentMu serialises findings on commitments (SetCommitmentStatus).
	commitmentMu sync.Mutex
}

// New wires the service. The database must be migrated (Migrate).
func New(db *gorm.DB, v *vault.Service, acc *access.Service, log *audit.Log, master *crypt.Master, blobs blob.Store, cfg Config) (*Service, error) {
	if cfg.MaxAttachmentSize <= 0 {
		cfg.MaxAttachmentSize = 100 << 20
	}
	if cfg.ReceiptFailures <= 0 {
		cfg.ReceiptFailures = 10
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = time.Hour
	}
	if cfg.ReportsPerWindow <= 0 {
		cfg.ReportsPerWindow = 20
	}
	if cfg.MaxAttachmentsPerReport <= 0 {
		cfg.MaxAttachmentsPerReport = 20
	}
	if cfg.MaxReportBytes <= 0 {
		cfg.MaxReportBytes = 500 << 20
	}
	if cfg.MaxReporterMessages <= 0 {
		cfg.MaxReporterMessages = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Hasher == nil {
		cfg.Hasher = access.DefaultArgon2id
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Keyring == nil {
		cfg.Keyring = vault.NewKeyring(db, master, vault.KeyringConfig{})
	}
	s := &Service{db: db, vault: v, access: acc, audit: log, keys: cfg.Keyring, blobs: blobs, cfg: cfg, log: cfg.Logger,
		throttle: newThrottle(cfg.Now, cfg.FailureWindow)}
	v.SetEvidenceIndex(s.evidenceCited)
	s.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "crvault_report_receipt_failures_total",
		Help: "Wrong or malformed report receipts presented."})
	if cfg.Registerer != nil {
		open := func(table, closed string) func() float64 {
			return func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				var n int64
				if err := s.db.WithContext(ctx).Table(table).Where("status NOT IN ?", strings.Split(closed, ",")).Count(&n).Error; err != nil {
					return -1
				}
				return float64(n)
			}
		}
		cs := []prometheus.Collector{s.failures,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crvault_open_complaints", Help: "Complaints not yet upheld or dismissed."},
				open("supervision_complaints", "upheld,dismissed")),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crvault_open_reports", Help: "Reports from the public not yet closed."},
				open("supervision_reports", "closed")),
		}
		for _, c := range cs {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register supervision metrics: %w", err)
			}
		}
	}
	return s, nil
}

// KeyTables are the supervision service's tables of keys wrapped to the
// master, for rotation (vault.Keyring.Rewrap).
func KeyTables() []vault.KeyTable {
	return []vault.KeyTable{{Table: "supervision_keys", IDColumn: "id", Kind: "supervision", Vital: true}}
}

// MaxAttachmentSize is the configured attachment limit in bytes.
func (s *Service) MaxAttachmentSize() int64 { return s.cfg.MaxAttachmentSize }

// record appends one audit event; a failure refuses the request.
func (s *Service) record(ctx context.Context, e audit.Event) error {
	_, err := s.recordSeq(ctx, e)
	return err
}

// recordSeq is record, answering the event's number in the log.
func (s *Service) recordSeq(ctx context.Context, e audit.Event) (int64, error) {
	got, err := s.audit.Append(ctx, e)
	if err != nil {
		s.log.ErrorContext(ctx, "audit append failed", "action", e.Action, "request_id", e.RequestID, "err", err)
		return 0, &vault.Error{Kind: vault.ErrUnavailable, Code: "audit_unavailable", Detail: "the audit log cannot be written; the request was refused"}
	}
	return got.Seq, nil
}

// event builds an audit event for an authenticated caller.
func event(a vault.Actor, action string, outcome audit.Outcome, caseID, resource, detail string) audit.Event {
	return audit.Event{Actor: a.P.User.ID, ActorOrg: a.P.User.OrgID, Action: action, Outcome: outcome, CaseID: caseID,
		Resource: resource, IP: a.IP, RequestID: a.RequestID, Detail: detail}
}

// anonEvent builds an audit event for a reporter: no IP, no user agent,
// nothing but the request id the server made or the client chose.
func anonEvent(requestID, action string, outcome audit.Outcome, resource, detail string) audit.Event {
	return audit.Event{Actor: Anonymous, Action: action, Outcome: outcome, Resource: resource, RequestID: requestID, Detail: detail}
}

// deny audits a refusal and returns err.
func (s *Service) deny(ctx context.Context, e audit.Event, err *vault.Error) error {
	e.Outcome = audit.Denied
	e.Detail = err.Code
	if rerr := s.record(ctx, e); rerr != nil {
		return rerr
	}
	return err
}

func notFound(what string) *vault.Error {
	return &vault.Error{Kind: vault.ErrNotFound, Code: "not_found", Detail: "no such " + what}
}

func forbidden(detail string) *vault.Error {
	return &vault.Error{Kind: vault.ErrForbidden, Code: "forbidden", Detail: detail}
}

func invalid(field, code, detail string) *vault.Error {
	return &vault.Error{Kind: vault.ErrInvalid, Code: code, Detail: detail, Field: field}
}

func conflict(code, detail string, allowed ...string) *vault.Error {
	return &vault.Error{Kind: vault.ErrConflict, Code: code, Detail: detail, Allowed: allowed}
}

// idEncoding spells receipt secrets in the same alphabet as ids.
var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// newID is the vault's id scheme: opaque, sorting by creation for cursors.
func newID() string { return vault.NewID() }

// validID rejects ids this package could not have issued, before any query.
func validID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for _, r := range id {
		if !strings.ContainsRune("0123456789abcdefghjkmnpqrstvwxyz", r) {
			return false
		}
	}
	return true
}

// Page is one page of a list.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
	// Counts by status of everything the filters (other than status) match.
	Counts map[string]int64 `json:"counts,omitempty"`
}

func pageLimit(limit int) int {
	if limit <= 0 {
		return 50
	}
	if limit > 500 {
		return 500
	}
	return limit
}

// listed is one record a list returned: its id and its case ("" for none).
type listed struct{ caseID, id string }

// maxListDetail bounds the ids one list event carries, under the audit
// log's bound on a field (2048 bytes): about 75 ids of 26 characters.
const maxListDetail = 2000

// recordList audits a list read before its page leaves: who read which
// confidential records, not only that a list was asked for. The ids go in
// the detail ("ids=a,b,..."), one event per case they are on (with its
// case id, so that the case's trail names them), split where a case's ids
// would outgrow maxListDetail. A page is bounded by its limit (at most
// 500), and so is the number of events. A page with nothing on it is one
// event with no ids; base gives every event its action, caller and, for
// such a page, case.
func (s *Service) recordList(ctx context.Context, base audit.Event, items []listed) error {
	if len(items) == 0 {
		return s.record(ctx, base)
	}
	var evs []audit.Event
	open := map[string]int{} // case id -> index in evs of its event being filled
	for _, it := range items {
		i, ok := open[it.caseID]
		if ok && len(evs[i].Detail)+1+len(it.id) > maxListDetail {
			ok = false
		}
		if !ok {
			e := base
			e.CaseID, e.Detail = it.caseID, "ids="+it.id
			evs = append(evs, e)
			open[it.caseID] = len(evs) - 1
			continue
		}
		evs[i].Detail += "," + it.id
	}
	if _, err := s.audit.AppendAll(ctx, evs); err != nil {
		s.log.ErrorContext(ctx, "audit append failed", "action", base.Action, "request_id", base.RequestID, "events", len(evs), "err", err)
		return &vault.Error{Kind: vault.ErrUnavailable, Code: "audit_unavailable", Detail: "the audit log cannot be written; the request was refused"}
	}
	return nil
}
