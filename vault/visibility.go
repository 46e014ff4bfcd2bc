package vault

// Who sees what, in one place (DESIGN.md). The review has an inside (the
// Review Office, the reviewers and member units assigned to the case, and the
// inspectors who watch them) and an outside (the operator and providers who
// filed the case). The outside sees its case's status, the written notices,
// its own filings and the access log of the materials its own organisation
// provided, with every other reader named only by organisation and a stable
// per-case pseudonym ("R3"). Deliberations (assignments, declarations,
// recommendations, member units' votes and comments, complaints of others,
// recusals, inspectors' actions) never leave the inside: not through events,
// audit queries, lists, counts or errors. Inside, each sees its part
// (historyFor, opinionsFor, kindRule.ownUnit, unitDone): a member unit its
// own opinions, an assignee the deliberation's texts on the terms of the
// materials, an inspector who did what and when but not what was said.
//
// The three tables below decide it, one row per material kind, case history
// action and audit action; every route that returns materials, history or
// audit events (JSON today; the web application and exports later) goes
// through the functions of this file. visibility_test.go fails on a kind,
// action or audit action without a row.

import (
	"slices"
	"strings"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault/review"
)

// partyMaterial says how an operator or provider sees a material kind.
type partyMaterial int

const (
	// partyNone: a deliberation; never shown to a party.
	partyNone partyMaterial = iota
	// partyProvided: the organisation that provided it; another party
	// organisation of the case only under the provider's consent (Art. 16).
	partyProvided
	// partyFiler: only the organisation that filed it (a complaint's
	// evidence); no consent can open it to others.
	partyFiler
	// partyAll: every party of the case (the office's written notices).
	partyAll
)

// kindRule is the visibility of one material kind, beyond the case-level
// decision of access.Decide. Inspectors see every material's metadata and
// read none but complaint evidence (enforced by access and OpenContent).
type kindRule struct {
	party partyMaterial
	// staff: office admins and assigned reviewers and member units see it.
	staff bool
	// ownUnit: a member unit sees only its own organisation's, whatever
	// staff says: each unit gives its own opinion (Art. 11, 12).
	ownUnit bool
}

var kindRules = map[string]kindRule{
	"declaration":     {party: partyProvided, staff: true},
	"impact_analysis": {party: partyProvided, staff: true},
	"procurement":     {party: partyProvided, staff: true},
	"other":           {party: partyProvided, staff: true},
	"supplementary":   {party: partyProvided, staff: true},
	// The 2021 listing-abroad application (Art. 7).
	"listing_application": {party: partyProvided, staff: true},
	"recommendation":      {party: partyNone, staff: true},
	"opinion":             {party: partyNone, staff: true, ownUnit: true},
	"notice":              {party: partyAll, staff: true},
	// Evidence against a reviewer is not the reviewers' (or the office's)
	// to see; the filer and the inspectors see it.
	"evidence": {party: partyFiler, staff: false},
}

// historyRule is the visibility of one case history action to the parties:
// the decisions the party is told of in a written notice, and the party's
// own steps. Shown entries carry their reason, items, conditions, findings
// and measures (the notice states them too), never the member units asked
// or answering (Members, Org) nor a vote (Agree), and name the actor by
// pseudonym unless of the caller's own organisation. notFrom hides the
// action when taken from that status (the second recommendation, inside the
// special review, is the review's own step). ownReason keeps the reason
// from the parties, in the history and in the notice: the step is theirs
// to know of, why the office took it is deliberation.
type historyRule struct {
	party     bool
	notFrom   review.Status
	ownReason bool
}

// partyReason says whether the parties may read the reason given with
// action: in the case history and in the written notice.
func partyReason(action review.Action) bool {
	r := historyRules[action]
	return r.party && !r.ownReason
}

