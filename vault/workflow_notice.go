package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault/review"
)

// noticeText says, for each decision the party is told of in writing, what
// the notice says and on which provision it rests; the article numbers come
// from the case's edition. Steps internal to the review mechanism (hearings,
// the second recommendation, the Commission's approval, a single item
// arriving) give no notice of their own: the conclusion reports them.
var noticeText = map[review.Action]struct {
	decision string
	basis    []review.Article
}{
	review.RequireReview:      {"The application requires a cybersecurity review; the preliminary review has begun.", []review.Article{review.ArtDetermination}},
	review.NotRequiredAction:  {"The application does not require a cybersecurity review.", []review.Article{review.ArtDetermination}},
	review.MarkIncomplete:     {"The application materials are incomplete. The period for deciding whether a review is required runs from the day the materials listed below are complete.", []review.Article{review.ArtMaterials, review.ArtDetermination}},
	review.Extend:             {"The preliminary review has been extended because the situation is complex.", []review.Article{review.ArtPreliminary}},
	review.RequestSupplement:  {"Supplementary materials are requested; the review period is suspended from the day after this notice until the last of them is received.", []review.Article{review.ArtSupplements}},
	review.SupplementReceived: {"The supplementary materials request is closed; the review period resumes the day after.", []review.Article{review.ArtSupplements}},
	review.Opinion:            {"The member units' opinions on the review conclusion recommendation are not unanimous; the case enters the special review procedure.", []review.Article{review.ArtOpinions, review.ArtSpecial}},
	review.RecordOpinion:      {"The member units' opinions on the review conclusion recommendation are not unanimous; the case enters the special review procedure.", []review.Article{review.ArtOpinions, review.ArtSpecial}},
	review.ExtendSpecial:      {"The special review procedure has been extended because the situation is complex.", []review.Article{review.ArtSpecialDuration}},
	review.RecordMeasures:     {"During the review the party shall take the risk prevention and mitigation measures listed below and report on them.", []review.Article{review.ArtProposal}},
}

// systemActor is the vault itself acting on a's request (same request id),
// for what no person should be named as the author of.
func systemActor(a Actor) Actor {
	return Actor{P: access.Principal{User: access.User{ID: "system"}}, RequestID: a.RequestID}
}

// noticeOf is what the written notice of ev says and on which provisions it
// rests; text is "" when the event gives the party no notice.
func noticeOf(ev review.Event) (text string, basis []review.Article) {
	text, basis = noticeText[ev.Action].decision, noticeText[ev.Action].basis
	switch {
	case (ev.Action == review.Opinion || ev.Action == review.RecordOpinion) && (ev.From != review.SolicitingOpinions || ev.To != review.SpecialReview):
		// Only the disagreement that starts the special review, whether the
		// unit gave it in crvault or the office recorded its letter.
		return "", nil
	case ev.Action == review.Conclude:
		text, basis = "The cybersecurity review is concluded.", []review.Article{review.ArtFactors, review.ArtOpinions}
		if ev.From == review.SpecialReview {
			basis = []review.Article{review.ArtFactors, review.ArtSpecial, review.ArtSpecialDuration}
		}
	case ev.Action == review.Recommend && ev.From == review.UnderReview:
		text, basis = "The preliminary review has produced a review conclusion recommendation, now sent to the member units for their opinions.",
			[]review.Article{review.ArtPreliminary, review.ArtOpinions}
	case ev.Action == review.SupplementReceived && ev.Role != review.RoleOfficeAdmin:
		text = "The last of the requested supplementary materials has been received; the review period resumes the day after."
	}
	return text, basis
}

// noticeAuthor is who the notice of ev, decided by a for purpose, is
// attributed to, and under which purpose it is stored.
func noticeAuthor(a Actor, purpose string, ev review.Event) (Actor, string) {
	if ev.Role != review.RoleOfficeAdmin {
		// The notice is the office's, written by the system. Attributed to
		// the member unit whose opinion completed the round, it would tell
		// the parties who voted how (visibility.go); attributed to the
		// party whose upload brought in the last supplement, it would be
		// the party's material (offered for consent, listed in the access
		// log as the party's upload).
		return systemActor(a), ""
	}
	return a, purpose
}

