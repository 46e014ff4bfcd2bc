package review

import "slices"

// OpinionDue says whether member unit org may give its opinion now, as
// the review's machine decides it (Opinion): in soliciting_opinions,
// or in a special review once its new recommendation is out, when the
// latest recommendation asked org (or, stored before rounds named their
// members, asked anyone) and org has not answered it. The history is the
// unit's own view, which keeps its own opinions: the web offers the opinion
// form on it. It reads the events' own From and Members rather than
// replaying them, since a unit's view lacks the other units' opinions.
func OpinionDue(status Status, org string, history []Event) bool {
	if status != SolicitingOpinions && status != SpecialReview {
		return false
	}
	last := -1
	for i, e := range history {
		if e.Action == Recommend {
			last = i
		}
	}
	if last < 0 {
		return false
	}
	rec := history[last]
	if status == SpecialReview && rec.From != SpecialReview {
		return false // the first round is over; the special review has not asked again yet
	}
	if len(rec.Members) > 0 && !slices.Contains(rec.Members, org) {
		return false
	}
	for _, e := range history[last+1:] {
		switch e.Action {
		case Opinion, RecordOpinion:
			if e.Org == org {
				return false
			}
		case RecordApproval:
			return false
		}
	}
	return true
}
