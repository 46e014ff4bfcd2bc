package vault

// Row tags (crypt.CaseKey.RowTag) bind the rows that say where a key
// belongs and which bytes a material is to a key the database never holds,
// so that a database administrator who moves them is refused, not obeyed
// (review h29b, finding 2: a case's wrapped key copied into another case's
// row, and its materials moved under that case, were read by a reviewer of
// the other case).
//
//   - A wrapped key (case_keys, vault_keys, supervision_keys) carries a tag
//     under itself naming its table and row id: a key copied to another row
//     still opens, but its tag names the row it came from, and nobody
//     without the key can make one for the new row. It is checked once,
//     when the key is unwrapped, not on reads served from the key cache.
//     Rewrapping (rotation, recovery) changes the wrapping, not the key, so
//     the tag stays true.
//   - A material (materials) carries a tag under its case key over every
//     column that decides for which case, to whom and from which bytes it
//     is served: id, case, kind, uploading user and organisation, blob,
//     size, hash, segment count and content type. Its segments
//     (material_segments, and upload_segments of an upload in progress)
//     carry one over their material or upload, order, blob and place. The
//     header is left out: it opens only the blob it was written with (age's
//     payload is authenticated under the header's file key), so binding the
//     blob binds it too, and a listing need not load headers.
//   - A consent (material_consents) carries a tag under its case key over
//     its id, material, case, organisation, granter and state, live or
//     revoked (review h29h, F1: one inserted row showed a party another's
//     document). Revoking re-tags it as revoked; readers accept only rows
//     tagged live, so un-revoking it in the database does not re-grant.
//
// Rows written by binaries from before the tags carry none. They are tagged
// once, at start-up before anything is served (TagLegacyRows), and each
// table's backfill is recorded in the audit log (keys.tag_backfill, the
// table as resource). The log is the marker: once a table's event exists,
// the backfill never runs for it again, and an untagged row is refused like
// one whose tag does not check, so a database administrator who blanks a
// tag gets nothing re-tagged. A tag cannot tell an old genuine row put back
// (a replay) from the current one; vault/crypt's threat model says so.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/crypt"
)

// keyTag is the tag of a wrapped key stored in table under id.
func keyTag(key *crypt.CaseKey, table, id string) []byte { return key.RowTag(table, id) }

// KeyTag is keyTag for the other owners of key tables (supervision).
func KeyTag(key *crypt.CaseKey, table, id string) []byte { return keyTag(key, table, id) }

// materialFields are the columns of a material row its tag covers.
func materialFields(m *materialRow) []string {
	return []string{m.ID, m.CaseID, m.Kind, m.UploadedBy, m.UploaderOrg, m.BlobID,
		strconv.FormatInt(m.Size, 10), m.SHA256, strconv.Itoa(m.Segments), m.ContentType}
}

// materialTag is the tag of a material row under its case key.
func materialTag(key *crypt.CaseKey, m *materialRow) []byte {
	return key.RowTag("materials", materialFields(m)...)
}

// segmentTag is the tag of one segment of a material (material_segments)
// or of an upload in progress (upload_segments), owner naming which.
func segmentTag(key *crypt.CaseKey, table, owner string, seq int, blobID string, start, size int64) []byte {
	return key.RowTag(table, owner, strconv.Itoa(seq), blobID, strconv.FormatInt(start, 10), strconv.FormatInt(size, 10))
}

// consentTag is the tag of a consent row under its case key: its id, the
// material, case and organisation it opens to, who granted it, and whether
// it is live. A revoked consent is re-tagged as revoked in the statement
// that revokes it, so setting revoked_at back to NULL does not re-grant it.
func consentTag(key *crypt.CaseKey, c *consentRow, live bool) []byte {
	state := "revoked"
	if live {
		state = "live"
	}
	return key.RowTag("material_consents", consentFields(c, c.CaseID, state)...)
}

// consentFields are the columns a consent's tag covers, the case given
// apart: a check binds the row to the case it was asked for.
func consentFields(c *consentRow, caseID, state string) []string {
	return []string{c.ID, c.MaterialID, caseID, c.OrgID, c.GrantedBy, state}
}

