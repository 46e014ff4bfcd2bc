package vault

import (
	"context"
	"fmt"
	"strings"

	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// noticeText says, for each decision, what the written notice (Art. 8, 11,
// 12) tells the applicant and on which article it rests.
var noticeText = map[review.Action]struct{ decision, basis string }{
	review.RequireReview:      {"The application requires a cybersecurity review; the preliminary review has begun.", "Art. 8"},
	review.NotRequiredAction:  {"The application does not require a cybersecurity review.", "Art. 8"},
	review.Extend:             {"The preliminary review has been extended by 15 working days because the situation is complex.", "Art. 10"},
	review.RequestSupplement:  {"Supplementary materials are requested; the review period is suspended until they are received.", "Art. 14"},
	review.SupplementReceived: {"The supplementary materials have been received; the review period resumes.", "Art. 14"},
	review.Recommend:          {"The preliminary review has produced a review conclusion recommendation, now sent to the member units for their opinions.", "Art. 10, Art. 11"},
	review.Opinion:            {"A member unit disagreed with the review conclusion recommendation; the case enters the special review procedure.", "Art. 12"},
	review.ExtendSpecial:      {"The special review procedure has been extended because the situation is complex.", "Art. 13"},
}

// notify writes the notice of a decision as a `notice` material, encrypted
// like every other, attributed to the user who took the decision. The
// decision is already committed; a notice that fails to store is logged and
// audited as an error, and the answer simply carries no notice.
func (s *Service) notify(ctx context.Context, a Actor, row caseRow, purpose string, ev review.Event) *Material {
	text, basis := noticeText[ev.Action].decision, noticeText[ev.Action].basis
	if ev.Action == review.Conclude {
		text, basis = "The cybersecurity review is concluded.", "Art. 11"
		if ev.From == review.SpecialReview {
			basis = "Art. 12, Art. 13"
		}
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
	if ev.Reason != "" && ev.Action != review.Opinion {
		// A member unit's comment is internal to the review mechanism.
		fmt.Fprintf(&b, "Reason: %s\n", ev.Reason)
	}
	if cal, err := s.calendar(ctx); err == nil {
		if h, err := s.history(ctx, row.ID); err == nil {
			if c, err := review.DeriveClock(cal, h, ev.On); err == nil && c.Phase != review.PhaseClosed && c.Phase != review.PhaseNone {
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
	}
	fmt.Fprintf(&b, "Legal basis: Cybersecurity Review Measures (2020), %s\n", basis)
	body := b.String()
	m, err := s.store(ctx, a, row.ID, purpose, Upload{Kind: "notice", Filename: noticeFilename(ev.Action, ev.On),
		ContentType: "text/plain; charset=utf-8", Body: strings.NewReader(body), Size: int64(len(body))})
	if err != nil {
		s.log.ErrorContext(ctx, "notice not stored", "case", row.ID, "action", string(ev.Action), "request_id", a.RequestID, "err", err)
		return nil
	}
	return &m
}

func noticeFilename(a review.Action, on calendar.Date) string {
	name := string(a)
	if a == review.Opinion {
		name = "special_review"
	}
	return fmt.Sprintf("notice-%s-%s.txt", name, on)
}
