package vault

// Reviews proposed by a member unit (2020 Art. 15 / 2021 Art. 16): a
// member unit that believes a product, service or (2021) data processing
// activity affects national security proposes a review naming the party;
// the office records the Central Cyberspace Affairs Commission's approval
// and opens the case on the party's behalf; the party is notified by a
// written notice in the case and then uploads and submits as usual. Under
// 2021 the office records the risk prevention and mitigation measures the
// review requires (record_measures) and the party reports on them.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/crypt"
	"github.com/crvault/crvault/vault/review"
)

// Proposal statuses.
const (
	ProposalProposed = "proposed"
	ProposalApproved = "approved"
)

// Proposal is a review proposed by a member unit.
type Proposal struct {
	ID         string    `json:"id"`
	Edition    string    `json:"edition"`
	MemberOrg  string    `json:"member_org"`
	PartyOrg   string    `json:"party_org"`
	Subject    string    `json:"subject"` // product, service, data_processing (2021)
	Title      string    `json:"title"`
	Product    string    `json:"product"`
	Reason     string    `json:"reason"`
	ProposedBy string    `json:"proposed_by"`
	ProposedAt time.Time `json:"proposed_at"`
	Status     string    `json:"status"`
	// Approval is the Commission's approval as the office recorded it.
	Approval *ProposalApproval `json:"approval,omitempty"`
	CaseID   string            `json:"case_id,omitempty"`
}

// ProposalApproval is who recorded the Commission's approval, when, and its reference.
type ProposalApproval struct {
	Reference string    `json:"reference"`
	By        string    `json:"by"`
	At        time.Time `json:"at"`
}

// NewProposal is the body of POST /proposals.
type NewProposal struct {
	PartyOrg string `json:"party_org"`
	Subject  string `json:"subject"`
	Title    string `json:"title"`
	Product  string `json:"product"`
	Reason   string `json:"reason"`
}

// ApprovalRequest is the body of POST /proposals/{id}/approval.
type ApprovalRequest struct {
	Reference string `json:"reference"`
}

// ApprovedProposal is the answer to an approval: the proposal and the
// case opened on the party's behalf.
type ApprovedProposal struct {
	Proposal Proposal `json:"proposal"`
	Case     Case     `json:"case"`
}

// proposalKey seals proposals' text: no case, and so no case key, exists
// when a member unit proposes a review.
const proposalKey = "proposals"

// proposalText is a proposal's free text, sealed as its row stores it.
type proposalText struct{ title, product, reason, reference string }

func labelProposal(column, id string) string { return "proposals." + column + "/" + id }

func (t proposalText) seal(key *crypt.CaseKey, id string, r *proposalRow) error {
	for _, f := range []struct {
		dst *[]byte
		col string
		v   string
	}{{&r.Title, "title", t.title}, {&r.Product, "product", t.product}, {&r.Reason, "reason", t.reason}, {&r.Reference, "reference", t.reference}} {
		var err error
		if *f.dst, err = sealText(key, labelProposal(f.col, id), f.v); err != nil {
			return err
		}
	}
	return nil
}

func openProposal(key *crypt.CaseKey, r proposalRow) (proposalText, error) {
	var t proposalText
	for _, f := range []struct {
		dst *string
		col string
		b   []byte
	}{{&t.title, "title", r.Title}, {&t.product, "product", r.Product}, {&t.reason, "reason", r.Reason}, {&t.reference, "reference", r.Reference}} {
		var err error
		if *f.dst, err = openText(key, labelProposal(f.col, r.ID), f.b); err != nil {
			return t, err
		}
	}
	return t, nil
}