// liveConsents keeps the consents (all read as live) whose tags check under
// the case key, logging each one refused at ERROR. A shredded case (nil
// key) has none.
func (s *Service) liveConsents(ctx context.Context, caseID string, rows []consentRow) ([]consentRow, error) {
	if len(rows) == 0 {
		return rows, nil
	}
	key, err := s.textKey(ctx, caseID)
	if err != nil {
		return nil, fmt.Errorf("check consents of case %s: %w", caseID, err)
	}
	out := rows[:0]
	for i := range rows {
		if key != nil && key.CheckRowTag(rows[i].Tag, "material_consents", consentFields(&rows[i], caseID, "live")...) {
			out = append(out, rows[i])
			continue
		}
		s.tagRefusals.WithLabelValues("material_consents").Inc()
		s.log.ErrorContext(ctx, "consent refused: its row tag does not check (inserted, edited or un-revoked outside crvault, or written by an older vaultd)",
			"table", "material_consents", "id", rows[i].ID, "material", rows[i].MaterialID, "case", rows[i].CaseID, "org", rows[i].OrgID, "tagged", len(rows[i].Tag) > 0)
	}
	return out, nil
}

// RowsKeyName names the vault key (vault_keys) that tags the rows deciding
// who may see what beyond one case's key: a case's parties and a member
// unit's proposals here, providers' commitments in vault/supervision, and
// in cmd/vaultd access's rows (sessions, accounts, assignments). The table
// name each tag binds keeps one kind of row from passing for another.
const RowsKeyName = "rows"

// partiesFields are the columns a case's parties tag covers: its id,
// operator organisation, origin (a proposal's draft is the office's to
// see) and its providers' organisation ids, sorted.
func partiesFields(id, operatorOrg, origin string, providers []string) []string {
	ps := slices.Clone(providers)
	slices.Sort(ps)
	return append([]string{id, operatorOrg, origin}, ps...)
}

// partiesTag is the tag of a case's parties under the rows key.
func partiesTag(key *crypt.CaseKey, id, operatorOrg, origin string, providers []string) []byte {
	return key.RowTag("cases", partiesFields(id, operatorOrg, origin, providers)...)
}

// proposalFields are the columns of a proposal its tag covers: its id and
// edition, the member unit that proposed it (which alone lists it), the
// party it names (for whom approving it opens a case), its subject and
// proposer, and its approval: status, approver and the case it opened.
// Approving re-tags it in the statement that approves it.
func proposalFields(r *proposalRow) []string {
	return []string{r.ID, r.Edition, r.MemberOrg, r.PartyOrg, r.Subject, r.ProposedBy, r.Status, r.ApprovedBy, r.CaseID}
}

// proposalTag is the tag of a proposal under the rows key.
func proposalTag(key *crypt.CaseKey, r *proposalRow) []byte {
	return key.RowTag("proposals", proposalFields(r)...)
}

// proposalChecked says whether a proposal's tag checks under the rows key
// (chk, one per list), logging and counting one that does not.
func (s *Service) proposalChecked(ctx context.Context, chk *crypt.RowTagChecker, r *proposalRow) bool {
	for _, f := range proposalFields(r) {
		chk.FieldString(f)
	}
	if chk.Check(r.Tag) {
		return true
	}
	s.tagRefused(ctx, "proposals", r.ID, "proposal refused: its row tag does not check (member unit, party or approval edited outside crvault, or written by an older vaultd)",
		"member_org", r.MemberOrg, "party_org", r.PartyOrg, "status", r.Status, "tagged", len(r.Tag) > 0)
	return false
}

// RowsKey is the vault's rows key, for the other owners of rows that
// decide who sees what (supervision's commitments): one key, opened once,
// whose tags a database administrator cannot make.
func (s *Service) RowsKey(ctx context.Context) (*crypt.CaseKey, error) { return s.rowsKey(ctx) }

// TagRefused logs at ERROR and counts in
// crvault_vault_row_tag_refusals_total{table} a row of another owner's
// table refused for its tag (ids only, never plaintext).
func (s *Service) TagRefused(ctx context.Context, table, id, msg string, attrs ...any) {
	s.tagRefused(ctx, table, id, msg, attrs...)
}

// TagBackfillOnce runs tag, which tags table's untagged rows and says how
// many, unless the audit log records table's backfill (TagBackfillAction),
// and then records it: for the other owners of tagged tables, whose rows
// TagLegacyRows does not know. tag must update only rows still untagged,
// so that two instances starting together tag each row once.
func TagBackfillOnce(ctx context.Context, log *audit.Log, table string, tag func(context.Context) (int64, error)) error {
	done, err := tagBackfillsDone(ctx, log)
	if err != nil || done[table] {
		return err
	}
	n, err := tag(ctx)
	if err != nil {
		return fmt.Errorf("row tags: tag %s: %w", table, err)
	}
	return recordTagBackfill(ctx, log, table, n, 0)
}

