package vault

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// editionStarts are days on which a filing falls under each edition: the
// 2020 edition governs cases filed before 2022-02-15.
var editionStarts = map[string]time.Time{
	"2020": time.Date(2021, 6, 1, 2, 0, 0, 0, time.UTC),
	"2021": time.Date(2025, 6, 2, 2, 0, 0, 0, time.UTC),
}

func (f *wfFixture) submit(id string) Case {
	f.t.Helper()
	c, err := f.svc.Submit(f.ctx, f.op, id)
	if err != nil {
		f.t.Fatalf("submit: %v", err)
	}
	return c
}

// toRecommend brings a submitted case to soliciting_opinions with u1 and
// u2's organisations asked.
func (f *wfFixture) toRecommend(id string) {
	f.t.Helper()
	f.mustMove(id, "require_review", "", 0)
	f.assign(id, f.rev, "reviewer")
	f.upload(f.rev, id, "recommendation")
	f.assign(id, f.u1, "member_unit")
	f.assign(id, f.u2, "member_unit")
	f.mustMove(id, "recommend", "", 0)
}

// TestEditionFixedAtSubmission: a case records the edition in force on its
// filing day, in its row and its submit event, and keeps it; a pinned
// edition overrides the date.
func TestEditionFixedAtSubmission(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2022, 2, 14, 2, 0, 0, 0, time.UTC), false)
			old := f.draft()
			if c := f.submit(old); c.Edition != "2020" {
				t.Fatalf("filed 2022-02-14: edition %q", c.Edition)
			}
			f.at("2022-02-15")
			fresh := f.draft()
			if c, _ := f.svc.GetCase(f.ctx, f.op, fresh); c.Edition != "" {
				t.Fatalf("a draft has edition %q", c.Edition)
			}
			if c := f.submit(fresh); c.Edition != "2021" {
				t.Fatalf("filed 2022-02-15: edition %q", c.Edition)
			}
			// Years later the old case still follows 2020.
			f.at("2026-03-02")
			if c, _ := f.svc.GetCase(f.ctx, f.op, old); c.Edition != "2020" {
				t.Fatalf("edition changed to %q", c.Edition)
			}
			if c := f.clockOf(old); c.Edition != "2020" {
				t.Fatalf("clock edition %q", c.Edition)
			}
			h, _ := f.svc.History(f.ctx, f.op, fresh)
			if len(h) != 1 || h[0].Edition != "2021" {
				t.Fatalf("submit event %+v", h)
			}
			// Pinned: a 2026 filing follows 2020, and 2021-only case types
			// cannot be filed.
			f.svc.pinned = review.Edition2020
			pinned := f.draft()
			if c := f.submit(pinned); c.Edition != "2020" {
				t.Fatalf("pinned: edition %q", c.Edition)
			}
			users := int64(5)
			_, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "IPO", Product: "platform", Type: review.TypeListingAbroad, ListingVenue: "NASDAQ", UsersWithPersonalInfo: &users})
			wantCode(t, err, ErrInvalid, review.CodeTypeNotInEdition)
		})
	}
}

// TestListingAbroadAboveThreshold: a listing abroad by a party holding
// personal information of more than 1,000,000 users is filed with its
// listing documents as item 3 and cannot be found not to require review.
func TestListingAbroadAboveThreshold(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, editionStarts["2021"], false)
			newListing := func(users int64) string {
				c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Listing in New York", Product: "ride-hailing platform",
					Type: review.TypeListingAbroad, ListingVenue: "NYSE", UsersWithPersonalInfo: &users})
				if err != nil {
					t.Fatal(err)
				}
				if c.Type != review.TypeListingAbroad || c.ListingVenue != "NYSE" || c.UsersWithPersonalInfo == nil || *c.UsersWithPersonalInfo != users {
					t.Fatalf("case %+v", c)
				}
				for _, k := range []string{"declaration", "impact_analysis"} {
					f.upload(f.op, c.ID, k)
				}
				return c.ID
			}
			_, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "x", Product: "y", Type: review.TypeListingAbroad, ListingVenue: "NYSE"})
			wantCode(t, err, ErrInvalid, "missing_field")
			users := int64(3)
			_, err = f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "x", Product: "y", UsersWithPersonalInfo: &users})
			wantCode(t, err, ErrInvalid, "invalid_field")

			big := newListing(1_000_001)
			_, err = f.svc.Submit(f.ctx, f.op, big)
			if ve := wantCode(t, err, ErrIncomplete, review.CodeMaterialsIncomplete); strings.Join(ve.Missing, ",") != "listing_application" {
				t.Fatalf("missing %v", ve.Missing)
			}
			f.upload(f.op, big, "listing_application") // item 3 (2021 Art. 8)
			f.submit(big)
			_, err = f.move(big, "not_required", "", 0)
			wantCode(t, err, ErrInvalid, review.CodeFilingMandatory)
			f.mustMove(big, "require_review", "", 0)

			small := newListing(1_000_000) // not more than the threshold
			f.upload(f.op, small, "procurement")
			f.submit(small)
			f.mustMove(small, "not_required", "", 0)
		})
	}
}

