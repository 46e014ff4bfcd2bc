package vault

import (
	"context"
	"fmt"
	"strings"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault/calendar"
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
	review.ExtendSpecial:      {"The special review procedure has been extended because the situation is complex.", []review.Article{review.ArtSpecialDuration}},
	review.RecordMeasures:     {"During the review the party shall take the risk prevention and mitigation measures listed below and report on them.", []review.Article{review.ArtProposal}},
}

// systemActor is the vault itself acting on a's request (same request id),
// for what no person should be named as the author of.
func systemActor(a Actor) Actor {
	return Actor{P: access.Principal{User: access.User{ID: "system"}}, RequestID: a.RequestID}
}

// notify writes the written notice of a decision as a `notice` material,
// encrypted like every other, attributed to the user who took the decision
// (or the system, see Opinion). The decision is already committed; a notice
// that fails to store is logged and audited as an error, and the answer
// simply carries no notice.
func (s *Service) notify(ctx context.Context, a Actor, row Case, purpose string, ev review.Event) *Material {
	history, err := s.history(ctx, row.ID)
	if err != nil {
		s.log.ErrorContext(ctx, "notice not written", "case", row.ID, "action", string(ev.Action), "err", err)
		return nil
	}
	ed, err := review.EditionOf(history)
	if err != nil || ed == nil {
		s.log.ErrorContext(ctx, "notice not written", "case", row.ID, "action", string(ev.Action), "err", err)
		return nil
	}
	text, basis := noticeText[ev.Action].decision, noticeText[ev.Action].basis
	switch {
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
	if text == "" {
		return nil
	}
	var b strings.Builder
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
	for i, it := range ev.Items {
		if i == 0 {
			b.WriteString("Materials requested (upload each as a supplementary material naming its number):\n")
		}
		fmt.Fprintf(&b, "  %d. %s\n", firstItem(history, ev)+i, it)
	}
	for i, m := range ev.Measures {
		if i == 0 {
			b.WriteString("Measures required:\n")
		}
		fmt.Fprintf(&b, "  %d. %s\n", measureNo(history, ev)+i, m)
	}
	if ev.Action == review.Conclude {
		writeConclusion(&b, ed, history, ev)
	}
	if cal, err := s.calendar(ctx); err == nil {
		if c, err := review.DeriveClock(cal, history, ev.On); err == nil && c.Phase != review.PhaseClosed && c.Phase != review.PhaseNone {
			fmt.Fprintf(&b, "Review period: %s, started %s, %d working days", c.Phase, c.StartedOn, c.AllowedWorkingDays)
			if !c.DueOn.IsZero() {
				fmt.Fprintf(&b, ", due %s", c.DueOn)
				if c.DueOnProvisional {
					b.WriteString(" (provisional: the official holiday schedule for that period is not yet published; the date will be recomputed when it is)")
				}
			}
			if c.Paused {
				b.WriteString(", suspended")
			}
			b.WriteString("\n")
		}
	}
	arts := make([]string, len(basis))
	for i, a := range basis {
		arts[i] = ed.Art(a)
	}
	fmt.Fprintf(&b, "Legal basis: %s, %s\n", ed.Title, strings.Join(arts, ", "))
	body := b.String()
	m, err := s.store(ctx, a, row.ID, purpose, Upload{Kind: "notice", Filename: noticeFilename(ev.Action, ev.On),
		ContentType: "text/plain; charset=utf-8", Body: strings.NewReader(body), Size: int64(len(body))})
	if err != nil {
		s.log.ErrorContext(ctx, "notice not stored", "case", row.ID, "action", string(ev.Action), "request_id", a.RequestID, "err", err)
		return nil
	}
	return &m
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
	for i, c := range ev.Conditions {
		if i == 0 {
			b.WriteString("Conditions:\n")
		}
		fmt.Fprintf(b, "  %d. %s\n", i+1, c)
	}
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

func noticeFilename(a review.Action, on calendar.Date) string {
	name := string(a)
	if a == review.Opinion {
		name = "special_review"
	}
	return fmt.Sprintf("notice-%s-%s.txt", name, on)
}