// rowsKey is the vault's rows key (RowsKeyName), opened once per process.
func (s *Service) rowsKey(ctx context.Context) (*crypt.CaseKey, error) {
	if key := s.rows.Load(); key != nil {
		return key, nil
	}
	key, err := s.keys.vaultKey(ctx, RowsKeyName)
	if err != nil {
		return nil, fmt.Errorf("row tags: %w", err)
	}
	s.rows.Store(key)
	return key, nil
}

// partiesChecked says whether a case's parties (its row's operator and
// origin, and providers) are the ones crvault stored. One that is not is
// logged at ERROR, counted, and made partyless: the row comes back with
// no operator organisation and no providers, so that no organisation is a
// party of it, and its facts (factsOf) do not say the office opened it.
// Staff whose access does not rest on
// the parties (the office once it is submitted, assignees, inspectors)
// still see it.
func (s *Service) partiesChecked(ctx context.Context, row caseRow, providers []string) (caseRow, []string, bool, error) {
	key, err := s.rowsKey(ctx)
	if err != nil {
		return row, nil, false, err
	}
	if key.CheckRowTag(row.PartiesTag, "cases", partiesFields(row.ID, row.OperatorOrg, row.Origin, providers)...) {
		return row, providers, true, nil
	}
	s.tagRefused(ctx, "cases", row.ID, "case's parties refused: its row tag does not check (operator, origin or providers edited outside crvault, or written by an older vaultd)",
		"operator_org", row.OperatorOrg, "origin", row.Origin, "providers", len(providers), "tagged", len(row.PartiesTag) > 0)
	row.OperatorOrg = ""
	return row, []string{}, false, nil
}

// statusFields are what a case's status tag covers: its id, its workflow
// status and the number of the last event of its history (0 for a draft,
// which has none). The history's length is read beside the row
// (lastSeqColumn) rather than stored on it, so an older genuine status and
// tag, put back by a database administrator, no longer checks once the
// history has grown: the replay would also have to delete the history's
// later events.
func statusFields(id, status string, lastSeq int64) []string {
	return []string{id, status, strconv.FormatInt(lastSeq, 10)}
}

// statusTagTable keeps a status tag apart from a parties tag (table
// "cases"): the two cover different fields of the same row.
const statusTagTable = "cases.status"

// statusTag is the tag of a case's status under the rows key.
func statusTag(key *crypt.CaseKey, id, status string, lastSeq int64) []byte {
	return key.RowTag(statusTagTable, statusFields(id, status, lastSeq)...)
}

// statusOK says whether row's status tag checks with lastSeq, quietly
// (statusChecked logs and counts a failure).
func (s *Service) statusOK(ctx context.Context, row caseRow, lastSeq int64) (bool, error) {
	key, err := s.rowsKey(ctx)
	if err != nil {
		return false, err
	}
	return key.CheckRowTag(row.StatusTag, statusTagTable, statusFields(row.ID, row.Status, lastSeq)...), nil
}

// statusNow reads a case's status, its tag and its history's length in one
// statement, for a caller that read them in two (a transition committed
// between them would fail the tag).
func (s *Service) statusNow(ctx context.Context, id string) (caseRow, int64, error) {
	var r caseWithProviders
	if err := s.db.WithContext(ctx).Table("cases").Select("cases.id, cases.status, cases.status_tag, "+lastSeqColumn).
		Where("cases.id = ?", id).Take(&r).Error; err != nil {
		return caseRow{}, 0, fmt.Errorf("read the status of case %s: %w", id, err)
	}
	return r.Case, r.LastSeq, nil
}

// lastSeqColumn selects the number of a case's last event, 0 if none, as
// last_seq (caseWithProviders), beside a query of cases: one index probe
// of case_events' primary key.
const lastSeqColumn = "(SELECT COALESCE(MAX(case_events.seq), 0) FROM case_events WHERE case_events.case_id = cases.id) AS last_seq"

// statusChecked says whether a case's status is the one crvault stored
// with the last event of its history. One that is not (moved back,
// forward, a draft made submitted, a tag copied from another case or an
// older one replayed) is logged at ERROR, counted, and marked
// (statusRefused): decideOn then refuses every request on the case
// (case_status_damaged), and the lists leave it out, for nothing the
// status decides (who reads, which step is next) can be trusted.
func (s *Service) statusChecked(ctx context.Context, row caseRow, lastSeq int64) (caseRow, error) {
	ok, err := s.statusOK(ctx, row, lastSeq)
	if err != nil || ok {
		return row, err
	}
	s.tagRefused(ctx, "cases", row.ID, "case's status refused: its row tag does not check (status or history edited outside crvault, or written by an older vaultd)",
		"column", "status_tag", "status", row.Status, "last_seq", lastSeq, "tagged", len(row.StatusTag) > 0)
	row.statusRefused = true
	return row, nil
}