// TestSilentUnitBlocksAfterRevocation, for each edition: the organisations
// asked are fixed when the recommendation goes out; revoking the silent
// unit's only assignment does not remove it from the count, it is flagged
// overdue after 15 working days, and only its answer unlocks conclusion.
func TestSilentUnitBlocksAfterRevocation(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		for ed, start := range editionStarts {
			t.Run(sqldbtest.Name(d)+"/"+ed, func(t *testing.T) {
				f := newWF(t, d, start, false)
				id := f.draft()
				f.submit(id)
				f.toRecommend(id)
				yes := true
				if _, err := f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &yes}); err != nil {
					t.Fatal(err)
				}
				as, err := f.svc.Assignments(f.ctx, f.office, id)
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range as {
					if a.UserID == f.u2.P.User.ID {
						if err := f.svc.Revoke(f.ctx, f.office, id, a.ID); err != nil {
							t.Fatal(err)
						}
					}
				}
				ve := wantCode(t, func() error { _, err := f.move(id, "conclude", "", 0); return err }(), ErrInvalid, review.CodeOpinionsPending)
				if len(ve.Missing) != 1 || ve.Missing[0] != f.u2.P.User.OrgID {
					t.Fatalf("pending %v", ve.Missing)
				}
				c := f.clockOf(id)
				cal := embedded(t)
				due, _ := cal.WorkdaysAfter(c.StartedOn, 15)
				f.at(due.AddDays(1).String())
				c = f.clockOf(id)
				for _, mo := range c.Opinions {
					silent := mo.Org == f.u2.P.User.OrgID
					if mo.Overdue != silent || mo.DueOn != due {
						t.Fatalf("opinion %+v (due %s)", mo, due)
					}
				}
				// A revoked user cannot answer; another user of the same unit can.
				if _, err := f.svc.Opinion(f.ctx, f.u2, id, OpinionRequest{Agree: &yes}); !errors.Is(err, ErrNotFound) {
					t.Fatalf("revoked unit answered: %v", err)
				}
				org, err := f.acc.Org(f.ctx, f.u2.P.User.OrgID)
				if err != nil {
					t.Fatal(err)
				}
				colleague := f.user("mu2b", org, "member_unit")
				f.assign(id, colleague, "member_unit")
				if _, err := f.svc.Opinion(f.ctx, colleague, id, OpinionRequest{Agree: &yes}); err != nil {
					t.Fatal(err)
				}
				if _, err := f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &yes}); err == nil {
					t.Fatal("second opinion of one organisation accepted")
				}
				r := f.mustMove(id, "conclude", "", 0)
				if r.Status != "concluded" {
					t.Fatalf("conclude %+v", r)
				}
			})
		}
	}
}