// pendingNotices are the markers of the notices evs owe, decided by a for
// purpose: appendEvents inserts them with the events.
func pendingNotices(a Actor, purpose, caseID string, evs []review.Event) []pendingNoticeRow {
	var out []pendingNoticeRow
	for _, ev := range evs {
		if text, _ := noticeOf(ev); text == "" {
			continue
		}
		by, p := noticeAuthor(a, purpose, ev)
		out = append(out, pendingNoticeRow{CaseID: caseID, Seq: ev.Seq, Actor: by.P.User.ID, ActorOrg: by.P.User.OrgID,
			Purpose: p, RequestID: by.RequestID, DecidedAt: ev.At})
	}
	return out
}

// errNoticeWritten: another writer (the request, or the sweeper on another
// instance) stored the notice first; this one is dropped.
var errNoticeWritten = &Error{Kind: ErrConflict, Code: "notice_already_written", Detail: "the written notice of this decision is already stored"}

// notify writes the written notice that the decision res took on case c
// owes the party, right after the decision committed; the notice is
// attributed as noticeAuthor says. A notice that fails to store is logged
// and audited as an error and the answer simply carries no notice: its
// pending marker stays, and the notice sweeper writes it later
// (WritePendingNotices).
func (s *Service) notify(ctx context.Context, a Actor, c Case, purpose string, res TransitionResult) *Material {
	if !res.noticeDue {
		return nil
	}
	by, purpose := noticeAuthor(a, purpose, res.Event)
	m, err := s.writeNotice(ctx, by, c, purpose, res.Event.Seq)
	if err != nil {
		s.log.ErrorContext(ctx, "notice not written; the notice sweeper retries", "case", c.ID, "action", string(res.Event.Action),
			"request_id", a.RequestID, "err", err)
		return nil
	}
	return &m
}

// writeNotice writes the written notice of the decision recorded as event
// seq of the case as a `notice` material, encrypted like every other,
// attributed to a, and clears the decision's pending marker in the same
// transaction: errNoticeWritten when the marker is already gone. The notice
// describes the case as the decision left it, whenever it is written.
func (s *Service) writeNotice(ctx context.Context, a Actor, row Case, purpose string, seq int) (Material, error) {
	history, err := s.history(ctx, row.ID)
	if err != nil {
		return Material{}, err
	}
	if seq < 1 || seq > len(history) {
		return Material{}, fmt.Errorf("notice of event %d of case %s: %w", seq, row.ID, review.ErrBadHistory)
	}
	// Later events do not belong in it (the clock, for one, moves on).
	history = history[:seq]
	ev := history[seq-1]
	ed, err := review.EditionOf(history)
	if err != nil {
		return Material{}, err
	}
	if ed == nil {
		return Material{}, fmt.Errorf("notice of event %d of case %s: no edition: %w", ev.Seq, row.ID, review.ErrBadHistory)
	}
	text, basis := noticeOf(ev)
	if text == "" {
		return Material{}, fmt.Errorf("notice of event %d (%s) of case %s: the event gives no notice", ev.Seq, ev.Action, row.ID)
	}
	var clk *review.Clock
	if cal, err := s.calendar(ctx); err == nil {
		if c, err := review.DeriveClock(cal, history, ev.On); err == nil && c.Phase != review.PhaseClosed && c.Phase != review.PhaseNone {
			clk = &c
		}
	}
	var b strings.Builder
	writeNoticeZh(&b, ed, row, history, ev, basis, clk)
	b.WriteString(englishFollows)
	fmt.Fprintf(&b, "Cybersecurity Review Office - written notice\n\n")
	fmt.Fprintf(&b, "Case: %s\nTitle: %s\nProduct: %s\n", row.ID, row.Title, row.Product)
	fmt.Fprintf(&b, "Decision: %s\nAction: %s\nStatus: %s -> %s\nDate: %s\n", text, ev.Action, ev.From, ev.To, ev.On)
	if ev.Days > 0 {
		fmt.Fprintf(&b, "Working days added: %d\n", ev.Days)
	}
	if ev.Reason != "" && partyReason(ev.Action) {
		// Not a member unit's comment, nor the office's reasons for its
		// recommendation: both are internal to the review mechanism.
		fmt.Fprintf(&b, "Reason: %s\n", ev.Reason)
	}
	writeNumbered(&b, "Materials requested (upload each as a supplementary material naming its number):\n", firstItem(history, ev), ev.Items)
	writeNumbered(&b, "Measures required:\n", measureNo(history, ev), ev.Measures)
	if ev.Action == review.Conclude {
		writeConclusion(&b, ed, history, ev)
	}
	if c := clk; c != nil {
		writePeriod(&b, c)
	}
	arts := make([]string, len(basis))
	for i, a := range basis {
		arts[i] = ed.Art(a)
	}
	fmt.Fprintf(&b, "Legal basis: %s, %s\n", ed.Title, strings.Join(arts, ", "))
	body := b.String()
	return s.store(ctx, a, row.ID, purpose, Upload{Kind: "notice", Filename: noticeFilename(ev.Action, ev.On),
		ContentType: "text/plain; charset=utf-8", Body: strings.NewReader(body), Size: int64(len(body)),
		alsoInTx: clearPendingNotice(row.ID, ev.Seq)})
}