func toProposal(key *crypt.CaseKey, r proposalRow) (Proposal, error) {
	t, err := openProposal(key, r)
	if err != nil {
		return Proposal{}, err
	}
	p := Proposal{ID: r.ID, Edition: r.Edition, MemberOrg: r.MemberOrg, PartyOrg: r.PartyOrg, Subject: r.Subject, Title: t.title,
		Product: t.product, Reason: t.reason, ProposedBy: r.ProposedBy, ProposedAt: r.ProposedAt.UTC(), Status: r.Status, CaseID: r.CaseID}
	if r.ApprovedAt != nil {
		p.Approval = &ProposalApproval{Reference: t.reference, By: r.ApprovedBy, At: r.ApprovedAt.UTC()}
	}
	return p, nil
}

// Propose records a member unit's proposal of a review.
func (s *Service) Propose(ctx context.Context, a Actor, in NewProposal) (Proposal, error) {
	deny := func(code, detail string) (Proposal, error) {
		if err := s.record(ctx, a, "proposal.create", audit.Denied, "", "proposals", "", code); err != nil {
			return Proposal{}, err
		}
		return Proposal{}, fail(ErrForbidden, code, detail)
	}
	if !a.P.Has("member_unit") {
		return deny("forbidden", "only member units of the review mechanism propose reviews")
	}
	ed := s.edition()
	code, err := s.memberCode(ctx, a.P.User.OrgID)
	if err != nil {
		return Proposal{}, err
	}
	if _, listed := ed.Member(code); !listed && code != review.DepartmentMember {
		return deny("not_a_member", fmt.Sprintf("your organisation is not registered as a member unit of the review mechanism (%s)", ed.Art(review.ArtProposal)))
	}
	if !slices.Contains(ed.ProposalSubjects, in.Subject) {
		return Proposal{}, invalid("subject", "invalid_subject", fmt.Sprintf("subject must be one of %s under the %s edition (%s)",
			strings.Join(ed.ProposalSubjects, ", "), ed.ID, ed.Art(review.ArtProposal)))
	}
	party, err := s.access.Org(ctx, in.PartyOrg)
	if errors.Is(err, access.ErrNotFound) || (err == nil && party.Kind != access.OrgKind("operator")) {
		return Proposal{}, invalid("party_org", "invalid_party", "party_org must be an operator organisation")
	}
	if err != nil {
		return Proposal{}, fmt.Errorf("look up party: %w", err)
	}
	title, err := CleanText("title", in.Title, 300, true)
	if err != nil {
		return Proposal{}, err
	}
	product, err := CleanText("product", in.Product, 300, true)
	if err != nil {
		return Proposal{}, err
	}
	reason, err := CleanText("reason", in.Reason, 8000, true)
	if err != nil {
		return Proposal{}, err
	}
	key, err := s.keys.vaultKey(ctx, proposalKey)
	if err != nil {
		return Proposal{}, err
	}
	tagKey, err := s.rowsKey(ctx)
	if err != nil {
		return Proposal{}, err
	}
	row := proposalRow{ID: NewID(), Edition: ed.ID, MemberOrg: a.P.User.OrgID, PartyOrg: party.ID, Subject: in.Subject,
		ProposedBy: a.P.User.ID, ProposedAt: s.now().UTC().Truncate(time.Microsecond), Status: ProposalProposed}
	if err := (proposalText{title: title, product: product, reason: reason}).seal(key, row.ID, &row); err != nil {
		return Proposal{}, err
	}
	row.Tag = proposalTag(tagKey, &row)
	if err := s.record(ctx, a, "proposal.create", audit.Allowed, "", "proposal/"+row.ID, "", in.Subject); err != nil {
		return Proposal{}, err
	}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		s.recordFailure(ctx, a, "proposal.create", "", "proposal/"+row.ID, err)
		return Proposal{}, fmt.Errorf("store proposal: %w", err)
	}
	return toProposal(key, row)
}