// errStatusDamaged answers a request on a case whose status tag fails
// (statusChecked): only a restore, or crvault's own repair, helps.
func errStatusDamaged() *Error {
	return fail(ErrDamaged, "case_status_damaged", "the stored status of this case does not authenticate (changed outside crvault); nothing on the case can be done until it is restored; the operator has been told")
}

// tagRefused logs a row refused for its tag at ERROR (table and id, never
// plaintext) and counts it.
func (s *Service) tagRefused(ctx context.Context, table, id, msg string, attrs ...any) {
	s.tagRefusals.WithLabelValues(table).Inc()
	s.log.ErrorContext(ctx, msg, append([]any{"table", table, "id", id}, attrs...)...)
}

// errRowTag: a stored row's tag does not check (or it has none): the row
// was moved or edited outside crvault, and is refused.
var errRowTag = errors.New("row tag does not check: the row was moved or edited outside crvault")

// errDamagedRow is what a caller is told of a material whose row, or whose
// case's key, fails its tag: not the caller's fault, and the operator is
// told which row in the log.
func errDamagedRow() *Error {
	return fail(ErrDamaged, "material_damaged", "the stored copy of this material is missing or damaged; the operator has been told")
}

// OpenTaggedKey unwraps the key stored in table under id and checks its tag,
// refusing (errRowTag, logged at ERROR with table and id) a key that was
// copied there from another row.
func (k *Keyring) OpenTaggedKey(ctx context.Context, table, id string, w crypt.Wrapped, tag []byte) (*crypt.CaseKey, error) {
	key, err := k.masters.Open(w)
	if err != nil {
		return nil, err
	}
	if !key.CheckRowTag(tag, table, id) {
		k.log.ErrorContext(ctx, "wrapped key refused: its row tag does not check (moved or edited outside crvault, or written by an older vaultd)",
			"table", table, "id", id, "tagged", len(tag) > 0)
		return nil, fmt.Errorf("%s %s: %w", table, id, errRowTag)
	}
	return key, nil
}

// checkMaterial says whether a material row's tag checks under its case
// key, logging a row that fails at ERROR.
func (s *Service) checkMaterial(ctx context.Context, key *crypt.CaseKey, m *materialRow) bool {
	if key.CheckRowTag(m.Tag, "materials", materialFields(m)...) {
		return true
	}
	s.tagRefusals.WithLabelValues("materials").Inc()
	s.log.ErrorContext(ctx, "material refused: its row tag does not check (moved or edited outside crvault, or written by an older vaultd)",
		"table", "materials", "material", m.ID, "case", m.CaseID, "blob", m.BlobID, "tagged", len(m.Tag) > 0)
	return false
}

// TagBackfillAction is the audit action recording one table's backfill of
// row tags (resource: the table; detail: how many rows were tagged).
const TagBackfillAction = "keys.tag_backfill"

// tagTables are the tables TagLegacyRows backfills, vital keys first.
var tagTables = []string{"vault_keys", "case_keys", "materials", "material_segments", "upload_segments",
	"material_consents", "upload_sessions"}

// TagLegacyRows tags, once, the rows that binaries from before row tags
// wrote: the vault's keys, extra (other owners' key tables, such as the
// supervision key), every case's parties and every proposal (under the
// rows key, created if need be) and every case's key, materials and
// segments. Each table
// done is recorded in the audit log as TagBackfillAction; a table whose
// event exists is never backfilled again, so its untagged rows stay
// refused. It runs before anything opens a key (cmd/vaultd calls it right
// after Keyring.Init). A case key that no key held opens is left as it is
// (with its materials) and logged: it cannot be read anyway. Several
// instances starting at once on PostgreSQL take turns under an advisory
// lock; on SQLite a second one finds the events and does nothing.
func (k *Keyring) TagLegacyRows(ctx context.Context, log *audit.Log, extra ...KeyTable) error {
	run := func() error { return k.tagLegacyRows(ctx, log, extra) }
	if sqldb.Dialect(k.db) != sqldb.Postgres {
		return run()
	}
	// The lock is held by this transaction's connection while the work
	// runs on others; the transaction itself writes nothing.
	return k.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SELECT pg_advisory_xact_lock(hashtext(?))", "crvault-row-tags").Error; err != nil {
			return fmt.Errorf("row tags: lock: %w", err)
		}
		return run()
	})
}