// TestSupplementUploads: supplement requests in the opinion phase, answered
// item by item by the party's uploads; the last item ends the stop, an item
// never requested is refused with nothing stored, and mark_incomplete (2021
// only) restarts the determination from complete materials.
func TestSupplementUploads(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, editionStarts["2021"], false)
			id := f.draft()
			f.submit(id)
			f.mustAct(id, TransitionRequest{Action: "mark_incomplete", Items: []string{"signed declaration form"}})
			f.at("2025-06-04")
			f.upload(f.op, id, "supplementary")
			c := f.clockOf(id)
			if cs, _ := f.svc.GetCase(f.ctx, f.op, id); cs.Status != "submitted" || c.StartedOn != date(t, "2025-06-04") || c.Paused {
				t.Fatalf("after the missing material: %s %+v", cs.Status, c)
			}
			f.toRecommend(id)
			f.at("2025-06-09")
			f.mustAct(id, TransitionRequest{Action: "request_supplement", Items: []string{"escrow agreement", "pen-test report"}})
			items := f.clockOf(id).SupplementItems
			if len(items) != 2 || items[0].No != 2 || items[1].No != 3 {
				t.Fatalf("items %+v", items)
			}
			countMaterials := func() int {
				ms, err := f.svc.ListMaterials(f.ctx, f.op, id)
				if err != nil {
					t.Fatal(err)
				}
				return len(ms)
			}
			before := countMaterials()
			_, err := f.svc.Upload(f.ctx, f.op, id, Upload{Kind: "supplementary", Filename: "x.txt", Body: strings.NewReader("x"), Size: 1, Item: 1})
			wantCode(t, err, ErrInvalid, review.CodeUnknownItem)
			if countMaterials() != before {
				t.Fatal("a refused supplementary upload was stored")
			}
			f.at("2025-06-10")
			if _, err := f.svc.Upload(f.ctx, f.op, id, Upload{Kind: "supplementary", Filename: "pentest.txt", Body: strings.NewReader("report"), Size: 6, Item: 3}); err != nil {
				t.Fatal(err)
			}
			if cs, _ := f.svc.GetCase(f.ctx, f.op, id); cs.Status != "awaiting_supplement" {
				t.Fatalf("one of two items received: %s", cs.Status)
			}
			f.at("2025-06-12")
			f.upload(f.op, id, "supplementary") // the first outstanding: item 2
			c = f.clockOf(id)
			cal := embedded(t)
			stopped := between(t, cal, "2025-06-09", "2025-06-12") // 06-10..12
			if cs, _ := f.svc.GetCase(f.ctx, f.op, id); cs.Status != "soliciting_opinions" || c.Paused || len(c.Pauses) != 1 ||
				c.Pauses[0].To.String() != "2025-06-12" || c.DueOn != after(t, cal, c.StartedOn.String(), 15+stopped) {
				t.Fatalf("after the last item: %s %+v", cs.Status, c)
			}
			// Outside an open request, item is refused.
			_, err = f.svc.Upload(f.ctx, f.op, id, Upload{Kind: "supplementary", Filename: "y.txt", Body: strings.NewReader("y"), Size: 1, Item: 2})
			wantCode(t, err, ErrInvalid, "invalid_field")

			// 2020 has no mark_incomplete.
			old := newWF(t, d, editionStarts["2020"], false)
			oid := old.draft()
			old.submit(oid)
			_, err = old.act(oid, TransitionRequest{Action: "mark_incomplete", Items: []string{"x"}})
			wantCode(t, err, ErrInvalid, review.CodeNotInEdition)
		})
	}
}

