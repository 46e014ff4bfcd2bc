// Package vault holds review cases and their materials, and is the only road
// to a material's plaintext: Service.OpenContent authorises the caller
// (access), appends the audit event (audit) and only then opens the blob and
// decrypts it. Nothing outside this package can reach a blob store or a key.
//
// Every method that touches a case appends exactly one audit event for the
// request (plus an "error" event when an authorised action then fails), and
// refuses with ErrUnavailable when the audit log cannot be written.
package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/crypt"
	"github.com/crvault/crvault/vault/review"
)

// Actor is the authenticated caller of one request, with what the audit
// event needs to say where the request came from.
type Actor struct {
	P         access.Principal
	IP        string
	RequestID string
}

// Case is a review application (Art. 5 and 7), or a review a member unit
// proposed, opened on the party's behalf (2020 Art. 15 / 2021 Art. 16).
type Case struct {
	ID          string    `json:"id"`
	Title       string    `json:"title"`
	Product     string    `json:"product"`
	OperatorOrg string    `json:"operator_org"`
	Providers   []string  `json:"providers"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
	// Edition of the Measures governing the case, fixed at submission;
	// absent for a draft.
	Edition string `json:"edition,omitempty"`
	// Type: procurement, or (2021) data_processing or listing_abroad.
	Type                  string `json:"type"`
	ListingVenue          string `json:"listing_venue,omitempty"`
	UsersWithPersonalInfo *int64 `json:"users_with_personal_info,omitempty"`
	// Origin: application, or proposal (opened after a member unit's
	// proposal, named by Proposal).
	Origin   string `json:"origin"`
	Proposal string `json:"proposal,omitempty"`
}

// NewCase is what an operator files.
type NewCase struct {
	Title     string   `json:"title"`
	Product   string   `json:"product"`
	Providers []string `json:"providers"`
	// Type defaults to procurement; data_processing and listing_abroad
	// exist from the 2021 edition.
	Type string `json:"type,omitempty"`
	// ListingVenue and UsersWithPersonalInfo are required for, and only
	// for, listing_abroad (2021 Art. 7).
	ListingVenue          string `json:"listing_venue,omitempty"`
	UsersWithPersonalInfo *int64 `json:"users_with_personal_info,omitempty"`
}

// Config tunes the service; zero values take the defaults.
type Config struct {
	MaxMaterialSize int64 // bytes of plaintext; default 10 GiB
	Logger          *slog.Logger
	// Calendar is the built-in working-day calendar; years imported into the
	// database are applied over it. Default calendar.Embedded().
	Calendar *calendar.Calendar
	// Now is the clock the workflow dates events by (default time.Now);
	// tests pass a fixed one.
	Now func() time.Time
	// WebhookURL, when set, receives a JSON POST for each deadline flag.
	WebhookURL string
	// HTTPClient posts webhooks (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// RulesEdition pins the edition of the Measures new submissions follow
	// ("2020" or "2021"); empty: the edition in force on the filing date.
	RulesEdition string
	// Keyring opens case keys; pass the one access seals declarations with
	// (default: a keyring of its own over db and master).
	Keyring *Keyring
	// UploadExpiry is how long a resumable upload session lives after its
	// last chunk (default DefaultUploadExpiry).
	UploadExpiry time.Duration
	// Retention is how long a case is kept after it ended (default
	// DefaultRetention, ten years); see retention.go.
	Retention Period
	// CiphertextCache is the memory budget, in bytes, for the ciphertext of
	// small materials read more than once (ciphercache.go): 0 takes
	// DefaultCiphertextCache, negative turns the cache off.
	CiphertextCache int64
}

// Service is the vault. It is safe for concurrent use.
type Service struct {
	db      *gorm.DB
	blobs   blob.Store
	master  *crypt.Master
	keys    *Keyring
	access  *access.Service
	audit   *audit.Log
	maxSize int64
	log     *slog.Logger
	now     func() time.Time
	cals    *Calendars
	webhook string
	client  *http.Client
	pinned  *review.Edition // nil: by filing date

	uploadExpiry time.Duration
	retention    Period
	dueTurn      chan struct{}  // one refreshDue at a time (workflow_due.go): holding its one slot
	sweepSlot    chan struct{}  // one SweepDeadlines at a time in this process (workflow_deadlines.go)
	orphans      orphanSuspects // CollectOrphans' memory between passes
	evidenceMu   sync.RWMutex
	evidence     EvidenceIndex   // complaints' evidence, set by package supervision
	materialStmt *sqldb.Prepared // materialWithCase's statement (rowscan.go)
	ciphers      *ciphertextCache
	faults       func(faultPoint) // tests only (faults.go)
	// tagRefusals counts rows refused because their row tag did not check,
	// by table (rowtags.go).
	tagRefusals *prometheus.CounterVec
	// rows is the rows key once opened (rowsKey): every case-scoped
	// request checks a parties tag, without the keyring's lock.
	rows atomic.Pointer[crypt.CaseKey]
}

// New wires the vault over its stores. The database must be migrated.
func New(db *gorm.DB, blobs blob.Store, master *crypt.Master, acc *access.Service, log *audit.Log, cfg Config) *Service {
	if cfg.MaxMaterialSize <= 0 {
		cfg.MaxMaterialSize = 10 << 30
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UploadExpiry <= 0 {
		cfg.UploadExpiry = DefaultUploadExpiry
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Keyring == nil {
		cfg.Keyring = NewKeyring(db, master, KeyringConfig{})
	}
	if cfg.Retention == (Period{}) {
		cfg.Retention = DefaultRetention
	}
	if cfg.CiphertextCache == 0 {
		cfg.CiphertextCache = DefaultCiphertextCache
	}
	// A case shredded on any instance: forget its key here too.
	acc.Subscribe(NoticeCaseKey, func(_ context.Context, caseID string) { cfg.Keyring.Forget(caseID) })
	s := &Service{dueTurn: make(chan struct{}, 1), sweepSlot: make(chan struct{}, 1), db: db, blobs: blobs, master: master, keys: cfg.Keyring, retention: cfg.Retention, access: acc, audit: log, maxSize: cfg.MaxMaterialSize, log: cfg.Logger,
		now: cfg.Now, cals: NewCalendars(db, cfg.Calendar), webhook: cfg.WebhookURL, client: cfg.HTTPClient, uploadExpiry: cfg.UploadExpiry,
		materialStmt: sqldb.NewPrepared(db, materialQuery(sqldb.Dialect(db))), ciphers: newCiphertextCache(cfg.CiphertextCache, ciphertextCacheTTL, cfg.Now),
		tagRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crvault_vault_row_tag_refusals_total",
			Help: "Vault rows refused because their row tag did not check (written or changed outside vaultd), by table."}, []string{"table"})}
	if cfg.RulesEdition != "" {
		// Validated by the configuration; an unknown one falls back to the
		// filing date rather than to a guess.
		if ed, err := review.EditionByID(cfg.RulesEdition); err == nil {
			s.pinned = ed
		}
	}
	return s
}

// Collectors are the vault's Prometheus metrics (the ciphertext cache's,
// and the rows refused for their tags), for the caller to register.
func (s *Service) Collectors() []prometheus.Collector {
	return append(s.ciphers.collectors(), s.tagRefusals)
}

// edition is the edition a submission made now follows.
func (s *Service) edition() *review.Edition {
	if s.pinned != nil {
		return s.pinned
	}
	return review.EditionOn(calendar.Today(s.now()))
}

// CurrentEdition is the edition a case submitted today follows (the pinned
// one, if any): what pages without a case of their own cite.
func (s *Service) CurrentEdition() *review.Edition { return s.edition() }

// MaxMaterialSize is the configured upload limit in bytes.
func (s *Service) MaxMaterialSize() int64 { return s.maxSize }

// Ping checks the database and the blob store, for readiness.
func (s *Service) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := s.blobs.Ping(ctx); err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	return nil
}

// record appends one audit event for the request. A failure is ErrUnavailable:
// the caller must not go on.
func (s *Service) record(ctx context.Context, a Actor, action string, outcome audit.Outcome, caseID, resource, purpose, detail string) error {
	_, err := s.recordSeq(ctx, a, action, outcome, caseID, resource, purpose, detail)
	return err
}

// recordSeq is record, answering the event's number in the log, for an
// allowed event whose failure the caller may have to undo (recordUndo).
func (s *Service) recordSeq(ctx context.Context, a Actor, action string, outcome audit.Outcome, caseID, resource, purpose, detail string) (int64, error) {
	e, err := s.audit.Append(ctx, audit.Event{
		Actor: a.P.User.ID, ActorOrg: a.P.User.OrgID, Action: action, Outcome: outcome,
		CaseID: caseID, Resource: resource, Purpose: purpose, IP: a.IP, RequestID: a.RequestID, Detail: detail,
	})
	if err != nil {
		s.log.ErrorContext(ctx, "audit append failed", "action", action, "request_id", a.RequestID, "err", err)
		return 0, &Error{Kind: ErrUnavailable, Code: "audit_unavailable", Detail: "the audit log cannot be written; the request was refused"}
	}
	return e.Seq, nil
}

// recordFailure notes that an authorised action then failed. It is best
// effort: the original error is what the caller reports.
func (s *Service) recordFailure(ctx context.Context, a Actor, action, caseID, resource string, cause error) {
	_ = s.record(context.WithoutCancel(ctx), a, action, audit.Errored, caseID, resource, "", failureCode(cause))
}

// recordUndo follows the allowed event seq, of a change that then failed,
// with an error naming it (";undoes=<seq>"): how GrantEnds tells an end
// that did not happen from one that did. Only the server writes it after
// its own allowed event; a request id is the client's to choose, and a
// refusal without the seq undoes nothing (review h30h).
func (s *Service) recordUndo(ctx context.Context, a Actor, action, caseID, resource string, seq int64, cause error) {
	_ = s.record(context.WithoutCancel(ctx), a, action, audit.Errored, caseID, resource, "",
		failureCode(cause)+UndoMark+strconv.FormatInt(seq, 10))
}

// RecordDenied audits a refusal that happened before the vault was reached
// (for example a forged token); api/ calls it so every 401 is in the log.
func (s *Service) RecordDenied(ctx context.Context, a Actor, action, resource, code string) error {
	return s.record(ctx, a, action, audit.Denied, "", resource, "", code)
}

// caseFacts loads a case row and the facts access needs, in one query:
// it runs on every case-scoped request.
func (s *Service) caseFacts(ctx context.Context, id string) (caseRow, access.CaseFacts, []string, error) {
	var row caseWithProviders
	if !validID(id) {
		return row.Case, access.CaseFacts{}, nil, gorm.ErrRecordNotFound
	}
	if err := s.db.WithContext(ctx).Table("cases").
		Select("cases.*, "+providerIDsColumn(s.db)+", "+lastSeqColumn).
		Where("cases.id = ?", id).Take(&row).Error; err != nil {
		return row.Case, access.CaseFacts{}, nil, err
	}
	return s.factsOf(ctx, row)
}

// factsOf is what caseFacts returns for a loaded row. The parties are
// those of the row's parties tag (partiesChecked): a case whose tag does
// not check has none, and its facts do not say the office opened it. Its
// status is checked against its status tag (statusChecked): a case whose
// status does not check comes back marked, for decideOn to refuse once it
// knows whether the caller may know of the case at all.
func (s *Service) factsOf(ctx context.Context, row caseWithProviders) (caseRow, access.CaseFacts, []string, error) {
	if row.Case.ShreddedAt != nil {
		// Another process shredded it: no cached key may outlive the row.
		s.keys.Forget(row.Case.ID)
	}
	c, providers, ok, err := s.partiesChecked(ctx, row.Case, row.providers())
	if err != nil {
		return c, access.CaseFacts{}, nil, fmt.Errorf("check the parties of case %s: %w", c.ID, err)
	}
	if c, err = s.statusChecked(ctx, c, row.LastSeq); err != nil {
		return c, access.CaseFacts{}, nil, fmt.Errorf("check the status of case %s: %w", c.ID, err)
	}
	return c, caseFactsOf(c, providers, ok), providers, nil
}

// caseFactsOf are the facts of a case row whose parties were checked
// (partiesChecked; trusted: they were its own).
func caseFactsOf(c caseRow, providers []string, trusted bool) access.CaseFacts {
	return access.CaseFacts{ID: c.ID, OperatorOrg: c.OperatorOrg, ProviderOrgs: providers, Status: c.Status,
		OpenedByOffice: trusted && c.Origin == review.OriginProposal}
}

// providers are the providers' organisation ids, sorted.
func (r caseWithProviders) providers() []string {
	providers := []string{}
	if r.ProviderIDs != nil && *r.ProviderIDs != "" {
		// Organisation ids never hold a comma.
		providers = strings.Split(*r.ProviderIDs, ",")
		slices.Sort(providers)
	}
	return providers
}

// providerIDsColumn selects a case's providers' organisation ids,
// comma-separated, as provider_ids (caseWithProviders), beside a query of
// cases.
func providerIDsColumn(db *gorm.DB) string {
	agg := "group_concat(org_id, ',')"
	if sqldb.Dialect(db) == sqldb.Postgres {
		agg = "string_agg(org_id, ',')"
	}
	return "(SELECT " + agg + " FROM case_providers WHERE case_providers.case_id = cases.id) AS provider_ids"
}

// caseWithProviders is a case row with its providers' organisation ids,
// comma-separated, in no particular order.
type caseWithProviders struct {
	Case        caseRow `gorm:"embedded"`
	ProviderIDs *string
	// LastSeq is the number of the case's last event (lastSeqColumn),
	// which its status tag covers.
	LastSeq int64
}

func (s *Service) providers(ctx context.Context, caseID string) ([]string, error) {
	var orgs []string
	err := s.db.WithContext(ctx).Model(&caseProviderRow{}).Where("case_id = ?", caseID).Order("org_id").Pluck("org_id", &orgs).Error
	if err != nil {
		return nil, fmt.Errorf("load providers of case %s: %w", caseID, err)
	}
	if orgs == nil {
		orgs = []string{}
	}
	return orgs, nil
}

// authorize loads the case and decides; every refusal is audited here, with
// 404 for callers with no relation to the case and 403 for the others.
func (s *Service) authorize(ctx context.Context, a Actor, caseID string, act access.Action, event, resource string) (caseRow, []string, access.Decision, error) {
	row, facts, providers, err := s.caseFacts(ctx, caseID)
	return s.decideOn(ctx, a, caseID, act, event, resource, row, facts, providers, err)
}

// RefuseHiddenCase reports whether the case is hidden from the caller:
// there is no such case, or the caller has no relation to it (404 in every
// answer about it). api asks it before answering a request it refuses on
// its form (resource: the request's method and route), so that such a
// caller hears 404, as for an absent case, and never how its request was
// read. A hidden case's refusal is recorded here, under the case, as the
// vault records any refusal on a hidden case: one event per request, which
// the inspectors find among the case's events.
func (s *Service) RefuseHiddenCase(ctx context.Context, a Actor, caseID, resource string) (bool, error) {
	row, facts, _, err := s.caseFacts(ctx, caseID)
	hidden := errors.Is(err, gorm.ErrRecordNotFound)
	if err != nil && !hidden {
		return false, fmt.Errorf("load case %s: %w", caseID, err)
	}
	if !hidden {
		// case.read is the widest relation: whoever may see the case at
		// all may learn how a request on it was malformed.
		d, err := s.access.Decide(ctx, a.P, facts, access.ActCaseRead)
		if err != nil {
			return false, fmt.Errorf("decide visibility of case %s: %w", caseID, err)
		}
		hidden = !d.Visible
	}
	if !hidden {
		return false, s.refuseDamaged(ctx, a, row, resource)
	}
	if err := s.record(ctx, a, "request.refused", audit.Denied, caseID, resource, "", "not_found"); err != nil {
		return true, err
	}
	return true, nil
}

// RefuseHiddenMaterial is RefuseHiddenCase for a route under
// /materials/{id}: the material is hidden when there is no such material,
// its case is hidden, or its kind is not the caller's to see (material).
func (s *Service) RefuseHiddenMaterial(ctx context.Context, a Actor, id, resource string) (bool, error) {
	var m materialRow
	var c caseWithProviders
	err := gorm.ErrRecordNotFound
	if validID(id) {
		m, c, err = s.materialWithCase(ctx, id)
	}
	hidden := errors.Is(err, gorm.ErrRecordNotFound)
	if err != nil && !hidden {
		return false, fmt.Errorf("load material %s: %w", id, err)
	}
	var row caseRow
	if !hidden {
		var facts access.CaseFacts
		if row, facts, _, err = s.factsOf(ctx, c); err != nil {
			return false, err
		}
		d, err := s.access.Decide(ctx, a.P, facts, access.ActCaseRead)
		if err != nil {
			return false, fmt.Errorf("decide visibility of material %s: %w", id, err)
		}
		visible := d.Visible
		if visible {
			if visible, _, err = s.visibleMaterial(ctx, a.P, m); err != nil {
				return false, err
			}
		}
		hidden = !visible
	}
	if !hidden {
		return false, s.refuseDamaged(ctx, a, row, resource)
	}
	if err := s.record(ctx, a, "request.refused", audit.Denied, m.CaseID, resource, "", "not_found"); err != nil {
		return true, err
	}
	return true, nil
}

// refuseDamaged is the answer of RefuseHiddenCase and RefuseHiddenMaterial
// to one who may know of a case whose status does not check (statusChecked):
// case_status_damaged, recorded, as decideOn answers a well-formed request
// on it. How the request was malformed would tell them less, and nothing
// about the case can be done until the row is restored.
func (s *Service) refuseDamaged(ctx context.Context, a Actor, row caseRow, resource string) error {
	if !row.statusRefused {
		return nil
	}
	if err := s.record(ctx, a, "request.refused", audit.Denied, row.ID, resource, "", "case_status_damaged"); err != nil {
		return err
	}
	return errStatusDamaged()
}

// decideOn is authorize once the case is loaded (err: how loading it failed).
func (s *Service) decideOn(ctx context.Context, a Actor, caseID string, act access.Action, event, resource string,
	row caseRow, facts access.CaseFacts, providers []string, err error) (caseRow, []string, access.Decision, error) {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		if err := s.record(ctx, a, event, audit.Denied, caseID, resource, "", "not_found"); err != nil {
			return row, nil, access.Decision{}, err
		}
		return row, nil, access.Decision{}, fail(ErrNotFound, "not_found", "no such case")
	}
	if err != nil {
		return row, nil, access.Decision{}, fmt.Errorf("load case %s: %w", caseID, err)
	}
	d, err := s.access.Decide(ctx, a.P, facts, act)
	if err != nil {
		return row, nil, d, fmt.Errorf("decide %s on case %s: %w", act, caseID, err)
	}
	if row.statusRefused && d.Visible {
		// Nothing the status decides can be trusted: who reads (a member
		// unit's reads end with the review), which step is next. Whoever
		// may know of the case is told why it stands still; the others
		// hear not_found, below, as for any case hidden from them.
		if err := s.record(ctx, a, event, audit.Denied, caseID, resource, d.Purpose, "case_status_damaged"); err != nil {
			return row, nil, d, err
		}
		return row, nil, d, errStatusDamaged()
	}
	if !d.Allowed {
		code := d.Code
		if !d.Visible {
			code = "not_found"
		}
		if code == "" {
			code = "forbidden"
		}
		if err := s.record(ctx, a, event, audit.Denied, caseID, resource, d.Purpose, code); err != nil {
			return row, nil, d, err
		}
		if !d.Visible {
			return row, nil, d, fail(ErrNotFound, "not_found", "no such case")
		}
		return row, nil, d, fail(ErrForbidden, code, forbiddenDetail(code))
	}
	return row, providers, d, nil
}

func forbiddenDetail(code string) string {
	switch code {
	case "declaration_required":
		return "declare whether you have a conflict of interest before reading this case's materials"
	case "assignment_suspended":
		return "your assignment to this case is suspended"
	case "assignment_expired":
		return "your assignment to this case has expired"
	case "case_concluded":
		return "the review of this case is over: its materials are no longer open to member units"
	}
	return "you may see this case but not do this"
}

// toCase and newCaseRow are the one pair that converts between a case row
// and a Case. The case's free text (title, product, listing venue) is
// sealed and opened here with the case key (sealing.go); a nil key (a
// crypto-shredded case) leaves it empty.
func toCase(key *crypt.CaseKey, r caseRow, providers []string) (Case, error) {
	var text [3]string
	for i, f := range []struct {
		label string
		b     []byte
	}{{labelCaseTitle(r.ID), r.Title}, {labelCaseProduct(r.ID), r.Product}, {labelCaseVenue(r.ID), r.ListingVenue}} {
		var err error
		if text[i], err = openText(key, f.label, f.b); err != nil {
			return Case{}, err
		}
	}
	c := Case{ID: r.ID, Title: text[0], Product: text[1], OperatorOrg: r.OperatorOrg, Providers: providers, Status: r.Status,
		CreatedAt: r.CreatedAt.UTC(), Edition: r.Edition, Type: r.Type, Origin: r.Origin, Proposal: r.ProposalID}
	if c.Type == "" {
		c.Type = review.TypeProcurement
	}
	if c.Origin == "" {
		c.Origin = review.OriginApplication
	}
	if c.Type == review.TypeListingAbroad {
		users := r.UsersWithPersonalInfo
		c.ListingVenue, c.UsersWithPersonalInfo = text[2], &users
	}
	return c, nil
}

func newCaseRow(key *crypt.CaseKey, c Case, createdBy string) (caseRow, error) {
	r := caseRow{ID: c.ID, OperatorOrg: c.OperatorOrg, Status: c.Status, CreatedBy: createdBy,
		CreatedAt: c.CreatedAt, UpdatedAt: c.CreatedAt, Edition: c.Edition, Type: c.Type,
		Origin: c.Origin, ProposalID: c.Proposal}
	for _, f := range []struct {
		dst   *[]byte
		label string
		v     string
	}{{&r.Title, labelCaseTitle(c.ID), c.Title}, {&r.Product, labelCaseProduct(c.ID), c.Product}, {&r.ListingVenue, labelCaseVenue(c.ID), c.ListingVenue}} {
		var err error
		if *f.dst, err = sealText(key, f.label, f.v); err != nil {
			return caseRow{}, err
		}
	}
	if c.UsersWithPersonalInfo != nil {
		r.UsersWithPersonalInfo = *c.UsersWithPersonalInfo
	}
	return r, nil
}

// validID rejects ids that could not have been issued, before any query.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// BidiOverride reports an explicit bidi embedding, override or isolate
// (U+202A-202E, U+2066-2069): what CleanText drops from text, and pages
// drop from text stored before it did. The marks (LRM, RLM) are not.
func BidiOverride(r rune) bool {
	return '\u202a' <= r && r <= '\u202e' || '\u2066' <= r && r <= '\u2069'
}

// CleanText trims a free-text field and refuses it if required and empty,
// longer than max characters, not UTF-8 or holding control characters, with
// a problem naming the field.
//
// Line breaks are kept, as "\n" whatever the client sent: browsers submit
// a textarea's line breaks as "\r\n" (HTML's form submission rules), and so
// do Windows clients, so a CR is a line break, not a control character to
// refuse; a member of the public typing a report in two paragraphs must not
// be turned away. The other controls that mean a line or page break in text
// pasted from elsewhere (vertical tab, form feed, NEL) become "\n" too. Tabs
// are kept. Every other control character (C0, DEL and the C1 range, which
// some terminals obey as escape sequences) is refused. Explicit bidi
// embeddings, overrides and isolates are dropped: no Chinese or English
// text needs them, and they can make a title or a reason display as other
// words than it holds (the right-to-left and left-to-right marks stay).
func CleanText(field, v string, max int, required bool) (string, error) {
	if strings.ContainsAny(v, "\r\v\f\u0085") {
		v = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\v", "\n", "\f", "\n", "\u0085", "\n").Replace(v)
	}
	if utf8.ValidString(v) { // Map would hide bytes that are not UTF-8
		v = strings.Map(func(r rune) rune {
			if BidiOverride(r) {
				return -1
			}
			return r
		}, v)
	}
	v = strings.TrimSpace(v)
	if required && v == "" {
		return "", invalid(field, "missing_field", field+" is required")
	}
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > max {
		return "", invalid(field, "invalid_field", fmt.Sprintf("%s must be valid UTF-8 of at most %d characters", field, max))
	}
	for _, r := range v {
		if unicode.Is(unicode.Cc, r) && r != '\n' && r != '\t' {
			return "", invalid(field, "invalid_field", field+" contains control characters")
		}
	}
	return v, nil
}