// Proposals lists proposals: all for the office, its own organisation's for
// a member unit; a page at a time, oldest first (ids sort by creation
// time). member_org is a column a database administrator can edit: each
// row's tag is checked, and one that fails is listed to no member unit
// and to the office without its member unit and party (logged, counted).
// A page may then hold fewer than limit items with more to come.
//
// status, when not empty, keeps the proposals in that status: "proposed"
// is what awaits the Commission's approval, which the office's home page
// shows.
func (s *Service) Proposals(ctx context.Context, a Actor, status string, limit int, cursor string) (Page[Proposal], error) {
	after, err := decodeIDCursor("proposals", cursor)
	if err != nil {
		return Page[Proposal]{}, err
	}
	limit = pageLimit(limit)
	q := s.db.WithContext(ctx)
	switch {
	case a.P.Has("office_admin"):
	case a.P.Has("member_unit"):
		q = q.Where("member_org = ?", a.P.User.OrgID)
	default:
		if err := s.record(ctx, a, "proposal.list", audit.Denied, "", "proposals", "", "forbidden"); err != nil {
			return Page[Proposal]{}, err
		}
		return Page[Proposal]{}, fail(ErrForbidden, "forbidden", "only the Review Office and member units list proposals")
	}
	if status != "" && status != ProposalProposed && status != ProposalApproved {
		return Page[Proposal]{}, invalid("status", "invalid_field", `status must be "proposed" or "approved"`)
	}
	if after != "" {
		q = q.Where("id > ?", after)
	}
	if status != "" {
		q = q.Where("status = ?", status)
	}
	var rows []proposalRow
	if err := q.Order("id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return Page[Proposal]{}, fmt.Errorf("list proposals: %w", err)
	}
	if err := s.record(ctx, a, "proposal.list", audit.Allowed, "", "proposals", "", ""); err != nil {
		return Page[Proposal]{}, err
	}
	page := Page[Proposal]{Items: make([]Proposal, 0, len(rows))}
	rows, page.NextCursor = idPage("proposals", rows, limit, func(r proposalRow) string { return r.ID })
	if len(rows) == 0 {
		return page, nil
	}
	key, err := s.keys.vaultKey(ctx, proposalKey)
	if err != nil {
		return Page[Proposal]{}, err
	}
	tagKey, err := s.rowsKey(ctx)
	if err != nil {
		return Page[Proposal]{}, err
	}
	chk := tagKey.NewRowTagChecker("proposals")
	office := a.P.Has("office_admin")
	for _, r := range rows {
		if !s.proposalChecked(ctx, chk, &r) {
			if !office {
				continue
			}
			r.MemberOrg, r.PartyOrg = "", ""
		}
		p, err := toProposal(key, r)
		if err != nil {
			return Page[Proposal]{}, err
		}
		page.Items = append(page.Items, p)
	}
	return page, nil
}