var historyRules = map[review.Action]historyRule{
	review.Submit:             {party: true},
	review.MarkIncomplete:     {party: true},
	review.RequireReview:      {party: true},
	review.NotRequiredAction:  {party: true},
	review.Extend:             {party: true},
	review.RequestSupplement:  {party: true},
	review.SupplementItem:     {party: true}, // the party's own upload answering an item
	review.SupplementReceived: {party: true},
	// The review conclusion recommendation is the office's to the member
	// units: the parties learn that it was made, not what it says.
	review.Recommend:      {party: true, notFrom: review.SpecialReview, ownReason: true},
	review.Opinion:        {party: false}, // a member unit's vote and comment
	review.RecordOpinion:  {party: false}, // the same, from the unit's letter
	review.RecordHearing:  {party: false}, // the special review hearing the units concerned
	review.RecordApproval: {party: false}, // the Commission's approval: the conclusion reports it
	review.Conclude:       {party: true},
	review.ExtendSpecial:  {party: true},
	review.RecordMeasures: {party: true},
	review.ReportMeasures: {party: true}, // the party's own report
}

// auditRule is the visibility of one audit action to the parties.
type auditRule int

const (
	// auditNever: deliberation, other organisations' business or the
	// system's own; never shown to a party.
	auditNever auditRule = iota
	// auditOwn: the caller's own organisation's events only.
	auditOwn
	// auditAccessLog: also anyone's event on a material the caller's
	// organisation provided (who read what, when, why), except inspectors'.
	auditAccessLog
	// auditUpload: anyone's upload of a material the caller may see.
	auditUpload
)

var auditRules = map[string]auditRule{
	"auth":                        auditNever,
	"request.invalid_path":        auditNever, // a path naming nothing storable (api's plainParams)
	"request.refused":             auditNever, // a request refused on its form (api's refused)
	"case.create":                 auditOwn,
	"case.read":                   auditOwn,
	"case.list":                   auditOwn,
	"case.submit":                 auditOwn,
	"case.history":                auditOwn,
	"case.clock":                  auditOwn,
	"case.transition":             auditNever, // the decisions reach parties as status, history and notices
	"case.reassignment_requested": auditNever,
	"material.upload":             auditUpload,
	"material.list":               auditOwn,
	// Resumable uploads: the uploader's own steps; the material they make
	// is a material.upload like any other. The janitor's expiry is the
	// system's.
	"upload.create":        auditOwn,
	"upload.read":          auditOwn,
	"upload.list":          auditOwn,
	"upload.chunk":         auditOwn,
	"upload.cancel":        auditOwn,
	"upload.expire":        auditNever,
	"material.meta":        auditAccessLog,
	"supplement.item":      auditOwn, // the party's upload answering a requested item
	"measures.report":      auditOwn,
	"material.read":        auditAccessLog,
	"consent.create":       auditOwn,
	"consent.list":         auditOwn,
	"consent.revoke":       auditOwn,
	"assignment.create":    auditNever,
	"assignment.list":      auditNever,
	"assignment.revoke":    auditNever,
	"assignment.recuse":    auditNever,
	"declaration.create":   auditNever,
	"opinion.create":       auditNever,
	"complaint.create":     auditOwn,
	"complaint.read":       auditOwn,
	"complaint.list":       auditOwn,
	"complaint.status":     auditNever,
	"complaint.resolve":    auditNever,
	"complaint.evidence":   auditNever,
	"commitment.create":    auditOwn,
	"commitment.urge":      auditOwn,
	"commitment.list":      auditOwn,
	"commitment.status":    auditNever, // an inspector's finding
	"member_unit.register": auditNever,
	"member_unit.list":     auditNever,
	"proposal.create":      auditNever, // a member unit's proposal: the review's own
	"proposal.list":        auditNever,
	"proposal.approve":     auditNever, // the party learns of it by the case and its notice
	"deadline.list":        auditNever,
	"deadline.flag":        auditNever,
	"calendar.import":      auditNever,
	"case.retention":       auditNever, // the office\'s view of retention and holds
	"case.legal_hold":      auditNever,
	"case.shred":           auditNever, // retention destroying a case
	"audit.query":          auditOwn,
	"audit.checkpoint":     auditNever,
	"audit.proof":          auditNever,
	"audit.export":         auditNever,
	"audit.append_failed":  auditNever,
	"supervision.workload": auditNever,
	"http.rate_limited":    auditNever,
	"metrics.scrape":       auditNever, // a refused scrape of /metrics: operations, no case
	"case.actions":         auditNever, // the office's view of the steps open to it
	"audit.verify":         auditNever, // an inspector's check of the whole log
	"audit.verify_result":  auditNever, // and what it found
	"web.csrf":             auditNever, // a form refused for its CSRF token, like "auth"
	"access.rows_tagged":   auditNever, // the one-time tagging of access rows at an upgrade
	// The families' actions written today, each with a row of its own so
	// that the pages name it in words (AuditActions); a new one is still
	// covered by its family.
	"session.create":         auditNever,
	"session.delete":         auditNever,
	"session.oidc":           auditNever,
	"totp.enrol_start":       auditNever,
	"totp.enrol":             auditNever,
	"totp.remove":            auditNever,
	"user.create":            auditNever,
	"user.approve":           auditNever,
	"user.disable":           auditNever,
	"user.list":              auditNever,
	"user.password_change":   auditNever,
	"org.create":             auditNever,
	"report.create":          auditNever,
	"report.follow_up":       auditNever,
	"report.message":         auditNever,
	"report.attach":          auditNever,
	"report.attachment.read": auditNever,
	"report.list":            auditNever,
	"report.read":            auditNever,
	"report.status":          auditNever,
	"keys.rotate":            auditNever,
	"keys.rewrap":            auditNever,
	"keys.retire":            auditNever,
	"keys.recover":           auditNever,
	"keys.lost":              auditNever,
	"retention.apply":        auditNever,
	"backup.create":          auditNever,
	"backup.restore":         auditNever,
}