// writePeriod is the notice's line on the review period, in English. It
// prints no date that cannot hold: while the materials are incomplete the
// period has not begun (2021 Art. 9), and while the clock is stopped for
// supplements its due date is only the earliest one, moved later by every
// working day the stop lasts.
func writePeriod(b *strings.Builder, c *review.Clock) {
	if c.MaterialsIncomplete {
		fmt.Fprintf(b, "Review period: %s, %d working days from the day the application materials are complete\n", c.Phase, c.AllowedWorkingDays)
		return
	}
	fmt.Fprintf(b, "Review period: %s, started %s, %d working days", c.Phase, c.StartedOn, c.AllowedWorkingDays)
	if c.Paused {
		b.WriteString(", suspended")
	}
	moves := c.Paused && !c.DueFixed()
	if !c.DueOn.IsZero() {
		if moves {
			fmt.Fprintf(b, "; due at the earliest %s", c.DueOn)
		} else {
			fmt.Fprintf(b, ", due %s", c.DueOn)
		}
		if c.DueOnProvisional {
			b.WriteString(" (provisional: the official holiday schedule for that period is not yet published; the date will be recomputed when it is)")
		}
		switch {
		case moves:
			b.WriteString(", one working day later for each working day the suspension lasts")
		case c.Paused:
			b.WriteString(", passed before the suspension began, which does not move it")
		}
	}
	b.WriteString("\n")
}

// clearPendingNotice deletes the pending marker of the notice stored in the
// same transaction: errNoticeWritten, which aborts it, when another writer
// got there first.
func clearPendingNotice(caseID string, seq int) func(tx *gorm.DB) error {
	return func(tx *gorm.DB) error {
		res := tx.Where("case_id = ? AND seq = ?", caseID, seq).Delete(&pendingNoticeRow{})
		if res.Error != nil {
			return fmt.Errorf("clear pending notice of case %s: %w", caseID, res.Error)
		}
		if res.RowsAffected != 1 {
			return errNoticeWritten
		}
		return nil
	}
}

// noticeGrace is how long the notice sweeper leaves a pending notice to the
// request that took the decision, which writes it moments after the commit
// unless it died first. Were both to write it, one would still lose
// (writeNotice), at the cost of a blob sealed for nothing.
const noticeGrace = 30 * time.Second

// WritePendingNotices writes the written notices that decisions committed
// more than noticeGrace ago still owe the party: the request that took the
// decision died (or its instance crashed, or the store failed) after the
// commit and before the notice was stored. Each is written exactly once:
// the notice's material row and the deletion of its marker commit
// together, so one written meanwhile by another writer is dropped, not
// doubled. A notice is attributed as the request would have attributed
// it, under that request's id. It returns how many it wrote; one that fails
// stays pending for the next run. The leader runs it with the periodic jobs.
func (s *Service) WritePendingNotices(ctx context.Context) (int, error) {
	cutoff := s.now().UTC().Add(-noticeGrace)
	n := 0
	var errs []error
	var after *pendingNoticeRow
	for {
		q := s.db.WithContext(ctx).Where("decided_at < ?", cutoff)
		if after != nil {
			q = q.Where("(case_id, seq) > (?, ?)", after.CaseID, after.Seq)
		}
		var rows []pendingNoticeRow
		if err := q.Order("case_id, seq").Limit(200).Find(&rows).Error; err != nil {
			return n, errors.Join(append(errs, fmt.Errorf("list pending notices: %w", err))...)
		}
		for i, p := range rows {
			after = &rows[i]
			wrote, err := s.writePending(ctx, p)
			if err != nil {
				if ctx.Err() != nil {
					return n, ctx.Err()
				}
				s.log.ErrorContext(ctx, "pending notice not written; retried next run", "case", p.CaseID, "seq", p.Seq, "err", err)
				errs = append(errs, fmt.Errorf("notice of event %d of case %s: %w", p.Seq, p.CaseID, err))
				continue
			}
			if wrote {
				n++
				s.log.InfoContext(ctx, "pending notice written", "case", p.CaseID, "seq", p.Seq, "request_id", p.RequestID)
			}
		}
		if len(rows) < 200 {
			return n, errors.Join(errs...)
		}
	}
}