// TestClassifiedUploadRefused: a material flagged classified, or marked so
// in its filename, is refused with a pointer to the state-secrets channel,
// audited, and nothing of it is stored.
func TestClassifiedUploadRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, editionStarts["2021"], false)
			c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000"})
			if err != nil {
				t.Fatal(err)
			}
			blobs := func() int {
				n := 0
				_ = filepath.Walk(f.blobDir, func(_ string, info os.FileInfo, _ error) error {
					if info != nil && !info.IsDir() {
						n++
					}
					return nil
				})
				return n
			}
			before := blobs()
			for _, up := range []Upload{
				{Kind: "other", Filename: "plan.pdf", Classified: true},
				{Kind: "other", Filename: "机密★10年 网络拓扑.pdf"},
				{Kind: "declaration", Filename: "绝密-declaration.pdf"},
				{Kind: "other", Filename: "秘密 annex.docx"},
			} {
				read := false
				up.Body = readerFunc(func(p []byte) (int, error) { read = true; return 0, errors.New("must not be read") })
				up.Size = 10
				_, err := f.svc.Upload(f.ctx, f.op, c.ID, up)
				ve := wantCode(t, err, ErrInvalid, "classified_material")
				if !strings.Contains(ve.Detail, "state-secrets channel") || !strings.Contains(ve.Detail, "Art. 22") || read {
					t.Fatalf("%s: detail %q, body read %v", up.Filename, ve.Detail, read)
				}
			}
			if ms, err := f.svc.ListMaterials(f.ctx, f.op, c.ID); err != nil || len(ms) != 0 || blobs() != before {
				t.Fatalf("something was stored: %d materials, %d blobs (was %d), %v", len(ms), blobs(), before, err)
			}
			evs, _, err := f.log.Query(f.ctx, audit.Filter{CaseID: c.ID, Action: "material.upload", Outcome: audit.Denied, Limit: 10})
			if err != nil || len(evs) != 4 || evs[0].Detail != "classified_material" {
				t.Fatalf("audit %+v %v", evs, err)
			}
			// Trade secrets are not state secrets.
			f.upload(f.op, c.ID, "declaration")
			if _, err := f.svc.Upload(f.ctx, f.op, c.ID, Upload{Kind: "other", Filename: "商业秘密保护协议.txt", Body: strings.NewReader("nda"), Size: 3}); err != nil {
				t.Fatalf("trade-secret agreement refused: %v", err)
			}
		})
	}
}

type readerFunc func([]byte) (int, error)

func (r readerFunc) Read(p []byte) (int, error) { return r(p) }