func (k *Keyring) tagLegacyRows(ctx context.Context, log *audit.Log, extra []KeyTable) error {
	done, err := tagBackfillsDone(ctx, log)
	if err != nil {
		return err
	}
	counts := map[string]int64{}
	// The vault's own keys and the other owners' (few, vital) one by one.
	for _, t := range append(k.KeyTables(), extra...) {
		if t.Table == "case_keys" || done[t.Table] {
			continue
		}
		n, err := k.tagKeyTable(ctx, t)
		if err != nil {
			return err
		}
		if err := recordTagBackfill(ctx, log, t.Table, n, 0); err != nil {
			return err
		}
		done[t.Table] = true
	}
	// Tables tagged under the rows key alone (no case key needed), each
	// once, under its own marker: cases' parties, proposals, cases'
	// statuses, cases' histories and their second tags, and cases' due
	// dates.
	for _, b := range []struct {
		table string
		tag   func(context.Context) (int64, error)
	}{{"cases", k.tagCaseParties}, {"proposals", k.tagProposals}, {statusTagTable, k.tagCaseStatuses}, {eventTagTable, k.tagCaseEvents},
		{eventTextsMarker, k.retagEventTexts}, {dueTagTable, k.tagCaseDue}} {
		if done[b.table] {
			continue
		}
		n, err := b.tag(ctx)
		if err != nil {
			return err
		}
		if err := recordTagBackfill(ctx, log, b.table, n, 0); err != nil {
			return err
		}
		done[b.table] = true
	}
	todo := map[string]bool{}
	for _, t := range tagTables[1:] {
		if !done[t] {
			todo[t] = true
		}
	}
	if len(todo) == 0 {
		return nil
	}
	ids, err := k.casesToTag(ctx, todo)
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		k.log.InfoContext(ctx, "tagging rows written before row tags", "cases", len(ids))
	}
	// Each case costs one unwrap (about half a millisecond): the cases are
	// shared among as many workers as there are CPUs, at most 8, well
	// within the database pool (8 connections on SQLite, 32 on PostgreSQL,
	// one of which holds the advisory lock).
	var mu sync.Mutex
	var firstErr error
	unopened := 0
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(8, max(1, runtime.GOMAXPROCS(0))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				c, opened, err := k.tagCase(ctx, id, todo)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if !opened {
					unopened++
				}
				for t, n := range c {
					counts[t] += n
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	for _, t := range tagTables[1:] {
		if !todo[t] {
			continue
		}
		skipped := 0
		if t == "case_keys" {
			skipped = unopened
		}
		if err := recordTagBackfill(ctx, log, t, counts[t], skipped); err != nil {
			return err
		}
	}
	return nil
}

// tagBackfillsDone reads which tables' backfills the audit log records: a
// few events, found through the index on (action, seq).
func tagBackfillsDone(ctx context.Context, log *audit.Log) (map[string]bool, error) {
	done := map[string]bool{}
	cursor := ""
	for {
		evs, next, err := log.Query(ctx, audit.Filter{Action: TagBackfillAction, Limit: audit.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, fmt.Errorf("row tags: read the audit log: %w", err)
		}
		for _, e := range evs {
			done[e.Resource] = true
		}
		if next == "" {
			return done, nil
		}
		cursor = next
	}
}

// recordTagBackfill appends the event that marks table's backfill done.
func recordTagBackfill(ctx context.Context, log *audit.Log, table string, n int64, skipped int) error {
	detail := fmt.Sprintf("tagged %d", n)
	if skipped > 0 {
		detail += fmt.Sprintf("; %d case keys no key held opens left untagged", skipped)
	}
	e := audit.Event{Actor: "system", Action: TagBackfillAction, Outcome: audit.Allowed, Resource: table, Detail: detail}
	if _, err := log.Append(ctx, e); err != nil {
		return fmt.Errorf("row tags: record the backfill of %s: %w", table, err)
	}
	return nil
}

// tagKeyTable tags the untagged keys of t.
func (k *Keyring) tagKeyTable(ctx context.Context, t KeyTable) (int64, error) {
	db := k.db.WithContext(ctx)
	var rows []wrappedRow
	if err := db.Table(t.Table).Select(t.IDColumn + " AS id, wrapped, master, escrow").Where("length(tag) = 0").Scan(&rows).Error; err != nil {
		return 0, fmt.Errorf("row tags: read %s: %w", t.Table, err)
	}
	var n int64
	for _, r := range rows {
		key, err := k.masters.Open(crypt.Wrapped{Data: r.Wrapped, Master: r.Master, Escrow: r.Escrow})
		if err != nil {
			return n, fmt.Errorf("row tags: open %s key %s: %w", t.Kind, r.ID, err)
		}
		res := db.Table(t.Table).Where(t.IDColumn+" = ? AND length(tag) = 0", r.ID).Update("tag", keyTag(key, t.Table, r.ID))
		if res.Error != nil {
			return n, fmt.Errorf("row tags: tag %s %s: %w", t.Table, r.ID, res.Error)
		}
		n += res.RowsAffected
	}
	return n, nil
}

// TagBatch is how many rows TagInBatches tags a transaction.
const TagBatch = 1000

// TagInBatches tags untagged rows a batch at a time, each batch in one
// transaction: a commit per row would be a durable write per row, minutes
// for a large vault's first start. read returns the next batch of
// untagged rows in key order, after the key after ("" first); key is a
// row's key; tag writes one row's tag, only if the row is still untagged
// (so that two instances starting together tag it once), and says how
// many rows it changed. It returns how many rows were tagged.
func TagInBatches[T any](ctx context.Context, db *gorm.DB, read func(db *gorm.DB, after string) ([]T, error),
	key func(T) string, tag func(tx *gorm.DB, row T) (int64, error)) (int64, error) {
	db = db.WithContext(ctx)
	var n int64
	after := ""
	for {
		rows, err := read(db, after)
		if err != nil {
			return n, err
		}
		err = db.Transaction(func(tx *gorm.DB) error {
			for _, r := range rows {
				m, err := tag(tx, r)
				if err != nil {
					return err
				}
				n += m
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		if len(rows) < TagBatch {
			return n, nil
		}
		after = key(rows[len(rows)-1])
	}
}

// tagCaseParties tags the parties of the cases that have no parties tag,
// under the rows key.
func (k *Keyring) tagCaseParties(ctx context.Context) (int64, error) {
	key, err := k.vaultKey(ctx, RowsKeyName)
	if err != nil {
		return 0, fmt.Errorf("row tags: %w", err)
	}
	return TagInBatches(ctx, k.db, func(db *gorm.DB, after string) (rows []caseWithProviders, err error) {
		if err := db.Table("cases").Select("cases.id, cases.operator_org, cases.origin, "+providerIDsColumn(k.db)).
			Where("length(cases.parties_tag) = 0 AND cases.id > ?", after).Order("id").Limit(TagBatch).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("row tags: read cases: %w", err)
		}
		return rows, nil
	}, func(r caseWithProviders) string { return r.Case.ID }, func(tx *gorm.DB, r caseWithProviders) (int64, error) {
		c := r.Case
		res := tx.Model(&caseRow{}).Where("id = ? AND length(parties_tag) = 0", c.ID).
			UpdateColumn("parties_tag", partiesTag(key, c.ID, c.OperatorOrg, c.Origin, r.providers()))
		if res.Error != nil {
			return 0, fmt.Errorf("row tags: tag the parties of case %s: %w", c.ID, res.Error)
		}
		return res.RowsAffected, nil
	})
}

// tagProposals tags the proposals that have no tag, under the rows key.
func (k *Keyring) tagProposals(ctx context.Context) (int64, error) {
	key, err := k.vaultKey(ctx, RowsKeyName)
	if err != nil {
		return 0, fmt.Errorf("row tags: %w", err)
	}
	return TagInBatches(ctx, k.db, func(db *gorm.DB, after string) (rows []proposalRow, err error) {
		if err := db.Select("id, edition, member_org, party_org, subject, proposed_by, status, approved_by, case_id").
			Where("length(tag) = 0 AND id > ?", after).Order("id").Limit(TagBatch).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("row tags: read proposals: %w", err)
		}
		return rows, nil
	}, func(r proposalRow) string { return r.ID }, func(tx *gorm.DB, r proposalRow) (int64, error) {
		res := tx.Model(&proposalRow{}).Where("id = ? AND length(tag) = 0", r.ID).UpdateColumn("tag", proposalTag(key, &r))
		if res.Error != nil {
			return 0, fmt.Errorf("row tags: tag proposal %s: %w", r.ID, res.Error)
		}
		return res.RowsAffected, nil
	})
}

// tagCaseStatuses tags the statuses of the cases that have no status tag,
// with their histories' lengths as they stand, under the rows key.
func (k *Keyring) tagCaseStatuses(ctx context.Context) (int64, error) {
	key, err := k.vaultKey(ctx, RowsKeyName)
	if err != nil {
		return 0, fmt.Errorf("row tags: %w", err)
	}
	return TagInBatches(ctx, k.db, func(db *gorm.DB, after string) (rows []caseWithProviders, err error) {
		if err := db.Table("cases").Select("cases.id, cases.status, "+lastSeqColumn).
			Where("length(cases.status_tag) = 0 AND cases.id > ?", after).Order("id").Limit(TagBatch).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("row tags: read case statuses: %w", err)
		}
		return rows, nil
	}, func(r caseWithProviders) string { return r.Case.ID }, func(tx *gorm.DB, r caseWithProviders) (int64, error) {
		c := r.Case
		res := tx.Model(&caseRow{}).Where("id = ? AND length(status_tag) = 0", c.ID).
			UpdateColumn("status_tag", statusTag(key, c.ID, c.Status, r.LastSeq))
		if res.Error != nil {
			return 0, fmt.Errorf("row tags: tag the status of case %s: %w", c.ID, res.Error)
		}
		return res.RowsAffected, nil
	})
}

// casesToTag lists the cases with an untagged row in the tables todo.
func (k *Keyring) casesToTag(ctx context.Context, todo map[string]bool) ([]string, error) {
	db := k.db.WithContext(ctx)
	seen := map[string]bool{}
	var out []string
	for _, q := range []struct{ table, sql string }{
		{"case_keys", "SELECT case_id FROM case_keys WHERE length(tag) = 0"},
		{"materials", "SELECT DISTINCT case_id FROM materials WHERE length(tag) = 0"},
		{"material_segments", "SELECT DISTINCT m.case_id FROM material_segments s JOIN materials m ON m.id = s.material_id WHERE length(s.tag) = 0"},
		{"upload_segments", "SELECT DISTINCT u.case_id FROM upload_segments s JOIN upload_sessions u ON u.id = s.upload_id WHERE length(s.tag) = 0"},
		{"material_consents", "SELECT DISTINCT case_id FROM material_consents WHERE length(tag) = 0"},
		{"upload_sessions", "SELECT DISTINCT case_id FROM upload_sessions WHERE length(tag) = 0"},
	} {
		if !todo[q.table] {
			continue
		}
		var ids []string
		if err := db.Raw(q.sql).Scan(&ids).Error; err != nil {
			return nil, fmt.Errorf("row tags: list untagged %s: %w", q.table, err)
		}
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out, nil
}

// tagCase tags the untagged rows of one case in the tables todo, in one
// transaction. opened is false when the case has no key (shredded) or no
// key held opens it: its rows are left as they are.
func (k *Keyring) tagCase(ctx context.Context, caseID string, todo map[string]bool) (map[string]int64, bool, error) {
	db := k.db.WithContext(ctx)
	var kr caseKeyRow
	err := db.Where("case_id = ?", caseID).Take(&kr).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, true, nil // shredded: nothing of it can be read
	}
	if err != nil {
		return nil, true, fmt.Errorf("row tags: load key of case %s: %w", caseID, err)
	}
	key, err := k.masters.Open(kr.wrapped())
	if err != nil {
		k.log.WarnContext(ctx, "row tags: a case key no key held opens is left untagged", "case", caseID, "master", kr.Master, "err", err)
		return nil, false, nil
	}
	if len(kr.Tag) > 0 && !key.CheckRowTag(kr.Tag, "case_keys", caseID) {
		// Tagged, and wrongly: not ours to bless by tagging what is under it.
		k.log.ErrorContext(ctx, "row tags: case key refused, its rows are left untagged", "table", "case_keys", "id", caseID)
		return nil, false, nil
	}
	counts := map[string]int64{}
	err = db.Transaction(func(tx *gorm.DB) error {
		if todo["case_keys"] && len(kr.Tag) == 0 {
			res := tx.Model(&caseKeyRow{}).Where("case_id = ? AND length(tag) = 0", caseID).Update("tag", keyTag(key, "case_keys", caseID))
			if res.Error != nil {
				return res.Error
			}
			counts["case_keys"] += res.RowsAffected
		}
		if todo["materials"] {
			var ms []materialRow
			if err := tx.Omit("header", "filename").Where("case_id = ? AND length(tag) = 0", caseID).Find(&ms).Error; err != nil {
				return err
			}
			for i := range ms {
				res := tx.Model(&materialRow{}).Where("id = ? AND length(tag) = 0", ms[i].ID).Update("tag", materialTag(key, &ms[i]))
				if res.Error != nil {
					return res.Error
				}
				counts["materials"] += res.RowsAffected
			}
		}
		if todo["material_consents"] {
			var cs []consentRow
			if err := tx.Omit("purpose").Where("case_id = ? AND length(tag) = 0", caseID).Find(&cs).Error; err != nil {
				return err
			}
			for i := range cs {
				res := tx.Model(&consentRow{}).Where("id = ? AND length(tag) = 0", cs[i].ID).Update("tag", consentTag(key, &cs[i], cs[i].RevokedAt == nil))
				if res.Error != nil {
					return res.Error
				}
				counts["material_consents"] += res.RowsAffected
			}
		}
		if todo["upload_sessions"] {
			// Open sessions an older binary left continue after the upgrade,
			// and completed ones still say which material they made.
			var us []uploadRow
			if err := tx.Omit("filename", "hash_state").Where("case_id = ? AND length(tag) = 0", caseID).Find(&us).Error; err != nil {
				return err
			}
			for i := range us {
				res := tx.Model(&uploadRow{}).Where("id = ? AND length(tag) = 0", us[i].ID).Update("tag", uploadTag(key, &us[i]))
				if res.Error != nil {
					return res.Error
				}
				counts["upload_sessions"] += res.RowsAffected
			}
		}
		for _, seg := range []struct{ table, owner, owners string }{
			{"material_segments", "material_id", "SELECT id FROM materials WHERE case_id = ?"},
			{"upload_segments", "upload_id", "SELECT id FROM upload_sessions WHERE case_id = ?"},
		} {
			if !todo[seg.table] {
				continue
			}
			var rows []struct {
				Owner      string
				Seq        int
				BlobID     string
				PlainStart int64
				PlainSize  int64
			}
			if err := tx.Raw("SELECT "+seg.owner+" AS owner, seq, blob_id, plain_start, plain_size FROM "+seg.table+
				" WHERE length(tag) = 0 AND "+seg.owner+" IN ("+seg.owners+")", caseID).Scan(&rows).Error; err != nil {
				return err
			}
			for _, r := range rows {
				res := tx.Table(seg.table).Where(seg.owner+" = ? AND seq = ? AND length(tag) = 0", r.Owner, r.Seq).
					Update("tag", segmentTag(key, seg.table, r.Owner, r.Seq, r.BlobID, r.PlainStart, r.PlainSize))
				if res.Error != nil {
					return res.Error
				}
				counts[seg.table] += res.RowsAffected
			}
		}
		return nil
	})
	if err != nil {
		return nil, true, fmt.Errorf("row tags: tag the rows of case %s: %w", caseID, err)
	}
	return counts, true, nil
}

// migratePartiesTags adds the cases' parties tag column (see migrateRowTags).
func migratePartiesTags(tx *gorm.DB, _ string) error {
	if m := tx.Migrator(); !m.HasColumn(&caseRow{}, "PartiesTag") {
		if err := m.AddColumn(&caseRow{}, "PartiesTag"); err != nil {
			return fmt.Errorf("add parties_tag: %w", err)
		}
	}
	return nil
}

// migrateProposalTags adds the proposals' tag column (see migrateRowTags).
func migrateProposalTags(tx *gorm.DB, _ string) error {
	if m := tx.Migrator(); !m.HasColumn(&proposalRow{}, "Tag") {
		if err := m.AddColumn(&proposalRow{}, "Tag"); err != nil {
			return fmt.Errorf("add tag: %w", err)
		}
	}
	return nil
}

// migrateStatusTags adds the cases' status tag column (see migrateRowTags).
func migrateStatusTags(tx *gorm.DB, _ string) error {
	if m := tx.Migrator(); !m.HasColumn(&caseRow{}, "StatusTag") {
		if err := m.AddColumn(&caseRow{}, "StatusTag"); err != nil {
			return fmt.Errorf("add status_tag: %w", err)
		}
	}
	return nil
}

// migrateConsentTags adds the consents' tag column (see migrateRowTags).
func migrateConsentTags(tx *gorm.DB, _ string) error {
	if m := tx.Migrator(); !m.HasColumn(&consentRow{}, "Tag") {
		if err := m.AddColumn(&consentRow{}, "Tag"); err != nil {
			return fmt.Errorf("add tag: %w", err)
		}
	}
	return nil
}

// migrateRowTags adds the tag columns. Step 1 and the steps that create
// these tables make them from today's structs, so on a new database the
// columns are already there.
func migrateRowTags(tx *gorm.DB, _ string) error {
	m := tx.Migrator()
	for _, t := range []any{&caseKeyRow{}, &vaultKeyRow{}, &materialRow{}, &materialSegmentRow{}, &uploadSegmentRow{}} {
		if !m.HasColumn(t, "Tag") {
			if err := m.AddColumn(t, "Tag"); err != nil {
				return fmt.Errorf("add tag: %w", err)
			}
		}
	}
	return nil
}