// writePending writes one pending notice; false when there was nothing
// (left) to write.
func (s *Service) writePending(ctx context.Context, p pendingNoticeRow) (bool, error) {
	var row caseRow
	err := s.db.WithContext(ctx).Where("id = ?", p.CaseID).Take(&row).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return false, fmt.Errorf("load case: %w", err)
	}
	if err != nil || row.ShreddedAt != nil {
		// No case, or no key to seal a notice with: nothing can be written.
		s.log.WarnContext(ctx, "pending notice dropped: the case is gone or shredded", "case", p.CaseID, "seq", p.Seq)
		return false, s.db.WithContext(ctx).Where("case_id = ? AND seq = ?", p.CaseID, p.Seq).Delete(&pendingNoticeRow{}).Error
	}
	c, err := s.openCase(ctx, row, nil)
	if err != nil {
		return false, err
	}
	by := Actor{P: access.Principal{User: access.User{ID: p.Actor, OrgID: p.ActorOrg}}, RequestID: p.RequestID}
	if p.Seq == proposalNoticeSeq {
		_, err = s.writeProposalNotice(ctx, by, c)
	} else {
		_, err = s.writeNotice(ctx, by, c, p.Purpose, p.Seq)
	}
	if errors.Is(err, errNoticeWritten) {
		return false, nil
	}
	if ve := (*Error)(nil); errors.As(err, &ve) && ve.Code == "case_status_damaged" {
		// The case's history fails its tags: the check that refused it
		// logged it at ERROR and counted it, once this run. The notice
		// stays pending, to be written once the history is restored, but
		// is no failure of the run, which would report it again every
		// minute as one to retry.
		s.log.WarnContext(ctx, "pending notice held: the case's history does not authenticate", "case", p.CaseID, "seq", p.Seq)
		return false, nil
	}
	return err == nil, err
}

// writeConclusion is the structured part of a conclusion notice: outcome,
// conditions, each factor weighed with its finding, and, after a special
// review, the Commission's approval.
func writeConclusion(b *strings.Builder, ed *review.Edition, history []review.Event, ev review.Event) {
	outcome := map[string]string{
		review.OutcomePassed:               "passed",
		review.OutcomeNotPassed:            "not passed",
		review.OutcomePassedWithConditions: "passed with conditions",
	}[ev.Outcome]
	if outcome != "" {
		fmt.Fprintf(b, "Outcome: %s\n", outcome)
	}
	writeNumbered(b, "Conditions:\n", 1, ev.Conditions)
	for i, f := range ev.Factors {
		if i == 0 {
			fmt.Fprintf(b, "Factors weighed (%s):\n", ed.Art(review.ArtFactors))
		}
		fac, _ := ed.Factor(f.Factor)
		fmt.Fprintf(b, "  %s(%d) %s: %s\n", ed.Art(review.ArtFactors), fac.Item, fac.Text, f.Finding)
	}
	if ev.From == review.SpecialReview {
		for _, e := range history {
			if e.Action == review.RecordApproval {
				fmt.Fprintf(b, "Approved by the Central Cyberspace Affairs Commission: reference %s, recorded %s\n", e.Reference, e.On)
			}
		}
	}
}