// TestProposalByMemberUnit, for each edition: a registered member unit
// proposes a review naming the party; the office records the Commission's
// approval, which opens a case on the party's behalf with a notice; the
// party uploads and submits as usual; under 2021 the office records the
// risk measures and the party reports on them.
func TestProposalByMemberUnit(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		for ed, start := range editionStarts {
			t.Run(sqldbtest.Name(d)+"/"+ed, func(t *testing.T) {
				f := newWF(t, d, start, false)
				subject := map[string]string{"2020": "product", "2021": "data_processing"}[ed]
				in := NewProposal{PartyOrg: f.op.P.User.OrgID, Subject: subject, Title: "Ride data", Product: "dispatch platform", Reason: "national security risk"}
				if _, err := f.svc.Propose(f.ctx, f.op, in); !errors.Is(err, ErrForbidden) {
					t.Fatalf("an operator proposed: %v", err)
				}
				if ed == "2020" {
					bad := in
					bad.Subject = "data_processing"
					_, err := f.svc.Propose(f.ctx, f.u1, bad)
					wantCode(t, err, ErrInvalid, "invalid_subject")
				}
				// An organisation not registered in the mechanism cannot propose.
				stranger := f.user("stranger", f.org("Not a member", "member_unit"), "member_unit")
				if _, err := f.svc.Propose(f.ctx, stranger, in); !errors.Is(err, ErrForbidden) {
					t.Fatalf("unregistered unit proposed: %v", err)
				}
				p, err := f.svc.Propose(f.ctx, f.u1, in)
				if err != nil || p.Status != ProposalProposed || p.Edition != ed || p.MemberOrg != f.u1.P.User.OrgID {
					t.Fatalf("proposal %+v %v", p, err)
				}
				if _, err := f.svc.ApproveProposal(f.ctx, f.u1, p.ID, ApprovalRequest{Reference: "x"}); !errors.Is(err, ErrForbidden) {
					t.Fatalf("a member unit approved: %v", err)
				}
				_, err = f.svc.ApproveProposal(f.ctx, f.office, p.ID, ApprovalRequest{})
				wantCode(t, err, ErrInvalid, "missing_field")
				// Approved at 23:30 UTC: already the next day in Beijing,
				// which is the day the notice must bear.
				f.mu.Lock()
				f.now = time.Date(f.now.Year(), f.now.Month(), f.now.Day(), 23, 30, 0, 0, time.UTC)
				approvedOn := calendar.Today(f.now)
				f.mu.Unlock()
				res, err := f.svc.ApproveProposal(f.ctx, f.office, p.ID, ApprovalRequest{Reference: "CCAC approval [2025] No. 3"})
				if err != nil {
					t.Fatal(err)
				}
				a := res.Proposal.Approval
				if res.Proposal.Status != ProposalApproved || a == nil || a.By != f.office.P.User.ID || a.Reference != "CCAC approval [2025] No. 3" || a.At.IsZero() {
					t.Fatalf("approval %+v", res.Proposal)
				}
				cs := res.Case
				if cs.OperatorOrg != f.op.P.User.OrgID || cs.Origin != review.OriginProposal || cs.Proposal != p.ID || cs.Status != "draft" {
					t.Fatalf("case %+v", cs)
				}
				if _, err := f.svc.ApproveProposal(f.ctx, f.office, p.ID, ApprovalRequest{Reference: "again"}); err == nil {
					t.Fatal("approved twice")
				}
				// The office opened this draft, so it follows it; the party's
				// own drafts and everyone's draft materials stay hidden.
				if got, err := f.svc.GetCase(f.ctx, f.office, cs.ID); err != nil || got.Status != "draft" {
					t.Fatalf("office reads the draft it opened: %+v %v", got, err)
				}
				own := f.draft()
				if _, err := f.svc.GetCase(f.ctx, f.office, own); !errors.Is(err, ErrNotFound) {
					t.Fatalf("office reads the party's own draft: %v", err)
				}
				if _, err := f.svc.ListMaterials(f.ctx, f.office, cs.ID); !errors.Is(err, ErrNotFound) {
					t.Fatalf("office lists a draft's materials: %v", err)
				}
				listed, err := f.svc.ListCases(f.ctx, f.office, "draft", 50, "")
				if err != nil || len(listed.Items) != 1 || listed.Items[0].ID != cs.ID {
					t.Fatalf("office's drafts %+v %v, want only %s", listed.Items, err, cs.ID)
				}
				// The party is notified in its case and goes on as usual.
				ms, err := f.svc.ListMaterials(f.ctx, f.op, cs.ID)
				if err != nil || len(ms) != 1 || ms[0].Kind != "notice" {
					t.Fatalf("party's materials %+v %v", ms, err)
				}
				art := map[string]string{"2020": "Art. 15", "2021": "Art. 16"}[ed]
				if body := f.read(f.op, ms[0].ID); !strings.Contains(body, "CCAC approval [2025] No. 3") || !strings.Contains(body, art) ||
					!strings.Contains(body, "Date: "+approvedOn.String()+"\n") {
					t.Fatalf("notice:\n%s", body)
				}
				// In Chinese first, citing the edition's own article.
				zhNotice(t, ms[0], f.read(f.op, ms[0].ID), "成员单位提议审查通知-", map[string]string{"2020": "第十五条", "2021": "第十六条"}[ed],
					map[string]string{"2020": "（2020年，", "2021": "（2021年，"}[ed], "CCAC approval [2025] No. 3")
				for _, k := range []string{"declaration", "impact_analysis", "procurement"} {
					f.upload(f.op, cs.ID, k)
				}
				f.submit(cs.ID)
				// The Commission approved the review: the office carries it
				// out and cannot find it not required.
				_, err = f.act(cs.ID, TransitionRequest{Action: "not_required", Reason: "no risk found"})
				wantCode(t, err, ErrInvalid, review.CodeCommissionApproved)
				f.mustMove(cs.ID, "require_review", "", 0)
				if ed == "2020" {
					_, err := f.act(cs.ID, TransitionRequest{Action: "record_measures", Measures: []string{"x"}})
					wantCode(t, err, ErrInvalid, review.CodeNotInEdition)
					return
				}
				r := f.mustAct(cs.ID, TransitionRequest{Action: "record_measures", Measures: []string{"keep trip data in China", "independent audit"}})
				if r.Notice == nil || !strings.Contains(f.read(f.op, r.Notice.ID), "2. independent audit") {
					t.Fatalf("measures notice %+v", r.Notice)
				}
				if _, err := f.svc.ReportMeasures(f.ctx, f.op, cs.ID, MeasureReport{Measure: 3, Report: "done"}); err == nil {
					t.Fatal("report on an unknown measure accepted")
				}
				rep, err := f.svc.ReportMeasures(f.ctx, f.op, cs.ID, MeasureReport{Measure: 2, Report: "audit by a licensed firm booked"})
				if err != nil || rep.Event.Action != review.ReportMeasures || rep.Event.Measure != 2 {
					t.Fatalf("report %+v %v", rep.Event, err)
				}
				// Measures are for proposed reviews only.
				other := f.draft()
				f.submit(other)
				_, err = f.act(other, TransitionRequest{Action: "record_measures", Measures: []string{"x"}})
				wantCode(t, err, ErrInvalid, review.CodeMeasuresNotApplicable)
				ps, err := f.svc.Proposals(f.ctx, f.u2, "", 0, "")
				if err != nil || len(ps.Items) != 0 {
					t.Fatalf("another unit sees %d proposals, %v", len(ps.Items), err)
				}
			})
		}
	}
}

