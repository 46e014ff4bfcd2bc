package supervision

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault"
)

// Report statuses: received -> triaged -> investigating -> closed (a step
// may be skipped; closed is final).
const (
	ReportReceived      = "received"
	ReportTriaged       = "triaged"
	ReportInvestigating = "investigating"
	ReportClosed        = "closed"
)

var reportOrder = map[string]int{ReportReceived: 0, ReportTriaged: 1, ReportInvestigating: 2, ReportClosed: 3}

// NewReport is what a member of the public sends.
type NewReport struct {
	SubjectOrg  string `json:"subject_org"`
	Commitment  string `json:"commitment"`
	Description string `json:"description"`
}

// Filed is the answer to a new report; Receipt is shown only here.
type Filed struct {
	ID      string `json:"id"`
	Receipt string `json:"receipt"`
	Status  string `json:"status"`
}

// Message is one message on a report.
type Message struct {
	ID     string    `json:"id"`
	From   string    `json:"from"` // "reporter" or "inspector"
	Author string    `json:"author,omitempty"`
	Text   string    `json:"text"`
	At     time.Time `json:"at"`
}

// AttachmentInfo is an attachment's metadata.
type AttachmentInfo struct {
	ID          string    `json:"id"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	UploadedAt  time.Time `json:"uploaded_at"`
}

// Link ties a report to what it is about.
type Link struct {
	Provider   string `json:"provider,omitempty"`
	Commitment string `json:"commitment,omitempty"`
	Case       string `json:"case,omitempty"`
}

// Report is the inspectors' view of a report.
type Report struct {
	ID          string           `json:"id"`
	SubjectOrg  string           `json:"subject_org"`
	Commitment  string           `json:"commitment"`
	Description string           `json:"description"`
	Status      string           `json:"status"`
	Outcome     string           `json:"outcome"`
	Link        Link             `json:"link"`
	CreatedAt   time.Time        `json:"created_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
	Messages    []Message        `json:"messages,omitempty"`
	Attachments []AttachmentInfo `json:"attachments,omitempty"`
}

