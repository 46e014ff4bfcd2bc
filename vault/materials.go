package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/crypt"
	"github.com/crvault/crvault/vault/review"
)

// Material is the metadata of one stored document version.
type Material struct {
	ID          string    `json:"id"`
	CaseID      string    `json:"case_id"`
	Kind        string    `json:"kind"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	Version     int       `json:"version"`
	UploadedBy  string    `json:"uploaded_by"`
	UploadedAt  time.Time `json:"uploaded_at"`
}

// Kinds of material (Art. 7 and 14, plus what the review produces);
// listing_application is item 3 of a listing abroad (2021 Art. 8).
var Kinds = []string{"declaration", "impact_analysis", "procurement", "listing_application", "other", "supplementary", "recommendation", "opinion", "notice", "evidence"}

func knownKind(k string) bool {
	for _, x := range Kinds {
		if x == k {
			return true
		}
	}
	return false
}

func toMaterial(r materialRow, filename string) Material {
	return Material{ID: r.ID, CaseID: r.CaseID, Kind: r.Kind, Filename: filename, ContentType: r.ContentType, Size: r.Size,
		SHA256: r.SHA256, Version: r.Version, UploadedBy: r.UploadedBy, UploadedAt: r.UploadedAt.UTC()}
}

// Upload is one document arriving. Body is read once, to its end.
type Upload struct {
	Kind        string
	Filename    string
	ContentType string
	Body        io.Reader
	// Size is the declared plaintext length, or -1 when unknown (multipart).
	// A body that ends early or runs past it is refused.
	Size int64
	// Item is the number of the requested supplementary item a
	// supplementary upload answers (0: the first outstanding one).
	Item int
	// Classified: the uploader marks the material as holding state secrets.
	Classified bool
	// session is a resumable upload whose bytes are already stored: the
	// material is made from its segments instead of from Body.
	session *uploadRow
	// alsoInTx, when set, runs in the transaction that inserts the
	// material row, before it: an error aborts the insert (and the blob
	// is discarded). A written notice clears its pending marker there.
	alsoInTx func(tx *gorm.DB) error
}

// uploadRule says which decision admits an upload of a kind, and in which statuses.
type uploadRule struct {
	act      access.Action
	roles    []access.Role
	statuses []string
}

var uploadRules = map[string]uploadRule{
	"declaration":         {"material.upload", []access.Role{"operator", "provider"}, []string{"draft"}},
	"impact_analysis":     {"material.upload", []access.Role{"operator", "provider"}, []string{"draft"}},
	"procurement":         {"material.upload", []access.Role{"operator", "provider"}, []string{"draft"}},
	"listing_application": {"material.upload", []access.Role{"operator", "provider"}, []string{"draft"}},
	"other":               {"material.upload", []access.Role{"operator", "provider"}, []string{"draft", "submitted", "under_review", "awaiting_supplement"}},
	// Supplements may be requested in every phase (2020 Art. 14 / 2021 Art. 15).
	"supplementary":  {"material.upload", []access.Role{"operator", "provider"}, []string{"submitted", "under_review", "awaiting_supplement", "soliciting_opinions", "special_review"}},
	"evidence":       {"complaint.create", []access.Role{"operator", "provider"}, nil},
	"recommendation": {"material.read", []access.Role{"reviewer", "office_admin"}, []string{"under_review", "special_review"}},
	"opinion":        {"opinion.create", []access.Role{"member_unit"}, []string{"soliciting_opinions", "special_review"}},
	"notice":         {"case.transition", []access.Role{"office_admin"}, nil},
}

// UploadKinds are the kinds of material p's roles may add to case c in its
// present status, in the order of Kinds, by the rules Upload applies
// (uploadRules), so that a form offers only what can be stored. What the
// rule's decision adds (a declared assignment, for one) is the caller's to
// weigh. listing_application is left out unless c lists abroad: it is item
// 3 of that case type alone (2021 Art. 8).
func UploadKinds(p access.Principal, c Case) []string {
	var out []string
	for _, k := range Kinds {
		rule := uploadRules[k]
		switch {
		case !hasAnyRole(p, rule.roles), rule.statuses != nil && !contains(rule.statuses, c.Status),
			k == "listing_application" && c.Type != review.TypeListingAbroad:
			continue
		}
		out = append(out, k)
	}
	return out
}

// Upload streams a document into the case: hashed and counted on the way,
// encrypted to the case key, written to the blob store, and only then
// recorded. A failed upload leaves no material and no blob.
func (s *Service) Upload(ctx context.Context, a Actor, caseID string, up Upload) (Material, error) {
	row, purpose, err := s.admitUpload(ctx, a, caseID, up, "material.upload")
	if err != nil {
		return Material{}, err
	}
	if up.Kind != "supplementary" || (row.Status != string(review.AwaitingSupplement) && up.Item == 0) {
		return s.store(ctx, a, row.ID, purpose, up)
	}
	return s.uploadSupplement(ctx, a, row, purpose, up)
}

// admitUpload decides whether the caller may add a material of up's kind
// to the case now, auditing refusals as event. Resumable uploads ask it
// again at every chunk, so a case that moved on or a right withdrawn stops
// an upload half way.
func (s *Service) admitUpload(ctx context.Context, a Actor, caseID string, up Upload, event string) (caseRow, string, error) {
	rule, known := uploadRules[up.Kind]
	act := rule.act
	switch {
	case !known:
		act = "material.upload"
	case up.Kind == "recommendation" && a.P.Has("office_admin"):
		// The office drafts recommendations as part of running the case;
		// reviewers need a declared assignment (material.read).
		act = "case.transition"
	}
	row, _, d, err := s.authorize(ctx, a, caseID, act, event, "case/"+caseID)
	if err != nil {
		return row, "", err
	}
	if up.Classified || ClassifiedMarking(up.Filename) {
		return row, "", s.refuseClassified(ctx, a, row, d.Purpose)
	}
	if !known {
		return row, "", invalid("kind", "invalid_kind", "kind must be one of "+strings.Join(Kinds, ", "))
	}
	if !hasAnyRole(a.P, rule.roles) {
		if err := s.record(ctx, a, event, audit.Denied, caseID, "case/"+caseID, d.Purpose, "forbidden"); err != nil {
			return row, "", err
		}
		return row, "", fail(ErrForbidden, "forbidden", fmt.Sprintf("your role may not upload %s materials", up.Kind))
	}
	if rule.statuses != nil && !contains(rule.statuses, row.Status) {
		if err := s.record(ctx, a, event, audit.Denied, caseID, "case/"+caseID, d.Purpose, "case_not_editable"); err != nil {
			return row, "", err
		}
		return row, "", fail(ErrConflict, "case_not_editable", fmt.Sprintf("%s materials cannot be added to a %s case", up.Kind, row.Status))
	}
	return row, d.Purpose, nil
}

// store does the streaming write of an authorised upload.
func (s *Service) store(ctx context.Context, a Actor, caseID, purpose string, up Upload) (Material, error) {
	if up.session != nil {
		return s.commitSession(ctx, a, caseID, purpose, up)
	}
	filename, err := SanitizeFilename(up.Filename)
	if err != nil {
		return Material{}, err
	}
	ctype, err := cleanContentType(up.ContentType)
	if err != nil {
		return Material{}, err
	}
	if up.Size > s.maxSize {
		return Material{}, fail(ErrTooLarge, "too_large", fmt.Sprintf("the limit is %d bytes", s.maxSize))
	}
	key, err := s.caseKey(ctx, caseID)
	if err != nil {
		return Material{}, err
	}
	id, blobID := NewID(), NewID()
	resource := "material/" + id
	// The intent is audited before anything is stored: no record, no upload.
	if err := s.record(ctx, a, "material.upload", audit.Allowed, caseID, resource, purpose, ""); err != nil {
		return Material{}, err
	}
	sealed, err := s.SealBlob(ctx, key, blobID, up.Body, up.Size, s.maxSize)
	if err != nil {
		s.recordFailure(ctx, a, "material.upload", caseID, resource, err)
		return Material{}, err
	}
	m := materialRow{ID: id, CaseID: caseID, Kind: up.Kind, FilenameMAC: filenameMAC(key, filename), ContentType: ctype, Size: sealed.Size, SHA256: sealed.SHA256,
		BlobID: blobID, Header: sealed.Header, UploadedBy: a.P.User.ID, UploaderOrg: a.P.User.OrgID, UploadedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if m.Filename, err = sealText(key, labelFilename(id), filename); err != nil {
		s.recordFailure(ctx, a, "material.upload", caseID, resource, err)
		return Material{}, err
	}
	m.Tag = materialTag(key, &m)
	insert := s.insertVersion
	if up.alsoInTx != nil {
		insert = func(ctx context.Context, m *materialRow) error {
			return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				if err := up.alsoInTx(tx); err != nil {
					return err
				}
				return insertVersionIn(tx, m)
			})
		}
	}
	if err := insert(ctx, &m); err != nil {
		// The row is the commit point; without it the blob is garbage.
		s.discardBlob(ctx, blobID, err)
		s.recordFailure(ctx, a, "material.upload", caseID, resource, err)
		return Material{}, fmt.Errorf("record material: %w", err)
	}
	return toMaterial(m, filename), nil
}

// BodyError marks a failure reading the client's body (not ours), so the
// upload is refused as bad input. api/ wraps reader errors with it.
type BodyError struct{ Err error }

func (e *BodyError) Error() string { return "read request body: " + e.Err.Error() }
func (e *BodyError) Unwrap() error { return e.Err }

func classifyBodyError(err error) error {
	var ve *Error
	if errors.As(err, &ve) {
		return ve
	}
	var be *BodyError
	if errors.As(err, &be) {
		var inner *Error
		if errors.As(be.Err, &inner) {
			return inner
		}
		return fail(ErrBadRequest, "malformed_body", "the request body could not be read to its end")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fail(ErrBadRequest, "malformed_body", "the request body ended early")
	}
	return fmt.Errorf("store upload: %w", err)
}

// discardBlob deletes a blob that a failed transaction was to reference,
// unless the transaction may have committed all the same: a connection
// lost during COMMIT says nothing of its outcome, and deleting then could
// leave a committed row without its ciphertext. That blob is left to the
// janitor, which deletes only blobs that nothing references, an hour on.
func (s *Service) discardBlob(ctx context.Context, blobID string, cause error) {
	var ve *Error
	if !errors.As(cause, &ve) && sqldb.CommitUnknown(cause) {
		s.log.WarnContext(ctx, "blob left for the janitor: the row that references it may have committed", "blob", blobID, "err", cause)
		return
	}
	if err := s.blobs.Delete(context.WithoutCancel(ctx), blobID); err != nil {
		s.log.WarnContext(ctx, "orphan blob left for the janitor", "blob", blobID, "err", err)
	}
}

// insertVersion numbers the material after the existing versions of the same
// kind and filename (matched by the filename's keyed hash, as the name itself
// is sealed); the unique index settles races.
func (s *Service) insertVersion(ctx context.Context, m *materialRow) error {
	return insertVersionIn(s.db.WithContext(ctx), m)
}

// maxVersionRaces bounds the retries of insertVersionIn. A lost race means
// another upload of the same name took the number and committed (the unique
// index waits for it), so each retry sees a higher maximum: n uploads of one
// name finishing at once need at most n-1 retries. Five were too few for the
// eight concurrent 256 MiB uploads of BenchmarkConcurrentTransfersRSS, which
// finished within the same millisecond and lost one of them, after its whole
// transfer, to a 500.
const maxVersionRaces = 64

// insertVersionIn is insertVersion on db, which may be a transaction: each
// attempt is a savepoint there, so a lost race does not abort it.
func insertVersionIn(db *gorm.DB, m *materialRow) error {
	var err error
	for range maxVersionRaces {
		var max int
		if err = db.Model(&materialRow{}).Where("case_id = ? AND kind = ? AND filename_mac = ?", m.CaseID, m.Kind, m.FilenameMAC).
			Select("COALESCE(MAX(version), 0)").Scan(&max).Error; err != nil {
			return err
		}
		m.Version = max + 1
		err = db.Transaction(func(tx *gorm.DB) error {
			if err := lockLiveCase(tx, m.CaseID); err != nil {
				return err
			}
			return tx.Create(m).Error
		})
		if !errors.Is(err, gorm.ErrDuplicatedKey) {
			return err
		}
	}
	return err
}

// lockLiveCase refuses with case_shredded once the case has been
// crypto-shredded, and otherwise keeps it from being shredded until tx
// ends: a share lock on its row on PostgreSQL, which shred's update waits
// for; SQLite's transactions hold the write lock from BEGIN. Every
// transaction that makes a row name a new blob of the case checks it: an
// upload that streamed while the case was shredded would otherwise commit a
// material no key opens, after the shredding had purged the case's blobs.
func lockLiveCase(tx *gorm.DB, caseID string) error {
	// On PostgreSQL a shredding in progress holds the row: this waits for
	// it, then reads the row as it committed.
	q := "SELECT id FROM cases WHERE id = ? AND shredded_at IS NULL"
	if sqldb.Dialect(tx) == sqldb.Postgres {
		q += " FOR SHARE"
	}
	var ids []string
	if err := tx.Raw(q, caseID).Scan(&ids).Error; err != nil {
		return fmt.Errorf("check case %s: %w", caseID, err)
	}
	if len(ids) != 1 {
		return fail(ErrConflict, "case_shredded", "this case was destroyed at the end of its retention")
	}
	return nil
}

func (s *Service) caseKey(ctx context.Context, caseID string) (*crypt.CaseKey, error) {
	return s.keys.CaseKey(ctx, caseID)
}

// ListMaterials lists the materials of a case the caller may see.
func (s *Service) ListMaterials(ctx context.Context, a Actor, caseID string) ([]Material, error) {
	_, _, d, err := s.authorize(ctx, a, caseID, "material.list", "material.list", "case/"+caseID)
	if err != nil {
		return nil, err
	}
	var rows []materialRow
	if err := s.db.WithContext(ctx).Omit("header").Where("case_id = ?", caseID).Order("uploaded_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list materials of case %s: %w", caseID, err)
	}
	if err := s.record(ctx, a, "material.list", audit.Allowed, caseID, "case/"+caseID, d.Purpose, ""); err != nil {
		return nil, err
	}
	// Refined per material by the kind table (visibility.go) and, for
	// another party's materials, its consents (consents.go).
	var consented map[string]string
	if isParty(a.P) {
		if consented, err = s.consentedMaterials(ctx, caseID, a.P.User.OrgID); err != nil {
			return nil, err
		}
	}
	shown := rows[:0]
	for _, r := range rows {
		visible, needConsent := kindVisible(a.P, r.Kind, r.UploaderOrg)
		if visible || needConsent && consented[r.ID] != "" {
			shown = append(shown, r)
		}
	}
	out, err := s.openMaterials(ctx, caseID, shown)
	if err != nil {
		return nil, err
	}
	return s.materialsFor(ctx, a.P, caseID, out)
}

// material loads a material and authorises act on it, auditing refusals.
// Unknown ids and materials hidden from the caller both answer 404.
func (s *Service) material(ctx context.Context, a Actor, id string, act access.Action, event string) (materialRow, access.Decision, error) {
	m, _, d, err := s.materialKeyed(ctx, a, id, act, event)
	return m, d, err
}

// materialKeyed is material, also returning the case key it checked the
// material's row tag with (nil for a shredded case), so that a read does
// not look it up twice.
func (s *Service) materialKeyed(ctx context.Context, a Actor, id string, act access.Action, event string) (m materialRow, key *crypt.CaseKey, d access.Decision, err error) {
	m, d, err = s.materialDecided(ctx, a, id, act, event, func(m *materialRow, d access.Decision) error {
		// The row's tag is checked once the caller may see the case and
		// before its kind and uploader decide what more it may see: a row
		// moved to another case, or edited, is refused as damaged (not the
		// caller's fault; checkMaterial and the keyring log which row).
		k, err := s.keys.caseKey(ctx, m.CaseID)
		switch {
		case errors.Is(err, errShredded):
			return nil // nothing of it can be read; the read says so
		case err != nil && !errors.Is(err, errRowTag):
			return err
		case err != nil || !s.checkMaterial(ctx, k, m):
			if err := s.record(ctx, a, event, audit.Errored, m.CaseID, "material/"+id, d.Purpose, "material_damaged"); err != nil {
				return err
			}
			return errDamagedRow()
		}
		key = k
		return nil
	})
	return m, key, d, err
}

// materialDecided is material with check run between the case's decision
// and the material's own visibility.
func (s *Service) materialDecided(ctx context.Context, a Actor, id string, act access.Action, event string,
	check func(m *materialRow, d access.Decision) error) (materialRow, access.Decision, error) {
	var m materialRow
	var c caseWithProviders
	resource := "material/" + id
	err := gorm.ErrRecordNotFound
	if validID(id) {
		m, c, err = s.materialWithCase(ctx, id)
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		if err := s.record(ctx, a, event, audit.Denied, "", resource, "", "not_found"); err != nil {
			return m, access.Decision{}, err
		}
		return m, access.Decision{}, fail(ErrNotFound, "not_found", "no such material")
	}
	if err != nil {
		return m, access.Decision{}, err
	}
	if act == "material.read" && m.Kind == "evidence" && a.P.Has("inspector") {
		// Inspectors read no documents except evidence filed with a
		// complaint, which is theirs to weigh (Art. 17): not a party's
		// evidence before it is attached to one.
		cited, err := s.evidenceCited(ctx, m.CaseID, m.ID)
		if err != nil {
			return m, access.Decision{}, err
		}
		if cited {
			act = "case.read"
		}
	}
	row, facts, providers, err := s.factsOf(ctx, c)
	_, _, d, err := s.decideOn(ctx, a, m.CaseID, act, event, resource, row, facts, providers, err)
	if err != nil {
		var ve *Error
		if errors.As(err, &ve) && ve.Code == "not_found" {
			ve.Detail = "no such material"
		}
		return m, d, err
	}
	if err := check(&m, d); err != nil {
		return m, d, err
	}
	visible, consent, err := s.visibleMaterial(ctx, a.P, m)
	if err != nil {
		return m, d, err
	}
	if !visible {
		if err := s.record(ctx, a, event, audit.Denied, m.CaseID, resource, d.Purpose, "not_found"); err != nil {
			return m, d, err
		}
		return m, d, fail(ErrNotFound, "not_found", "no such material")
	}
	if act == access.ActMaterialRead && unitDone(a.P, row.Status) && m.UploaderOrg != a.P.User.OrgID {
		if err := s.record(ctx, a, event, audit.Denied, m.CaseID, resource, d.Purpose, access.CodeCaseConcluded); err != nil {
			return m, d, err
		}
		return m, d, fail(ErrForbidden, access.CodeCaseConcluded, forbiddenDetail(access.CodeCaseConcluded))
	}
	if consent != "" {
		d.Purpose = consentPurpose(consent)
	}
	return m, d, nil
}

// EvidenceIndex says whether a complaint on the case cites the evidence
// material (package supervision keeps complaints and their evidence).
type EvidenceIndex func(ctx context.Context, caseID, materialID string) (bool, error)

// SetEvidenceIndex tells the vault where complaints' evidence is listed;
// the supervision service sets it when it is made. Without one no evidence
// is cited, and inspectors read none.
func (s *Service) SetEvidenceIndex(f EvidenceIndex) {
	s.evidenceMu.Lock()
	defer s.evidenceMu.Unlock()
	s.evidence = f
}

func (s *Service) evidenceCited(ctx context.Context, caseID, materialID string) (bool, error) {
	s.evidenceMu.RLock()
	f := s.evidence
	s.evidenceMu.RUnlock()
	if f == nil {
		return false, nil
	}
	return f(ctx, caseID, materialID)
}

// GetMaterial returns a material's metadata.
func (s *Service) GetMaterial(ctx context.Context, a Actor, id string) (Material, error) {
	m, d, err := s.material(ctx, a, id, "material.meta", "material.meta")
	if err != nil {
		return Material{}, err
	}
	if err := s.record(ctx, a, "material.meta", audit.Allowed, m.CaseID, "material/"+id, d.Purpose, ""); err != nil {
		return Material{}, err
	}
	out, err := s.materialOf(ctx, m)
	if err != nil {
		return Material{}, err
	}
	ms, err := s.materialsFor(ctx, a.P, m.CaseID, []Material{out})
	if err != nil {
		return Material{}, err
	}
	return ms[0], nil
}

// Range is a single byte range [Start, Start+Length) of the plaintext.
type Range struct{ Start, Length int64 }

// Content is an opened material: Body yields exactly Length bytes of
// plaintext starting at Start. The caller must Close it.
type Content struct {
	Material Material
	Start    int64
	Length   int64
	Partial  bool
	Body     io.Reader
	close    func() error
	tracked  *trackedBody
	cutShort func(ctx context.Context, sent int64)
}

// Close releases the blob.
func (c *Content) Close() error { return c.close() }

// RangeTarget is what a Range request is resolved against: the material's
// size and its validators. A material never changes under its id, so both
// validators are strong (RFC 9110 §8.8): SHA256 for an entity tag, and
// UploadedAt, which no later write can share, for a date.
type RangeTarget struct {
	Size       int64
	SHA256     string
	UploadedAt time.Time
}

// RangeFunc resolves the caller's Range (and If-Range) against the material
// once it is known, after authorisation; nil means the whole document. It
// returns ErrRange for an unsatisfiable range.
type RangeFunc func(t RangeTarget) (*Range, error)

// OpenContent is the only road to plaintext. It authorises the read, appends
// the material.read audit event and only then opens and decrypts the blob.
// If the event cannot be written, nothing is opened.
func (s *Service) OpenContent(ctx context.Context, a Actor, id string, rng RangeFunc) (*Content, error) {
	m, key, d, err := s.materialKeyed(ctx, a, id, "material.read", "material.read")
	if err != nil {
		return nil, err
	}
	var r *Range
	if rng != nil {
		if r, err = rng(RangeTarget{Size: m.Size, SHA256: m.SHA256, UploadedAt: m.UploadedAt.UTC()}); err != nil {
			if err := s.record(ctx, a, "material.read", audit.Denied, m.CaseID, "material/"+id, d.Purpose, "range_not_satisfiable"); err != nil {
				return nil, err
			}
			return nil, err
		}
	}
	resource := "material/" + id
	if r != nil {
		resource = fmt.Sprintf("%s bytes=%d-%d", resource, r.Start, r.Start+r.Length-1)
	}
	if err := s.record(ctx, a, "material.read", audit.Allowed, m.CaseID, resource, d.Purpose, ""); err != nil {
		return nil, err
	}
	c, err := s.openMaterial(ctx, m, key, r)
	if err != nil {
		s.recordFailure(ctx, a, "material.read", m.CaseID, resource, err)
		return nil, err
	}
	c.tracked = &trackedBody{r: c.Body}
	c.Body = c.tracked
	c.cutShort = s.cutShortRecorder(a, m.CaseID, resource, d.Purpose, c)
	return c, nil
}

// openMaterial opens m with key, its case key as material checked m's tag
// with (nil: look it up, and fail as a shredded case does).
func (s *Service) openMaterial(ctx context.Context, m materialRow, key *crypt.CaseKey, r *Range) (*Content, error) {
	if key == nil {
		var err error
		if key, err = s.caseKey(ctx, m.CaseID); err != nil {
			return nil, err
		}
	}
	open := s.OpenSealed
	if m.Segments > 1 {
		// A resumable upload's material: an ordered set of sealed segments.
		open = func(ctx context.Context, key *crypt.CaseKey, _ []byte, _ string, size int64, r *Range) (io.Reader, func() error, error) {
			return s.openSegments(ctx, key, m.ID, size, r)
		}
	}
	body, closeFn, err := open(ctx, key, m.Header, m.BlobID, m.Size, r)
	if errors.Is(err, errRowTag) {
		// A segment row moved or edited: refused like a damaged blob
		// (openSegments names the row), restored the same way.
		s.log.ErrorContext(ctx, "stored material refused: a segment's row tag does not check", "material", m.ID, "case", m.CaseID, "err", err)
		return nil, errDamagedRow()
	}
	if errors.Is(err, crypt.ErrCorrupt) || errors.Is(err, blob.ErrNotFound) {
		// Not the caller's fault and not an outage: the operator must
		// restore this blob from a backup, so say which one, once, loudly.
		s.log.ErrorContext(ctx, "stored material damaged: restore its blob from a backup", "material", m.ID, "case", m.CaseID,
			"blob", m.BlobID, "err", err)
		return nil, fail(ErrDamaged, "material_damaged", "the stored copy of this material is missing or damaged; the operator has been told")
	}
	if err != nil {
		return nil, fmt.Errorf("open material %s: %w", m.ID, err)
	}
	mat, err := s.materialOf(ctx, m)
	if err != nil {
		closeFn()
		return nil, err
	}
	c := &Content{Material: mat, Length: m.Size, Body: body, close: closeFn}
	if r != nil {
		c.Start, c.Length, c.Partial = r.Start, r.Length, true
	}
	return c, nil
}

// SanitizeFilename keeps a display name only: no directories, no control
// characters, no Unicode format characters (category Cf: the bidi
// overrides and isolates that make "invoice\u202Efdp.exe" display as
// "invoiceexe.pdf", zero-width characters that make two names look alike),
// no line or paragraph separators, bounded length. It is never used as a
// path.
func SanitizeFilename(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", invalid("filename", "invalid_filename", "filename must be UTF-8")
	}
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		if r == '"' || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			continue
		}
		b.WriteRune(r)
	}
	name = strings.TrimSpace(b.String())
	if name == "" || name == "." || name == ".." {
		return "", invalid("filename", "invalid_filename", "a filename is required")
	}
	if len(name) > 255 {
		return "", invalid("filename", "invalid_filename", "filename is longer than 255 bytes")
	}
	return name, nil
}

func cleanContentType(ct string) (string, error) {
	if ct == "" {
		return "application/octet-stream", nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || len(ct) > 255 {
		return "", invalid("content_type", "invalid_content_type", "content type is not a valid media type")
	}
	return mime.FormatMediaType(mt, params), nil
}

func hasAnyRole(p access.Principal, roles []access.Role) bool {
	for _, r := range roles {
		if p.Has(r) {
			return true
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