// writeNoticeZh is the Chinese text of the notice of ev, which comes
// first: the same facts as the English text after it, in the words and
// dates of Chinese official letters.
func writeNoticeZh(b *strings.Builder, ed *review.Edition, row Case, history []review.Event, ev review.Event, basis []review.Article, clk *review.Clock) {
	fmt.Fprintf(b, "网络安全审查办公室\n%s\n\n", noticeKinds[noticeKey(ev.Action)])
	fmt.Fprintf(b, "案件编号：%s\n案件名称：%s\n产品或服务：%s\n", row.ID, row.Title, row.Product)
	fmt.Fprintf(b, "决定：%s\n状态：%s → %s\n日期：%s\n", zhDecision(ev), zhStatus[ev.From], zhStatus[ev.To], zhDate(ev.On))
	if ev.Days > 0 {
		fmt.Fprintf(b, "增加工作日：%d个\n", ev.Days)
	}
	if ev.Reason != "" && partyReason(ev.Action) {
		fmt.Fprintf(b, "理由：%s\n", ev.Reason)
	}
	writeNumbered(b, "请补充的材料（每项作为“补充材料”上传，并注明其序号）：\n", firstItem(history, ev), ev.Items)
	writeNumbered(b, "须采取的措施：\n", measureNo(history, ev), ev.Measures)
	if ev.Action == review.Conclude {
		if o := zhOutcome[ev.Outcome]; o != "" {
			fmt.Fprintf(b, "审查结论：%s\n", o)
		}
		writeNumbered(b, "附加条件：\n", 1, ev.Conditions)
		for i, f := range ev.Factors {
			if i == 0 {
				fmt.Fprintf(b, "考虑的因素（%s）：\n", ed.ArtZh(review.ArtFactors))
			}
			fac, _ := ed.Factor(f.Factor)
			fmt.Fprintf(b, "  %s第（%s）项：%s\n", ed.ArtZh(review.ArtFactors), review.ZhNumber(fac.Item), f.Finding)
		}
		if ev.From == review.SpecialReview {
			for _, e := range history {
				if e.Action == review.RecordApproval {
					fmt.Fprintf(b, "经中央网络安全和信息化委员会批准：文号 %s，记录于%s\n", e.Reference, zhDate(e.On))
				}
			}
		}
	}
	if c := clk; c != nil {
		writePeriodZh(b, c)
	}
	fmt.Fprintf(b, "依据：%s%s\n", ed.TitleZh, zhArts(ed, basis))
}

// writePeriodZh is writePeriod in Chinese.
func writePeriodZh(b *strings.Builder, c *review.Clock) {
	if c.MaterialsIncomplete {
		fmt.Fprintf(b, "审查期限：%s，%d个工作日，自申报材料补齐之日起计算\n", zhPhase[c.Phase], c.AllowedWorkingDays)
		return
	}
	fmt.Fprintf(b, "审查期限：%s，自%s起，%d个工作日", zhPhase[c.Phase], zhDate(c.StartedOn), c.AllowedWorkingDays)
	if c.Paused {
		b.WriteString("，现暂停计算")
	}
	moves := c.Paused && !c.DueFixed()
	if !c.DueOn.IsZero() {
		if moves {
			fmt.Fprintf(b, "；最早于%s届满", zhDate(c.DueOn))
		} else {
			fmt.Fprintf(b, "，%s届满", zhDate(c.DueOn))
		}
		if c.DueOnProvisional {
			b.WriteString("（暂定：该期间的法定节假日安排尚未公布，公布后将重新计算）")
		}
		switch {
		case moves:
			b.WriteString("，暂停期间每经过一个工作日相应顺延一个工作日")
		case c.Paused:
			b.WriteString("，暂停计算前已届满，不因暂停而顺延")
		}
	}
	b.WriteString("\n")
}

// firstItem is the number of the first item ev requested.
func firstItem(history []review.Event, ev review.Event) int {
	n := 1
	for _, e := range history {
		if e.Seq >= ev.Seq {
			break
		}
		n += len(e.Items)
	}
	return n
}

// measureNo is the number of the first measure ev recorded.
func measureNo(history []review.Event, ev review.Event) int {
	n := 1
	for _, e := range history {
		if e.Seq >= ev.Seq {
			break
		}
		n += len(e.Measures)
	}
	return n
}

// writeNumbered writes items as a list numbered from first under heading,
// or nothing when there are none: the notices' requested materials,
// measures and conditions, in either language.
func writeNumbered(b *strings.Builder, heading string, first int, items []string) {
	for i, it := range items {
		if i == 0 {
			b.WriteString(heading)
		}
		fmt.Fprintf(b, "  %d. %s\n", first+i, it)
	}
}