// ReporterView is what the receipt holder sees: the progress and the
// conversation, not the inspectors' links.
type ReporterView struct {
	ID          string           `json:"id"`
	Status      string           `json:"status"`
	Outcome     string           `json:"outcome"`
	CreatedAt   time.Time        `json:"created_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
	Messages    []Message        `json:"messages"`
	Attachments []AttachmentInfo `json:"attachments"`
}

// ReportStatusChange is an inspector's triage step.
type ReportStatusChange struct {
	Status  string `json:"status"`
	Outcome string `json:"outcome"`
	Link    *Link  `json:"link"`
}

// Client is the anonymous caller of a report route: its address is used
// only to throttle, through a keyed hash held in memory, and is never
// stored, logged or audited.
type Client struct {
	Addr      string
	RequestID string
}

func throttled(d time.Duration) error {
	if d < time.Second {
		d = time.Second
	}
	return &access.ThrottledError{RetryAfter: d}
}

// FileReport takes a report from the public. It needs no account.
func (s *Service) FileReport(ctx context.Context, cl Client, in NewReport) (Filed, error) {
	// Counted before the slow work (argon2id, sealing), so that parallel
	// requests cannot all pass; every attempt counts, refused ones too.
	if ok, wait := s.throttle.take("report", cl.Addr, s.cfg.ReportsPerWindow); !ok {
		return Filed{}, throttled(wait)
	}
	desc, err := vault.CleanText("description", in.Description, 10000, true)
	if err != nil {
		return Filed{}, err
	}
	subject, err := vault.CleanText("subject_org", in.SubjectOrg, 300, false)
	if err != nil {
		return Filed{}, err
	}
	if subject != "" {
		org, err := s.access.OrgByRef(ctx, subject)
		switch {
		case errors.Is(err, access.ErrNotFound):
			// Taken as typed: answering unknown_org told anyone without an
			// account which organisations are registered, that is, which
			// are party to a review. The inspectors read the name in the
			// report's sealed description; the reporter's view has neither.
			desc = "Organisation named by the reporter, not registered: " + subject + "\n\n" + desc
			subject = ""
		case err != nil:
			return Filed{}, fmt.Errorf("look up organisation: %w", err)
		default:
			subject = org.ID
		}
	}
	if in.Commitment != "" {
		if err := s.commitmentExists(ctx, in.Commitment); err != nil {
			return Filed{}, err
		}
	}
	secret := newSecret()
	hash, err := s.cfg.Hasher.Hash(secret)
	if err != nil {
		return Filed{}, fmt.Errorf("hash receipt: %w", err)
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	row := reportRow{ID: newID(), ReceiptHash: hash, SubjectOrg: subject, Commitment: in.Commitment, Outcome: []byte{},
		Status: ReportReceived, CreatedAt: now, UpdatedAt: now}
	if row.Description, err = s.seal(ctx, label("supervision_reports", "description", row.ID), desc); err != nil {
		return Filed{}, err
	}
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return Filed{}, err
	}
	row.Tag = reportTag(key, &row)
	if err := s.record(ctx, anonEvent(cl.RequestID, "report.create", audit.Allowed, "report/"+row.ID, "")); err != nil {
		return Filed{}, err
	}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return Filed{}, fmt.Errorf("store report: %w", err)
	}
	return Filed{ID: row.ID, Receipt: row.ID + "." + secret, Status: row.Status}, nil
}

func (s *Service) commitmentExists(ctx context.Context, id string) error {
	var n int64
	if validID(id) {
		if err := s.db.WithContext(ctx).Model(&commitmentRow{}).Where("id = ?", id).Count(&n).Error; err != nil {
			return fmt.Errorf("look up commitment: %w", err)
		}
	}
	if n == 0 {
		return invalid("commitment", "unknown_commitment", "no such commitment")
	}
	return nil
}

// dummyHash is verified against when the receipt names no report, so a
// wrong id costs the same as a wrong secret.
var dummyHash = sync.OnceValue(func() string {
	h, _ := access.DefaultArgon2id.Hash("crvault-dummy-receipt-secret")
	return h
})

// byReceipt finds the report a receipt opens. Wrong, malformed and guessed
// receipts are counted (metric and throttle) and audited without any
// address; too many from one client answer 429 before any check.
func (s *Service) byReceipt(ctx context.Context, cl Client, receipt, action string) (reportRow, error) {
	var row reportRow
	// Every attempt takes a slot before the argon2id verification and a
	// right one gives it back, so parallel wrong receipts cannot all pass
	// the check before any is counted.
	if ok, wait := s.throttle.take("receipt", cl.Addr, s.cfg.ReceiptFailures); !ok {
		return row, throttled(wait)
	}
	id, secret, perr := ParseReceipt(receipt)
	ok := false
	if perr == nil {
		err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
		hash := dummyHash()
		switch {
		case err == nil:
			hash = row.ReceiptHash
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return row, fmt.Errorf("load report: %w", err)
		}
		good, verr := s.cfg.Hasher.Verify(secret, hash)
		ok = err == nil && verr == nil && good
	}
	if ok {
		s.throttle.refund("receipt", cl.Addr)
	}
	if !ok {
		s.failures.Inc()
		bad := &vault.Error{Kind: vault.ErrUnauthorized, Code: "invalid_receipt", Detail: "the receipt is not valid"}
		return row, s.deny(ctx, anonEvent(cl.RequestID, action, audit.Denied, "report", ""), bad)
	}
	// Checked only for the holder of the right receipt: the answer tells
	// nobody else anything of the report.
	proven, err := s.reportProven(ctx, &row)
	if err != nil {
		return row, err
	}
	if !proven {
		return row, s.deny(ctx, anonEvent(cl.RequestID, action, audit.Denied, "report/"+row.ID, ""), reportDamaged())
	}
	return row, nil
}

// ReporterStatus shows the receipt holder the report's progress and
// messages.
func (s *Service) ReporterStatus(ctx context.Context, cl Client, receipt string) (ReporterView, error) {
	row, err := s.byReceipt(ctx, cl, receipt, "report.follow_up")
	if err != nil {
		return ReporterView{}, err
	}
	if err := s.record(ctx, anonEvent(cl.RequestID, "report.follow_up", audit.Allowed, "report/"+row.ID, "")); err != nil {
		return ReporterView{}, err
	}
	msgs, atts, err := s.conversation(ctx, row.ID, false)
	if err != nil {
		return ReporterView{}, err
	}
	outcome, err := s.open(ctx, label("supervision_reports", "outcome", row.ID), row.Outcome)
	if err != nil {
		return ReporterView{}, err
	}
	return ReporterView{ID: row.ID, Status: row.Status, Outcome: outcome, CreatedAt: row.CreatedAt.UTC(), UpdatedAt: row.UpdatedAt.UTC(),
		Messages: msgs, Attachments: atts}, nil
}

// MessageRequest is a message's text.
type MessageRequest struct {
	Text string `json:"text"`
}

// ReporterMessage adds the receipt holder's message to an open report.
func (s *Service) ReporterMessage(ctx context.Context, cl Client, receipt string, in MessageRequest) (Message, error) {
	row, err := s.byReceipt(ctx, cl, receipt, "report.message")
	if err != nil {
		return Message{}, err
	}
	return s.addMessage(ctx, anonEvent(cl.RequestID, "report.message", audit.Allowed, "report/"+row.ID, "reporter"), row, "reporter", "", in.Text)
}

func (s *Service) addMessage(ctx context.Context, ev audit.Event, row reportRow, from, author, text string) (Message, error) {
	text, err := vault.CleanText("text", text, 10000, true)
	if err != nil {
		return Message{}, err
	}
	if row.Status == ReportClosed {
		return Message{}, conflict("report_closed", "this report is closed")
	}
	if err := s.record(ctx, ev); err != nil {
		return Message{}, err
	}
	m := reportMessageRow{ID: newID(), ReportID: row.ID, From: from, Author: author, CreatedAt: s.cfg.Now().UTC().Truncate(time.Microsecond)}
	if m.Text, err = s.seal(ctx, label("supervision_report_messages", "text", m.ID), text); err != nil {
		return Message{}, err
	}
	if from != "reporter" {
		if err := s.db.WithContext(ctx).Create(&m).Error; err != nil {
			return Message{}, fmt.Errorf("store message: %w", err)
		}
		return s.toMessage(ctx, m, author != "")
	}
	// A receipt holder's messages are bounded per report.
	err = s.appendToReport(ctx, row.ID, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&reportMessageRow{}).Where("report_id = ? AND sender = ?", row.ID, "reporter").Count(&n).Error; err != nil {
			return fmt.Errorf("count messages of report %s: %w", row.ID, err)
		}
		if n >= int64(s.cfg.MaxReporterMessages) {
			return invalid("text", "message_limit", fmt.Sprintf("a report takes at most %d messages from its reporter", s.cfg.MaxReporterMessages))
		}
		if err := tx.Create(&m).Error; err != nil {
			return fmt.Errorf("store message: %w", err)
		}
		return nil
	})
	if err != nil {
		return Message{}, err
	}
	return s.toMessage(ctx, m, author != "")
}

// appendToReport runs add in a transaction holding the report's row, so
// that per-report limits counted inside it hold under concurrency: on
// PostgreSQL by the row lock, on SQLite by the write lock every
// transaction takes at its start.
func (s *Service) appendToReport(ctx context.Context, reportID string, add func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := tx.Model(&reportRow{}).Select("id").Where("id = ?", reportID)
		if sqldb.Dialect(tx) == sqldb.Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		var r reportRow
		if err := q.Take(&r).Error; err != nil {
			return fmt.Errorf("lock report %s: %w", reportID, err)
		}
		return add(tx)
	})
}

func (s *Service) toMessage(ctx context.Context, m reportMessageRow, withAuthor bool) (Message, error) {
	text, err := s.open(ctx, label("supervision_report_messages", "text", m.ID), m.Text)
	if err != nil {
		return Message{}, err
	}
	out := Message{ID: m.ID, From: m.From, Text: text, At: m.CreatedAt.UTC()}
	if withAuthor {
		out.Author = m.Author
	}
	return out, nil
}

// conversation loads a report's messages and attachments; inspectors'
// user ids are shown to inspectors only.
func (s *Service) conversation(ctx context.Context, id string, inspector bool) ([]Message, []AttachmentInfo, error) {
	var ms []reportMessageRow
	if err := s.db.WithContext(ctx).Where("report_id = ?", id).Order("id").Find(&ms).Error; err != nil {
		return nil, nil, fmt.Errorf("load messages of report %s: %w", id, err)
	}
	var as []attachmentRow
	if err := s.db.WithContext(ctx).Omit("header").Where("report_id = ?", id).Order("id").Find(&as).Error; err != nil {
		return nil, nil, fmt.Errorf("load attachments of report %s: %w", id, err)
	}
	msgs, atts := []Message{}, []AttachmentInfo{}
	for _, m := range ms {
		msg, err := s.toMessage(ctx, m, inspector)
		if err != nil {
			return nil, nil, err
		}
		msgs = append(msgs, msg)
	}
	for _, a := range as {
		att, err := s.toAttachment(ctx, a)
		if err != nil {
			return nil, nil, err
		}
		atts = append(atts, att)
	}
	return msgs, atts, nil
}

func (s *Service) toAttachment(ctx context.Context, a attachmentRow) (AttachmentInfo, error) {
	name, err := s.open(ctx, label("supervision_report_attachments", "filename", a.ID), a.Filename)
	if err != nil {
		return AttachmentInfo{}, err
	}
	return AttachmentInfo{ID: a.ID, Filename: name, ContentType: a.ContentType, Size: a.Size, SHA256: a.SHA256, UploadedAt: a.CreatedAt.UTC()}, nil
}

// inspectorReport loads a report for an inspector, auditing refusals, and
// says whether its tag checks (reporttags.go) when check is set (an
// attachment is the report's whatever its links and status).
func (s *Service) inspectorReport(ctx context.Context, a vault.Actor, id, action string, check bool) (reportRow, bool, error) {
	var row reportRow
	ev := event(a, action, audit.Allowed, "", "report/"+id, "")
	if !s.access.Can(a.P, "report", "manage") {
		return row, false, s.deny(ctx, ev, forbidden("only inspectors handle reports"))
	}
	err := gorm.ErrRecordNotFound
	if validID(id) {
		err = s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return row, false, s.deny(ctx, ev, notFound("report"))
	}
	if err != nil {
		return row, false, fmt.Errorf("load report %s: %w", id, err)
	}
	if !check {
		return row, false, nil
	}
	proven, err := s.reportProven(ctx, &row)
	if err != nil {
		return row, false, err
	}
	return row, proven, nil
}

func (s *Service) toReport(ctx context.Context, r reportRow) (Report, error) {
	desc, err := s.open(ctx, label("supervision_reports", "description", r.ID), r.Description)
	if err != nil {
		return Report{}, err
	}
	outcome, err := s.open(ctx, label("supervision_reports", "outcome", r.ID), r.Outcome)
	if err != nil {
		return Report{}, err
	}
	return Report{ID: r.ID, SubjectOrg: r.SubjectOrg, Commitment: r.Commitment, Description: desc, Status: r.Status, Outcome: outcome,
		Link: Link{Provider: r.LinkProvider, Commitment: r.LinkCommitment, Case: r.LinkCase}, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}, nil
}

// GetReport returns a report with its messages and attachments (inspectors).
func (s *Service) GetReport(ctx context.Context, a vault.Actor, id string) (Report, error) {
	row, proven, err := s.inspectorReport(ctx, a, id, "report.read", true)
	if err != nil {
		return Report{}, err
	}
	if !proven {
		// Shown, as damaged: the inspectors are the ones to know.
		row = unverifiedReport(row)
	}
	if err := s.record(ctx, event(a, "report.read", audit.Allowed, "", "report/"+id, "")); err != nil {
		return Report{}, err
	}
	r, err := s.toReport(ctx, row)
	if err != nil {
		return Report{}, err
	}
	if r.Messages, r.Attachments, err = s.conversation(ctx, id, true); err != nil {
		return Report{}, err
	}
	return r, nil
}

// ReportFilter selects reports.
type ReportFilter struct {
	Status, Provider string
	Limit            int
	Cursor           string
}

// ListReports lists reports oldest first, with counts by status
// (inspectors).
func (s *Service) ListReports(ctx context.Context, a vault.Actor, f ReportFilter) (Page[Report], error) {
	ev := event(a, "report.list", audit.Allowed, "", "reports", "")
	office := !s.access.Can(a.P, "report", "manage") && a.P.Has(access.RoleOfficeAdmin)
	if !s.access.Can(a.P, "report", "manage") && !office {
		return Page[Report]{}, s.deny(ctx, ev, forbidden("only inspectors handle reports"))
	}
	if f.Status != "" && reportOrder[f.Status] == 0 && f.Status != ReportReceived {
		return Page[Report]{}, invalid("status", "invalid_status", "status must be received, triaged, investigating or closed")
	}
	if f.Cursor != "" && !validID(f.Cursor) {
		return Page[Report]{}, invalid("cursor", "invalid_cursor", "cursor is not one this server issued")
	}
	q := s.db.WithContext(ctx).Model(&reportRow{})
	var cases *gorm.DB
	if office {
		// The office sees the reports that name its cases (those it may
		// list: not a party's draft): linked to one, or naming a commitment
		// made on one (Art. 18 / 2021 Art. 19). A commitment's case_id is a
		// column a database administrator can edit: the page is checked
		// again against the commitments' tags (officeReports).
		var err error
		if cases, err = s.vault.VisibleCaseIDs(ctx, a); err != nil {
			return Page[Report]{}, err
		}
		onCases := s.db.Model(&commitmentRow{}).Select("id").Where("case_id IN (?)", cases)
		q = q.Where("link_case IN (?) OR commitment IN (?) OR link_commitment IN (?)", cases, onCases, onCases)
	}
	if f.Provider != "" {
		q = sqldb.WhereText(q, "subject_org = ? OR link_provider = ?", f.Provider)
	}
	counts, err := countByStatus(q.Session(&gorm.Session{}))
	if err != nil {
		return Page[Report]{}, fmt.Errorf("count reports: %w", err)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Cursor != "" {
		q = q.Where("id > ?", f.Cursor)
	}
	limit := pageLimit(f.Limit)
	var rows []reportRow
	// With receipt_hash, which the tag covers (reporttags.go).
	if err := q.Order("id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return Page[Report]{}, fmt.Errorf("list reports: %w", err)
	}
	page := Page[Report]{Items: []Report{}, Counts: counts}
	if len(rows) > limit {
		rows = rows[:limit]
		page.NextCursor = rows[limit-1].ID
	}
	// Each row's tag is checked: one that fails is not the office's (its
	// links chose it) and is shown to inspectors as damaged.
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return Page[Report]{}, err
	}
	kept := rows[:0]
	for _, r := range rows {
		if !s.reportChecked(ctx, key, &r) {
			if office {
				continue
			}
			r = unverifiedReport(r)
		}
		kept = append(kept, r)
	}
	rows = kept
	if office {
		if rows, err = s.officeReports(ctx, cases, rows); err != nil {
			return Page[Report]{}, err
		}
	}
	// Reports are on no case: their ids alone, in events of no case.
	seen := make([]listed, len(rows))
	for i, r := range rows {
		seen[i] = listed{"", r.ID}
	}
	if err := s.recordList(ctx, ev, seen); err != nil {
		return Page[Report]{}, err
	}
	for _, r := range rows {
		rep, err := s.toReport(ctx, r)
		if err != nil {
			return Page[Report]{}, err
		}
		page.Items = append(page.Items, rep)
	}
	return page, nil
}

// officeReports keeps, of a page of reports SQL found for the office, those
// linked to one of the office's cases or naming a commitment whose tag
// checks and whose case is one of them. SQL chose the commitments by their
// case_id, which a database administrator can edit: a commitment made on a
// party's draft and moved onto a case the office lists would show the
// office the reports about it. Its tag binds its case, so such a
// commitment is refused here (logged at ERROR and counted) and its
// reports left out. The page may then hold fewer than limit items with
// more to come; the counts, made in SQL, may include them (a number, not
// a report).
func (s *Service) officeReports(ctx context.Context, cases *gorm.DB, rows []reportRow) ([]reportRow, error) {
	if len(rows) == 0 {
		return rows, nil
	}
	ids := make([]string, 0, len(rows))
	var named []string
	for _, r := range rows {
		ids = append(ids, r.ID)
		for _, c := range []string{r.Commitment, r.LinkCommitment} {
			if c != "" {
				named = append(named, c)
			}
		}
	}
	db := s.db.WithContext(ctx)
	var linked []string
	if err := db.Model(&reportRow{}).Where("id IN ? AND link_case IN (?)", ids, cases).Pluck("id", &linked).Error; err != nil {
		return nil, fmt.Errorf("check reports' cases: %w", err)
	}
	keep := make(map[string]bool, len(rows))
	for _, id := range linked {
		keep[id] = true
	}
	onCases := map[string]bool{}
	if len(named) > 0 {
		var cms []commitmentRow
		if err := db.Select("id", "case_id", "provider_org", "operator_org", "kind", "created_by", "tag").
			Where("id IN ? AND case_id IN (?)", named, cases).Find(&cms).Error; err != nil {
			return nil, fmt.Errorf("check reports' commitments: %w", err)
		}
		chk, err := s.commitmentChecker(ctx)
		if err != nil {
			return nil, err
		}
		for i := range cms {
			if s.commitmentChecked(ctx, chk, &cms[i]) {
				onCases[cms[i].ID] = true
			}
		}
	}
	out := rows[:0]
	for _, r := range rows {
		if keep[r.ID] || onCases[r.Commitment] || onCases[r.LinkCommitment] {
			out = append(out, r)
		}
	}
	return out, nil
}

// InspectorMessage sends the reporter a message (inspectors).
func (s *Service) InspectorMessage(ctx context.Context, a vault.Actor, id string, in MessageRequest) (Message, error) {
	row, proven, err := s.inspectorReport(ctx, a, id, "report.message", true)
	if err != nil {
		return Message{}, err
	}
	if !proven {
		// Whether it is closed is not known.
		return Message{}, s.deny(ctx, event(a, "report.message", audit.Allowed, "", "report/"+id, ""), reportDamaged())
	}
	return s.addMessage(ctx, event(a, "report.message", audit.Allowed, "", "report/"+id, "inspector"), row, "inspector", a.P.User.ID, in.Text)
}

// SetReportStatus triages, investigates or closes a report, optionally
// linking it to a provider, commitment or case (inspectors). Closing needs
// an outcome; a closed report stays closed.
func (s *Service) SetReportStatus(ctx context.Context, a vault.Actor, id string, in ReportStatusChange) (Report, error) {
	row, proven, err := s.inspectorReport(ctx, a, id, "report.status", true)
	if err != nil {
		return Report{}, err
	}
	if !proven {
		return Report{}, s.deny(ctx, event(a, "report.status", audit.Allowed, "", "report/"+id, ""), reportDamaged())
	}
	if in.Status != ReportTriaged && in.Status != ReportInvestigating && in.Status != ReportClosed {
		return Report{}, invalid("status", "invalid_status", "status must be triaged, investigating or closed")
	}
	outcome, err := vault.CleanText("outcome", in.Outcome, 4000, in.Status == ReportClosed)
	if err != nil {
		return Report{}, err
	}
	if row.Status == ReportClosed || reportOrder[in.Status] < reportOrder[row.Status] {
		return Report{}, conflict("illegal_transition", "a report moves forward only, and a closed report stays closed")
	}
	upd := map[string]any{"status": in.Status, "updated_at": s.cfg.Now().UTC().Truncate(time.Microsecond)}
	next := row
	next.Status = in.Status
	if outcome != "" {
		if upd["outcome"], err = s.seal(ctx, label("supervision_reports", "outcome", id), outcome); err != nil {
			return Report{}, err
		}
	}
	caseID := ""
	if in.Link != nil {
		if p := in.Link.Provider; p != "" {
			org, err := s.access.Org(ctx, p)
			if errors.Is(err, access.ErrNotFound) || err == nil && org.Kind != access.OrgProvider {
				return Report{}, invalid("link.provider", "unknown_provider", "no such provider organisation")
			}
			if err != nil {
				return Report{}, fmt.Errorf("look up provider: %w", err)
			}
			upd["link_provider"], next.LinkProvider = p, p
		}
		if c := in.Link.Commitment; c != "" {
			if err := s.commitmentExists(ctx, c); err != nil {
				return Report{}, err
			}
			upd["link_commitment"], next.LinkCommitment = c, c
		}
		if c := in.Link.Case; c != "" {
			cs, err := s.vault.GetCase(ctx, a, c)
			var ve *vault.Error
			if errors.As(err, &ve) && ve.Kind == vault.ErrNotFound {
				return Report{}, invalid("link.case", "unknown_case", "no such case")
			}
			if err != nil {
				return Report{}, err
			}
			caseID = cs.ID
			upd["link_case"], next.LinkCase = cs.ID, cs.ID
		}
	}
	if err := s.record(ctx, event(a, "report.status", audit.Allowed, caseID, "report/"+id, in.Status)); err != nil {
		return Report{}, err
	}
	key, err := s.vault.RowsKey(ctx)
	if err != nil {
		return Report{}, err
	}
	upd["tag"] = reportTag(key, &next)
	// On the tag read as well as the status: another inspector's link
	// written meanwhile would otherwise stay beside a tag that does not
	// cover it.
	res := s.db.WithContext(ctx).Model(&reportRow{}).Where("id = ? AND status = ? AND tag = ?", id, row.Status, row.Tag).Updates(upd)
	if res.Error != nil {
		return Report{}, fmt.Errorf("update report %s: %w", id, res.Error)
	}
	if res.RowsAffected != 1 {
		return Report{}, conflict("concurrent_update", "the report changed while this request ran; retry")
	}
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return Report{}, fmt.Errorf("reload report %s: %w", id, err)
	}
	return s.toReport(ctx, row)
}