// auditFamilies cover whole families of actions that never concern a case
// (accounts, sessions, reports from the public): a new action of these
// families is hidden from parties without a row of its own.
var auditFamilies = map[string]auditRule{
	"session.":   auditNever,
	"user.":      auditNever,
	"org.":       auditNever,
	"report.":    auditNever,
	"totp.":      auditNever,
	"keys.":      auditNever, // master key rotation and retirement: the system's
	"retention.": auditNever,
	"backup.":    auditNever,
}

// AuditActions lists the audit actions with a row of their own, sorted:
// for pages that name them in words and offer them as a filter.
func AuditActions() []string {
	out := make([]string, 0, len(auditRules))
	for a := range auditRules {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// PartyAuditActions lists, sorted, the audit actions a party may be shown
// (on its access log): the filter of its page offers no other.
func PartyAuditActions() []string {
	var out []string
	for _, a := range AuditActions() {
		if auditRules[a] != auditNever {
			out = append(out, a)
		}
	}
	return out
}

// auditRuleOf is the rule of an action; an action without a row is never
// shown (fail closed), and visibility_test.go makes sure none lacks one.
func auditRuleOf(action string) (auditRule, bool) {
	if r, ok := auditRules[action]; ok {
		return r, true
	}
	for prefix, r := range auditFamilies {
		if strings.HasPrefix(action, prefix) {
			return r, true
		}
	}
	return auditNever, false
}

// partyActions lists the audit actions a party may see some events of, for
// the query that feeds the party's filter.
func partyActions() []string {
	var out []string
	for a, r := range auditRules {
		if r != auditNever {
			out = append(out, a)
		}
	}
	return out
}

// isParty says whether the caller sees the case from outside: an operator or
// a provider. Roles must fit the organisation's kind, so nobody is both a
// party and inside the review.
func isParty(p access.Principal) bool {
	return p.Has(access.RoleOperator) || p.Has(access.RoleProvider)
}

// kindVisible decides a material by its kind and provenance alone. It
// answers needConsent when a party may see it only under its provider's
// consent, which the caller then looks up (consents.go).
func kindVisible(p access.Principal, kind, uploaderOrg string) (visible, needConsent bool) {
	rule, ok := kindRules[kind]
	switch {
	case !ok:
		return false, false
	case p.Has(access.RoleInspector):
		return true, false
	case isParty(p):
		if uploaderOrg == p.User.OrgID {
			return rule.party != partyNone, false
		}
		switch rule.party {
		case partyAll:
			return true, false
		case partyProvided:
			return false, true
		}
		return false, false
	}
	if rule.ownUnit && p.Has(access.RoleMemberUnit) {
		return uploaderOrg == p.User.OrgID, false
	}
	return rule.staff || uploaderOrg == p.User.OrgID, false
}

// historyFor filters and renames a case's history for the caller; mayRead
// says whether an assignee may read the case's materials now (declared no
// conflict; for a member unit, the case not yet concluded).
//   - A party sees the rows its rule shows, renumbered so hidden entries
//     leave no gap, with other organisations' actors as pseudonyms.
//   - The office's admins see it whole; its reviewers too when mayRead,
//     and before that the rows without the deliberation's texts (the
//     reasons the parties are not told), on the terms of the materials.
//   - Each unit gives its own opinion (Art. 11, 12): a member unit sees its
//     own opinions and none of its peers' votes, comments or accounts,
//     renumbered like a party's view, and the deliberation's texts only
//     when mayRead.
//   - Inspectors watch who did what and when; what the deliberation said is
//     as much theirs to read as the opinion documents they are refused, so
//     they get every row without those texts.
func historyFor(p access.Principal, h []review.Event, names func(string) string, mayRead bool) []review.Event {
	switch {
	case isParty(p):
		return partyHistory(h, names)
	case p.Has(access.RoleOfficeAdmin) || p.Has(access.RoleReviewer) && mayRead:
		return h
	case p.Has(access.RoleReviewer):
		// Assigned, not yet declared (or suspended): the rows, not the
		// texts, on the terms of the materials.
		return withoutDeliberationText(h)
	case p.Has(access.RoleMemberUnit):
		out := make([]review.Event, 0, len(h))
		for _, e := range h {
			own := e.Org != "" && e.Org == p.User.OrgID
			if (e.Action == review.Opinion || e.Action == review.RecordOpinion) && !own {
				continue
			}
			if !own && !mayRead && !partyReason(e.Action) {
				e.Reason = ""
			}
			e.Seq = len(out) + 1
			out = append(out, e)
		}
		return out
	}
	// An inspector, or any other role that may read the case: the rows
	// without the deliberation's texts (fail closed).
	return withoutDeliberationText(h)
}

// withoutDeliberationText is h without the reasons the parties are not
// told: a recommendation's, a member unit's comment, a hearing's summary.
func withoutDeliberationText(h []review.Event) []review.Event {
	out := make([]review.Event, len(h))
	for i, e := range h {
		if !partyReason(e.Action) {
			e.Reason = ""
		}
		out[i] = e
	}
	return out
}

// unitDone says the review no longer needs the member unit p: the case is
// concluded or was found not to need review. A unit is asked for its
// opinion (Art. 11-13); once the review is over it has no use for the
// case's materials, whatever end the office gave its assignment, except
// its own organisation's filings. Reviewers stay, for the measures a
// conclusion may require (2021 Art. 16).
func unitDone(p access.Principal, status string) bool {
	return p.Has(access.RoleMemberUnit) && (status == string(review.Concluded) || status == string(review.NotRequired))
}

// partyHistory is historyFor for an operator or provider.
func partyHistory(h []review.Event, names func(string) string) []review.Event {
	out := make([]review.Event, 0, len(h))
	for _, e := range h {
		rule := historyRules[e.Action]
		if !rule.party || rule.notFrom != "" && e.From == rule.notFrom {
			continue
		}
		e.Agree, e.Org, e.Members = nil, "", nil
		if !partyReason(e.Action) {
			e.Reason = ""
		}
		e.Actor = names(e.Actor)
		e.Seq = len(out) + 1
		out = append(out, e)
	}
	return out
}

// opinionsFor is the clock's table of member units' answers for the
// caller: the parties see none, a member unit its own rows, the office and
// the inspectors (who watch the units' deadlines) all of them.
func opinionsFor(p access.Principal, ops []review.MemberOpinion) []review.MemberOpinion {
	switch {
	case isParty(p):
		return []review.MemberOpinion{}
	case p.Has(access.RoleOfficeAdmin) || p.Has(access.RoleReviewer) || p.Has(access.RoleInspector):
		return ops
	}
	out := []review.MemberOpinion{}
	for _, o := range ops {
		if o.Org != "" && o.Org == p.User.OrgID {
			out = append(out, o)
		}
	}
	return out
}

// providersFor is the list of a case's providers the caller is shown. The
// other suppliers in the same procurement are commercially sensitive to
// each other (Art. 16) and a provider has no need to know them: a provider
// sees only its own organisation among them.
func providersFor(p access.Principal, providers []string) []string {
	if !p.Has(access.RoleProvider) || p.Has(access.RoleOperator) {
		return providers
	}
	out := []string{}
	for _, org := range providers {
		if org == p.User.OrgID {
			out = append(out, org)
		}
	}
	return out
}