// ApproveProposal records the Commission's approval of a proposal (who,
// when, reference) and opens the case on the party's behalf, with a written
// notice to the party in it.
func (s *Service) ApproveProposal(ctx context.Context, a Actor, id string, in ApprovalRequest) (ApprovedProposal, error) {
	resource := "proposal/" + id
	if !a.P.Has("office_admin") {
		if err := s.record(ctx, a, "proposal.approve", audit.Denied, "", resource, "", "forbidden"); err != nil {
			return ApprovedProposal{}, err
		}
		return ApprovedProposal{}, fail(ErrForbidden, "forbidden", "only the Review Office records the Commission's approval")
	}
	var row proposalRow
	err := gorm.ErrRecordNotFound
	if validID(id) {
		err = s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		if err := s.record(ctx, a, "proposal.approve", audit.Denied, "", resource, "", "not_found"); err != nil {
			return ApprovedProposal{}, err
		}
		return ApprovedProposal{}, fail(ErrNotFound, "not_found", "no such proposal")
	}
	if err != nil {
		return ApprovedProposal{}, fmt.Errorf("load proposal %s: %w", id, err)
	}
	tagKey, err := s.rowsKey(ctx)
	if err != nil {
		return ApprovedProposal{}, err
	}
	if !s.proposalChecked(ctx, tagKey.NewRowTagChecker("proposals"), &row) {
		// Its party may be one a database administrator chose: no case
		// is opened for it. Refused as if it did not exist.
		if err := s.record(ctx, a, "proposal.approve", audit.Denied, "", resource, "", "not_found"); err != nil {
			return ApprovedProposal{}, err
		}
		return ApprovedProposal{}, fail(ErrNotFound, "not_found", "no such proposal")
	}
	if _, err := review.EditionByID(row.Edition); err != nil {
		return ApprovedProposal{}, fmt.Errorf("proposal %s: %w", id, err)
	}
	if row.Status != ProposalProposed {
		return ApprovedProposal{}, &Error{Kind: ErrConflict, Code: "already_approved", Detail: "the Commission's approval of this proposal is already recorded"}
	}
	ref, err := CleanText("reference", in.Reference, review.MaxReferenceLen, true)
	if err != nil {
		return ApprovedProposal{}, err
	}
	key, err := s.keys.vaultKey(ctx, proposalKey)
	if err != nil {
		return ApprovedProposal{}, err
	}
	text, err := openProposal(key, row)
	if err != nil {
		return ApprovedProposal{}, err
	}
	text.reference = ref
	sealed := row
	if err := text.seal(key, row.ID, &sealed); err != nil {
		return ApprovedProposal{}, err
	}
	c := Case{ID: NewID(), Title: text.title, Product: text.product, OperatorOrg: row.PartyOrg, Status: StatusDraft,
		Type: review.TypeProcurement, Origin: review.OriginProposal, Proposal: row.ID}
	if row.Subject == "data_processing" {
		c.Type = review.TypeDataProcessing
	}
	// The reference is sealed with the proposal, so the audit event does
	// not carry it.
	if err := s.record(ctx, a, "proposal.approve", audit.Allowed, c.ID, resource, "", ""); err != nil {
		return ApprovedProposal{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	// The approval, the case it opens and the notice it owes the party
	// commit together: approved with no case, the proposal could be neither
	// approved again nor followed, and a notice lost to a crash would leave
	// the party unaware of the review (the notice sweeper writes it).
	approved := row
	approved.Status, approved.ApprovedBy, approved.CaseID = ProposalApproved, a.P.User.ID, c.ID
	cs, err := s.insertCase(ctx, a, c, nil, func(tx *gorm.DB) error {
		// Re-tagged as approved in the same statement: setting it back to
		// proposed in the database makes it refused, not approvable again.
		res := tx.Model(&proposalRow{}).Where("id = ? AND status = ?", row.ID, ProposalProposed).
			Updates(map[string]any{"status": ProposalApproved, "reference": sealed.Reference, "approved_by": a.P.User.ID, "approved_at": now, "case_id": c.ID,
				"tag": proposalTag(tagKey, &approved)})
		if res.Error != nil {
			return fmt.Errorf("approve proposal %s: %w", id, res.Error)
		}
		if res.RowsAffected != 1 {
			return &Error{Kind: ErrConflict, Code: "already_approved", Detail: "the Commission's approval of this proposal is already recorded"}
		}
		return tx.Create(&pendingNoticeRow{CaseID: c.ID, Seq: proposalNoticeSeq, Actor: a.P.User.ID, ActorOrg: a.P.User.OrgID,
			RequestID: a.RequestID, DecidedAt: now}).Error
	})
	if err != nil {
		return ApprovedProposal{}, err
	}
	s.fault(faultAfterDecision)
	row.Status, row.Reference, row.ApprovedBy, row.ApprovedAt, row.CaseID = ProposalApproved, sealed.Reference, a.P.User.ID, &now, c.ID
	if _, err := s.writeProposalNotice(ctx, a, cs); err != nil {
		s.log.ErrorContext(ctx, "proposal notice not written; the notice sweeper retries", "case", c.ID, "proposal", row.ID, "err", err)
	}
	p, err := toProposal(key, row)
	if err != nil {
		return ApprovedProposal{}, err
	}
	return ApprovedProposal{Proposal: p, Case: cs}, nil
}

// proposalNoticeSeq marks, in pending_notices, the notice a case opened on
// a member unit's proposal owes the party: no event of the case (they are
// numbered from 1) takes that decision.
const proposalNoticeSeq = 0

// writeProposalNotice tells the party, in case c, that a review was opened
// on its behalf and what to do, and clears the notice's pending marker in
// the same transaction (errNoticeWritten when it is already gone).
func (s *Service) writeProposalNotice(ctx context.Context, a Actor, c Case) (Material, error) {
	var p proposalRow
	if err := s.db.WithContext(ctx).Where("id = ? AND case_id = ?", c.Proposal, c.ID).Take(&p).Error; err != nil {
		return Material{}, fmt.Errorf("load proposal of case %s: %w", c.ID, err)
	}
	if p.ApprovedAt == nil {
		return Material{}, fmt.Errorf("proposal %s of case %s is not approved", p.ID, c.ID)
	}
	// The notice quotes the proposal: not one edited outside crvault.
	tagKey, err := s.rowsKey(ctx)
	if err != nil {
		return Material{}, err
	}
	if !s.proposalChecked(ctx, tagKey.NewRowTagChecker("proposals"), &p) {
		return Material{}, fmt.Errorf("proposal %s of case %s: %w", p.ID, c.ID, errRowTag)
	}
	ed, err := review.EditionByID(p.Edition)
	if err != nil {
		return Material{}, fmt.Errorf("proposal %s: %w", p.ID, err)
	}
	key, err := s.keys.vaultKey(ctx, proposalKey)
	if err != nil {
		return Material{}, err
	}
	text, err := openProposal(key, p)
	if err != nil {
		return Material{}, err
	}
	on := calendar.Today(*p.ApprovedAt)
	var b strings.Builder
	fmt.Fprintf(&b, "网络安全审查办公室\n%s\n\n", noticeKinds["proposal"])
	fmt.Fprintf(&b, "案件编号：%s\n案件名称：%s\n审查对象：%s（%s）\n", c.ID, c.Title, c.Product, zhSubject[p.Subject])
	fmt.Fprintf(&b, "决定：网络安全审查工作机制成员单位提议对上述%s进行网络安全审查，经中央网络安全和信息化委员会批准（文号 %s），"+
		"网络安全审查办公室已代为立案。请上传申报材料并提交本案。\n", zhSubject[p.Subject], text.reference)
	if ed.RiskMeasures {
		b.WriteString("审查期间，当事人应当按照通知要求采取风险防范和化解措施，并报告落实情况。\n")
	}
	fmt.Fprintf(&b, "日期：%s\n依据：%s%s\n", zhDate(on), ed.TitleZh, ed.ArtZh(review.ArtProposal))
	b.WriteString(englishFollows)
	fmt.Fprintf(&b, "Cybersecurity Review Office - written notice\n\n")
	fmt.Fprintf(&b, "Case: %s\nTitle: %s\nSubject of review: %s (%s)\n", c.ID, c.Title, c.Product, p.Subject)
	fmt.Fprintf(&b, "Decision: A member unit of the cybersecurity review mechanism has proposed a review of the %s named above; "+
		"the Central Cyberspace Affairs Commission approved it (reference %s), and the Review Office has opened this case on your behalf. "+
		"Upload the application materials and submit the case.\n", p.Subject, text.reference)
	if ed.RiskMeasures {
		fmt.Fprintf(&b, "During the review you shall take the risk prevention and mitigation measures the review requires, as notified, and report on them.\n")
	}
	// The date of the day in Beijing, as every notice and deadline counts days.
	fmt.Fprintf(&b, "Date: %s\nLegal basis: %s, %s\n", on, ed.Title, ed.Art(review.ArtProposal))
	body := b.String()
	return s.store(ctx, a, c.ID, "", Upload{Kind: "notice", Filename: noticeKinds["proposal"] + "-" + p.ID + ".txt",
		ContentType: "text/plain; charset=utf-8", Body: strings.NewReader(body), Size: int64(len(body)),
		alsoInTx: clearPendingNotice(c.ID, proposalNoticeSeq)})
}