// opinionStates is the clock's member-unit opinions as "round/org:state".
func (f *wfFixture) opinionStates(id string) []string {
	f.t.Helper()
	out := []string{}
	for _, mo := range f.clockOf(id).Opinions {
		out = append(out, fmt.Sprintf("%d/%s:%s", mo.Round, mo.Org, mo.State()))
	}
	return out
}

// TestSameDayDisagreementEndsFirstRound, for each edition: a member unit
// disagrees on the day the recommendation went out, so the special review
// begins that day. The first round is over: its silent unit is listed
// neither then nor as overdue once the first round's 15 working days have
// passed. In the special review's own round, a unit answering on its due
// day is not overdue and the silent one is, the day after.
func TestSameDayDisagreementEndsFirstRound(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		for ed, start := range editionStarts {
			t.Run(sqldbtest.Name(d)+"/"+ed, func(t *testing.T) {
				f := newWF(t, d, start, false)
				cal := embedded(t)
				id := f.draft()
				f.submit(id)
				f.toRecommend(id)
				no, yes := false, true
				if r, err := f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &no, Comment: "supply risk"}); err != nil || r.Status != "special_review" {
					t.Fatalf("disagreement: %+v %v", r.Case, err)
				}
				c := f.clockOf(id)
				edition, _ := review.EditionByID(ed)
				today := calendar.Today(f.clock())
				if due, _ := cal.WorkdaysAfter(today, edition.SpecialDays); c.Phase != review.PhaseSpecial || c.StartedOn != today || c.DueOn != due {
					t.Fatalf("special review clock %+v, want due %s", c, due)
				}
				due1, _ := cal.WorkdaysAfter(today, 15)
				// Past the first round's due date first: there the silent unit
				// would read as overdue.
				for _, day := range []calendar.Date{due1.AddDays(1), today, due1} {
					f.at(day.String())
					if got := f.opinionStates(id); len(got) != 0 {
						t.Fatalf("on %s the special review lists the first round: %v", day, got)
					}
				}
				// The special review's own round.
				f.mustMove(id, "record_hearing", "heard the departments concerned", 0)
				f.upload(f.rev, id, "recommendation")
				f.mustMove(id, "recommend", "", 0)
				due2, _ := cal.WorkdaysAfter(calendar.Today(f.clock()), 15)
				f.at(due2.String())
				if _, err := f.svc.Opinion(f.ctx, f.u2, id, OpinionRequest{Agree: &yes}); err != nil {
					t.Fatal(err)
				}
				o1, o2 := f.u1.P.User.OrgID, f.u2.P.User.OrgID
				sorted := func(a, b string) string {
					if o2 < o1 {
						return "[" + b + " " + a + "]"
					}
					return "[" + a + " " + b + "]"
				}
				if got, want := fmt.Sprint(f.opinionStates(id)), sorted("2/"+o1+":awaiting", "2/"+o2+":agree"); got != want {
					t.Fatalf("on the due day %s: %s, want %s", due2, got, want)
				}
				f.at(due2.AddDays(1).String())
				if got, want := fmt.Sprint(f.opinionStates(id)), sorted("2/"+o1+":overdue", "2/"+o2+":agree"); got != want {
					t.Fatalf("after the due day: %s, want %s", got, want)
				}
			})
		}
	}
}
