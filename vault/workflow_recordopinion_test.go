package vault

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/review"
)

// silentUnitCase takes a case to soliciting_opinions on 2025-04-30, asking
// u1's and u2's units; u1 agrees the same day and u2 stays silent.
func (f *wfFixture) silentUnitCase() string {
	f.t.Helper()
	f.at("2025-04-01")
	id := f.draft()
	if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
		f.t.Fatal(err)
	}
	f.mustMove(id, "require_review", "", 0)
	f.assign(id, f.rev, "reviewer")
	f.upload(f.rev, id, "recommendation")
	f.assign(id, f.u1, "member_unit")
	f.assign(id, f.u2, "member_unit")
	f.at("2025-04-30")
	f.mustMove(id, "recommend", "", 0)
	yes := true
	if _, err := f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &yes}); err != nil {
		f.t.Fatal(err)
	}
	return id
}

// recordOpinion is the office's record_opinion of u2's letter.
func (f *wfFixture) recordOpinion(id string, agree bool) (TransitionResult, error) {
	return f.act(id, TransitionRequest{Action: "record_opinion", Org: f.u2.P.User.OrgID, Agree: &agree,
		Reference: "公安部网安函〔2025〕9号", Reason: "the unit's letter reached the office by post"})
}

func eventActions(h []review.Event) string {
	var out []string
	for _, e := range h {
		out = append(out, string(e.Action))
	}
	return strings.Join(out, " ")
}

// TestRecordOpinionOfSilentUnit (2020 Art. 11 / 2021 Art. 12): a unit
// silent past its 15 working days kept the round open for good. Through
// the service: the office's record_opinion is refused before the unit is
// overdue (audited, with its code) and to anyone but the office; once the
// unit is overdue it records the unit's written answer, audited as the
// office's act naming the unit, in the case history (the unit sees its own
// answer, its peers and the parties do not) and the clock; a disagreement
// opens the special review with its written notice, an agreement lets the
// office conclude.
func TestRecordOpinionOfSilentUnit(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 4, 1, 2, 0, 0, 0, time.UTC), false)
			cal := embedded(t)
			due := after(t, cal, "2025-04-30", 15)
			org2 := f.u2.P.User.OrgID

			id := f.silentUnitCase()
			f.at(due.String())
			if offered, err := f.svc.Offered(f.ctx, f.office, id); err != nil || slices.Contains(offered, "record_opinion") {
				t.Fatalf("offered on the due day: %v %v", offered, err)
			}
			_, err := f.recordOpinion(id, false)
			ve := wantCode(t, err, ErrInvalid, review.CodeOpinionNotOverdue)
			if len(ve.Missing) != 1 || ve.Missing[0] != org2 {
				t.Fatalf("missing %v", ve.Missing)
			}
			evs, _, err := f.log.Query(f.ctx, audit.Filter{CaseID: id, Action: "case.transition", Outcome: audit.Denied, Limit: 10})
			if err != nil || len(evs) != 1 || evs[0].Detail != review.CodeOpinionNotOverdue {
				t.Fatalf("refusal not audited: %+v %v", evs, err)
			}
			late := due.AddDays(1)
			f.at(late.String())
			if offered, err := f.svc.Offered(f.ctx, f.office, id); err != nil || !slices.Contains(offered, "record_opinion") {
				t.Fatalf("not offered once the unit is overdue: %v %v", offered, err)
			}
			for _, who := range []Actor{f.u2, f.u1, f.op, f.rev} {
				no := false
				if _, err := f.svc.Transition(f.ctx, who, id, TransitionRequest{Action: "record_opinion", Org: org2, Agree: &no,
					Reference: "x", Reason: "y"}); !errors.Is(err, ErrForbidden) && !errors.Is(err, ErrNotFound) {
					t.Fatalf("%s recorded an opinion: %v", who.P.User.ID, err)
				}
			}
			_, err = f.act(id, TransitionRequest{Action: "conclude", Outcome: "passed", Org: org2})
			wantCode(t, err, ErrInvalid, "invalid_field")
			_, err = f.act(id, TransitionRequest{Action: "record_opinion", Org: org2, Days: 3})
			wantCode(t, err, ErrInvalid, "invalid_days")
			_, err = f.move(id, "conclude", "", 0)
			wantCode(t, err, ErrInvalid, review.CodeOpinionsPending) // silence is still not agreement

			r, err := f.recordOpinion(id, false)
			if err != nil || r.Status != "special_review" || r.Event.Org != org2 || r.Event.Actor != f.office.P.User.ID || r.Notice == nil {
				t.Fatalf("record_opinion: %+v %v", r, err)
			}
			if f.uploader(r.Notice.ID) != f.office.P.User.ID {
				t.Fatalf("notice attributed to %s", f.uploader(r.Notice.ID))
			}
			zhNotice(t, *r.Notice, f.read(f.op, r.Notice.ID), "进入特别审查程序通知-", "意见不一致")
			evs, _, err = f.log.Query(f.ctx, audit.Filter{CaseID: id, Action: "case.transition", Outcome: audit.Allowed, Limit: 50})
			if err != nil || evs[len(evs)-1].Detail != "record_opinion;org="+org2 || evs[len(evs)-1].Actor != f.office.P.User.ID {
				t.Fatalf("record_opinion not audited as the office's act: %+v %v", evs, err)
			}
			c := f.clockOf(id)
			if c.Phase != review.PhaseSpecial || c.StartedOn != late {
				t.Fatalf("special clock %+v", c)
			}
			for who, want := range map[*Actor]string{
				&f.office: "submit require_review recommend opinion record_opinion",
				&f.u2:     "submit require_review recommend record_opinion",
				&f.u1:     "submit require_review recommend opinion",
				&f.op:     "submit require_review recommend",
			} {
				h, err := f.svc.History(f.ctx, *who, id)
				if err != nil || eventActions(h) != want {
					t.Errorf("%s sees %q, %v; want %q", who.P.User.ID, eventActions(h), err, want)
				}
			}

			// An agreeing letter: the round is unanimous, the office concludes.
			id = f.silentUnitCase()
			f.at(late.String())
			r, err = f.recordOpinion(id, true)
			if err != nil || r.Status != "soliciting_opinions" || r.Notice != nil {
				t.Fatalf("agreeing record_opinion: %+v %v", r, err)
			}
			c = f.clockOf(id)
			if len(c.Opinions) != 2 || c.Opinions[1].Org != org2 || c.Opinions[1].State() != "agree" || c.Opinions[1].Reference != "公安部网安函〔2025〕9号" {
				t.Fatalf("clock opinions %+v", c.Opinions)
			}
			if r := f.mustMove(id, "conclude", "", 0); r.Status != "concluded" {
				t.Fatalf("conclude %+v", r)
			}
		})
	}
}
