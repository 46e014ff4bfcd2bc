package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/crypt"
	"github.com/crvault/crvault/vault/review"
)

// wfFixture is a whole vault over a real database, blob directory, age keys,
// access and audit log, with a clock the test moves.
type wfFixture struct {
	t   testing.TB
	ctx context.Context
	svc *Service
	acc *access.Service
	log *audit.Log

	mu  sync.Mutex
	now time.Time

	office, op, rev, u1, u2, unassigned Actor
	blobDir                             string

	// What the vault is built from, for restart.
	db     *gorm.DB
	blobs  blob.Store
	master *crypt.Master
	cfg    Config

	hookMu   sync.Mutex
	hooks    []WebhookPayload
	hookFail bool
}

func newWF(t testing.TB, dialect string, start time.Time, webhook bool) *wfFixture {
	t.Helper()
	ctx := context.Background()
	f := &wfFixture{now: start, ctx: ctx, t: t}
	db := sqldbtest.Open(t, dialect)
	if err := audit.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := access.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var err error
	if f.log, err = audit.Open(ctx, db, audit.Options{KeyDir: t.TempDir(), Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.log.Close(context.Background()) })
	if f.acc, err = access.New(ctx, db, access.Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	master, err := crypt.GenerateMaster()
	if err != nil {
		t.Fatal(err)
	}
	f.blobDir = t.TempDir()
	blobs, err := blob.NewLocal(f.blobDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Logger: quiet, Now: f.clock}
	if webhook {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.hookMu.Lock()
			defer f.hookMu.Unlock()
			if f.hookFail {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			var p WebhookPayload
			if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
				t.Errorf("webhook body: %v", err)
			}
			f.hooks = append(f.hooks, p)
		}))
		t.Cleanup(srv.Close)
		cfg.WebhookURL = srv.URL
	}
	f.db, f.blobs, f.master, f.cfg = db, blobs, master, cfg
	f.svc = New(db, blobs, master, f.acc, f.log, cfg)
	officeOrg, opOrg := f.org("Review Office", "office"), f.org("Grid Co", "operator")
	f.office = f.user("office", officeOrg, "office_admin")
	f.op = f.user("operator1", opOrg, "operator")
	f.rev = f.user("rev", officeOrg, "reviewer")
	// Three member units of the mechanism, one user each.
	for i, unit := range []string{"miit", "mps", "samr"} {
		org := f.org("Member unit "+unit, "member_unit")
		if _, err := f.svc.RegisterMemberUnit(ctx, f.office, NewMemberUnit{Org: org.ID, Unit: unit}); err != nil {
			t.Fatal(err)
		}
		u := f.user(fmt.Sprintf("mu%d", i+1), org, "member_unit")
		switch i {
		case 0:
			f.u1 = u
		case 1:
			f.u2 = u
		default:
			f.unassigned = u
		}
	}
	return f
}

// restart is a new vault over the same database, store and keys: what a
// process started after a crash finds.
func (f *wfFixture) restart() *Service {
	return New(f.db, f.blobs, f.master, f.acc, f.log, f.cfg)
}

func (f *wfFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// at sets "now" to 10:00 in Shanghai on the given day.
func (f *wfFixture) at(day string) {
	f.t.Helper()
	d, err := calendar.ParseDate(day)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.now = time.Date(d.Y, d.M, d.D, 2, 0, 0, 0, time.UTC)
	f.mu.Unlock()
}

func (f *wfFixture) org(name, kind string) access.Org {
	f.t.Helper()
	o, err := f.acc.CreateOrg(f.ctx, name, access.OrgKind(kind))
	if err != nil {
		f.t.Fatal(err)
	}
	return o
}

func (f *wfFixture) user(name string, org access.Org, role string) Actor {
	f.t.Helper()
	u, err := f.acc.CreateUser(f.ctx, access.NewUser{Username: name, Org: org.ID, Password: "correct horse battery", Roles: []access.Role{access.Role(role)}})
	if err != nil {
		f.t.Fatal(err)
	}
	return Actor{P: access.Principal{User: u, OrgKind: org.Kind}, IP: "127.0.0.1", RequestID: "test-" + name}
}

// read returns a material's content as a.
func (f *wfFixture) read(a Actor, materialID string) string {
	f.t.Helper()
	c, err := f.svc.OpenContent(f.ctx, a, materialID, nil)
	if err != nil {
		f.t.Fatalf("open %s: %v", materialID, err)
	}
	defer c.Close()
	b, err := io.ReadAll(c.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

func (f *wfFixture) upload(a Actor, caseID, kind string) {
	f.t.Helper()
	body := kind + " document"
	if _, err := f.svc.Upload(f.ctx, a, caseID, Upload{Kind: kind, Filename: kind + ".txt", ContentType: "text/plain",
		Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
		f.t.Fatalf("upload %s: %v", kind, err)
	}
}

// draft files a case with the three materials submit needs.
func (f *wfFixture) draft() string {
	f.t.Helper()
	c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000"})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, k := range []string{"declaration", "impact_analysis", "procurement"} {
		f.upload(f.op, c.ID, k)
	}
	return c.ID
}

func (f *wfFixture) assign(caseID string, a Actor, role string) {
	f.t.Helper()
	if _, err := f.svc.Assign(f.ctx, f.office, caseID, NewAssignment{User: a.P.User.ID, Role: role, Purpose: "review"}); err != nil {
		f.t.Fatalf("assign: %v", err)
	}
	no := false
	if _, err := f.svc.Declare(f.ctx, a, caseID, NewDeclaration{Conflict: &no, Statement: "no conflict"}); err != nil {
		f.t.Fatalf("declare: %v", err)
	}
}

func (f *wfFixture) move(caseID, action, reason string, days int) (TransitionResult, error) {
	req := TransitionRequest{Action: action, Reason: reason, Days: days}
	switch action {
	case "request_supplement", "mark_incomplete":
		req.Items = []string{"the source code escrow agreement"}
	case "conclude":
		req.Outcome = "passed"
	}
	return f.svc.Transition(f.ctx, f.office, caseID, req)
}

// act takes an office transition with a full request.
func (f *wfFixture) act(caseID string, req TransitionRequest) (TransitionResult, error) {
	return f.svc.Transition(f.ctx, f.office, caseID, req)
}

func (f *wfFixture) mustAct(caseID string, req TransitionRequest) TransitionResult {
	f.t.Helper()
	r, err := f.act(caseID, req)
	if err != nil {
		f.t.Fatalf("%s: %v", req.Action, err)
	}
	return r
}

func (f *wfFixture) mustMove(caseID, action, reason string, days int) TransitionResult {
	f.t.Helper()
	r, err := f.move(caseID, action, reason, days)
	if err != nil {
		f.t.Fatalf("%s: %v", action, err)
	}
	return r
}

// clockOf reads the clock as the office sees it (the member units' opinions
// included), or as the operator while the case is a draft the office cannot
// see.
func (f *wfFixture) clockOf(caseID string) review.Clock {
	f.t.Helper()
	c, err := f.svc.Clock(f.ctx, f.office, caseID)
	if errors.Is(err, ErrNotFound) {
		c, err = f.svc.Clock(f.ctx, f.op, caseID)
	}
	if err != nil {
		f.t.Fatalf("clock: %v", err)
	}
	return c
}

func date(t *testing.T, s string) calendar.Date {
	t.Helper()
	d, err := calendar.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func wantCode(t *testing.T, err error, kind error, code string) *Error {
	t.Helper()
	var ve *Error
	if !errors.As(err, &ve) || ve.Code != code || !errors.Is(err, kind) {
		t.Fatalf("error %v, want %s (%v)", err, code, kind)
	}
	return ve
}

func embedded(t *testing.T) *calendar.Calendar {
	t.Helper()
	c, err := calendar.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func after(t *testing.T, cal *calendar.Calendar, from string, n int) calendar.Date {
	t.Helper()
	d, err := cal.WorkdaysAfter(date(t, from), n)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func between(t *testing.T, cal *calendar.Calendar, from, to string) int {
	t.Helper()
	n, err := cal.WorkdaysBetween(date(t, from), date(t, to))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWorkflowClock walks one case through the preliminary review with a
// pause and an extension, the member-unit phase and conclusion, checking the
// derived clock on dates the test chooses (2025, including the Qingming and
// May Day holidays) at every step.
func TestWorkflowClock(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			cal := embedded(t)
			id := f.draft()
			if c := f.clockOf(id); c.Phase != review.PhaseNone || c.Pauses == nil || c.Extensions == nil {
				t.Fatalf("draft clock %+v", c)
			}
			f.at("2025-03-03")
			if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
				t.Fatal(err)
			}
			f.at("2025-03-07")
			c := f.clockOf(id)
			if c.Phase != review.PhaseDetermination || c.StartedOn != date(t, "2025-03-03") || c.DueOn != after(t, cal, "2025-03-03", 10) || c.UsedWorkingDays != 4 {
				t.Fatalf("determination clock %+v", c)
			}
			f.at("2025-03-10")
			r := f.mustMove(id, "require_review", "", 0)
			if r.Status != "under_review" || r.Event.Seq != 2 || r.Event.Actor != f.office.P.User.ID || r.Notice == nil {
				t.Fatalf("require_review result %+v", r)
			}
			prelimDue := after(t, cal, "2025-03-10", 30)
			f.at("2025-03-20")
			f.mustMove(id, "request_supplement", "need the source code escrow agreement", 0)
			f.at("2025-04-08") // Qingming (4 April) falls inside the pause
			c = f.clockOf(id)
			paused := between(t, cal, "2025-03-20", "2025-04-08")
			if !c.Paused || len(c.Pauses) != 1 || c.Pauses[0].To != nil || c.DueOn != after(t, cal, "2025-03-10", 30+paused) {
				t.Fatalf("paused clock %+v (unpaused due %v)", c, prelimDue)
			}
			// The party's upload of the one item requested ends the stop.
			f.upload(f.op, id, "supplementary")
			f.at("2025-04-09")
			c = f.clockOf(id)
			if c.Paused || c.Pauses[0].To == nil || *c.Pauses[0].To != date(t, "2025-04-08") || c.DueOn != after(t, cal, "2025-03-10", 30+paused) {
				t.Fatalf("resumed clock %+v", c)
			}
			if _, err := f.move(id, "extend", "", 0); err == nil {
				t.Fatal("extend without reason accepted")
			} else {
				wantCode(t, err, ErrInvalid, review.CodeReasonRequired)
			}
			f.mustMove(id, "extend", "complex supply chain", 0)
			c = f.clockOf(id)
			if c.AllowedWorkingDays != 45 || len(c.Extensions) != 1 || c.DueOn != after(t, cal, "2025-03-10", 45+paused) {
				t.Fatalf("extended clock %+v", c)
			}
			_, err := f.move(id, "extend", "again", 0)
			wantCode(t, err, ErrInvalid, review.CodeAlreadyExtended)
			_, err = f.move(id, "recommend", "", 0)
			wantCode(t, err, ErrInvalid, review.CodeRecommendationRequired)
			f.assign(id, f.rev, "reviewer")
			f.upload(f.rev, id, "recommendation")
			f.at("2025-04-30")
			_, err = f.move(id, "recommend", "", 0)
			wantCode(t, err, ErrInvalid, review.CodeMembersRequired) // nobody to ask yet
			f.assign(id, f.u1, "member_unit")
			f.assign(id, f.u2, "member_unit")
			f.mustMove(id, "recommend", "", 0) // asks the two units assigned now
			c = f.clockOf(id)
			if c.Phase != review.PhaseOpinions || c.DueOn != after(t, cal, "2025-04-30", 15) || len(c.Extensions) != 0 || len(c.Opinions) != 2 {
				t.Fatalf("opinion clock %+v", c)
			}
			// Which units were asked, and their answers, are the review's own.
			if oc, err := f.svc.Clock(f.ctx, f.op, id); err != nil || len(oc.Opinions) != 0 || oc.DueOn != c.DueOn {
				t.Fatalf("the operator's opinion clock %+v, %v", oc, err)
			}
			yes := true
			if _, err := f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &yes, Comment: "agree"}); err != nil {
				t.Fatal(err)
			}
			_, err = f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &yes})
			wantCode(t, err, ErrInvalid, review.CodeOpinionGiven)
			_, err = f.svc.Opinion(f.ctx, f.unassigned, id, OpinionRequest{Agree: &yes})
			wantCode(t, err, ErrNotFound, "not_found")
			ve := wantCode(t, func() error { _, err := f.move(id, "conclude", "", 0); return err }(), ErrInvalid, review.CodeOpinionsPending)
			if len(ve.Missing) != 1 || ve.Missing[0] != f.u2.P.User.OrgID {
				t.Fatalf("pending %v", ve.Missing)
			}
			if _, err := f.svc.Opinion(f.ctx, f.u2, id, OpinionRequest{Agree: &yes}); err != nil {
				t.Fatal(err)
			}
			f.at("2025-05-06")
			r = f.mustMove(id, "conclude", "", 0)
			if r.Status != "concluded" {
				t.Fatalf("conclude %+v", r)
			}
			c = f.clockOf(id)
			if c.Phase != review.PhaseClosed || c.Overdue {
				t.Fatalf("closed clock %+v", c)
			}
			ve = wantCode(t, func() error { _, err := f.move(id, "extend", "x", 0); return err }(), ErrConflict, "illegal_transition")
			if len(ve.Allowed) != 0 {
				t.Fatalf("allowed after conclusion: %v", ve.Allowed)
			}
			// The office sees the whole history; the operator not the
			// member units' opinions (visibility.go).
			for who, want := range map[*Actor]string{
				&f.office: "submit require_review request_supplement supplement_item supplement_received extend recommend opinion opinion conclude",
				&f.op:     "submit require_review request_supplement supplement_item supplement_received extend recommend conclude",
			} {
				hist, err := f.svc.History(f.ctx, *who, id)
				if err != nil {
					t.Fatal(err)
				}
				var acts []string
				for _, e := range hist {
					acts = append(acts, string(e.Action))
				}
				if strings.Join(acts, " ") != want {
					t.Fatalf("history seen by %s: %v", who.P.User.Username, acts)
				}
			}
			// Every decision left a notice the operator can list.
			ms, err := f.svc.ListMaterials(f.ctx, f.op, id)
			if err != nil {
				t.Fatal(err)
			}
			notices := 0
			for _, m := range ms {
				if m.Kind == "notice" {
					notices++
				}
			}
			if notices != 6 { // require_review, request/received, extend, recommend, conclude
				t.Fatalf("%d notices, want 6", notices)
			}
		})
	}
}

// TestWorkflowRefusals: bad input and wrong states change nothing.
func TestWorkflowRefusals(t *testing.T) {
	f := newWF(t, "sqlite", time.Date(2025, 6, 2, 2, 0, 0, 0, time.UTC), false)
	id := f.draft()
	cases := []struct {
		name   string
		action string
		reason string
		days   int
		kind   error
		code   string
	}{
		{"draft is not visible to the office", "require_review", "", 0, ErrNotFound, "not_found"},
	}
	for _, tc := range cases {
		_, err := f.move(id, tc.action, tc.reason, tc.days)
		wantCode(t, err, tc.kind, tc.code)
	}
	if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
		t.Fatal(err)
	}
	cases = []struct {
		name   string
		action string
		reason string
		days   int
		kind   error
		code   string
	}{
		{"unknown action", "approve", "", 0, ErrInvalid, "invalid_action"},
		{"submit through transitions", "submit", "", 0, ErrInvalid, "invalid_action"},
		{"opinion through transitions", "opinion", "", 0, ErrInvalid, "invalid_action"},
		{"days outside extend_special", "require_review", "", 5, ErrInvalid, "invalid_days"},
		{"conclude from submitted", "conclude", "", 0, ErrConflict, "illegal_transition"},
		{"extend before review", "extend", "why", 0, ErrConflict, "illegal_transition"},
		{"extend_special outside special review", "extend_special", "why", 5, ErrConflict, "illegal_transition"},
		{"reason with control characters", "not_required", "a\x00b", 0, ErrInvalid, "invalid_field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.move(id, tc.action, tc.reason, tc.days)
			ve := wantCode(t, err, tc.kind, tc.code)
			if tc.code == "illegal_transition" && strings.Join(ve.Allowed, ",") != "mark_incomplete,require_review,not_required,request_supplement" {
				t.Fatalf("allowed %v", ve.Allowed)
			}
		})
	}
	_, err := f.svc.Transition(f.ctx, f.op, id, TransitionRequest{Action: "require_review"})
	wantCode(t, err, ErrForbidden, "forbidden")
	_, err = f.svc.Submit(f.ctx, f.op, id)
	wantCode(t, err, ErrConflict, "illegal_transition")
	h, err := f.svc.History(f.ctx, f.office, id)
	if err != nil || len(h) != 1 {
		t.Fatalf("history after refusals: %d events, %v", len(h), err)
	}
	if _, err := f.svc.Deadlines(f.ctx, f.op, 3); !errors.Is(err, ErrForbidden) {
		t.Fatalf("operator listed deadlines: %v", err)
	}
	for _, n := range []int{-1, MaxWithin + 1} {
		_, err := f.svc.Deadlines(f.ctx, f.office, n)
		wantCode(t, err, ErrInvalid, "invalid_days")
	}
	// Special review: a disagreement, extend_special bounds, conclusion.
	f.mustMove(id, "require_review", "", 0)
	f.assign(id, f.rev, "reviewer")
	f.upload(f.rev, id, "recommendation")
	f.assign(id, f.u1, "member_unit")
	f.mustMove(id, "recommend", "", 0)
	no := false
	r, err := f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &no, Comment: "risk to supply continuity"})
	if err != nil || r.Status != "special_review" || r.Notice == nil {
		t.Fatalf("disagreement: %+v %v", r, err)
	}
	for _, days := range []int{0, -3, review.MaxSpecialExtension + 1} {
		_, err := f.move(id, "extend_special", "complex", days)
		wantCode(t, err, ErrInvalid, review.CodeInvalidDays)
	}
	f.mustMove(id, "extend_special", "complex", 20)
	if c := f.clockOf(id); c.Phase != review.PhaseSpecial || c.AllowedWorkingDays != 110 { // 90 (2021 Art. 14) + 20
		t.Fatalf("special clock %+v", c)
	}
	_, err = f.move(id, "conclude", "", 0)
	wantCode(t, err, ErrInvalid, review.CodeStepMissingHearing)
}

// TestWorkflowConcurrentTransitions: of two racing transitions on one case,
// exactly one succeeds and the history has no gap or duplicate.
func TestWorkflowConcurrentTransitions(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 6, 2, 2, 0, 0, 0, time.UTC), false)
			id := f.draft()
			if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
				t.Fatal(err)
			}
			actions := []string{"require_review", "not_required", "require_review", "not_required"}
			errs := make([]error, len(actions))
			var wg sync.WaitGroup
			for i, a := range actions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = f.move(id, a, "", 0)
				}()
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				var ve *Error
				switch {
				case err == nil:
					ok++
				case errors.As(err, &ve) && (ve.Code == "concurrent_update" || ve.Code == "illegal_transition"):
				default:
					t.Fatalf("unexpected error %v", err)
				}
			}
			h, err := f.svc.History(f.ctx, f.office, id)
			if err != nil {
				t.Fatal(err)
			}
			if ok != 1 || len(h) != 2 {
				t.Fatalf("%d succeeded, history has %d events", ok, len(h))
			}
		})
	}
}

// calendarFile is a holiday-cn file for year with the given holidays.
func calendarFile(t *testing.T, year int, holidays ...string) []byte {
	t.Helper()
	type day struct {
		Name     string `json:"name"`
		Date     string `json:"date"`
		IsOffDay bool   `json:"isOffDay"`
	}
	f := struct {
		Year int   `json:"year"`
		Days []day `json:"days"`
	}{Year: year}
	for _, h := range holidays {
		f.Days = append(f.Days, day{Name: "holiday", Date: h, IsOffDay: true})
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCalendarImportRederives: a deadline running into an unpublished year
// is computed provisionally and marked (clock, calendar, deadline list)
// until the year is imported; the import re-derives it unmarked, a
// corrected import moves it, and the watcher flags and notifies on it.
func TestCalendarImportRederives(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC), true)
			id := f.draft()
			f.at("2026-12-01")
			if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
				t.Fatal(err)
			}
			res := f.mustMove(id, "require_review", "", 0) // 30 working days run into 2027
			if res.Notice == nil || !strings.Contains(f.read(f.op, res.Notice.ID), "due 2027-01-13 (provisional") {
				t.Fatalf("notice does not mark the provisional due date: %+v", res.Notice)
			}
			// Provisional 2027: 22 working days left in December, 01-01
			// New Year, 01-04..08, 11..13.
			if c := f.clockOf(id); c.DueOn != date(t, "2027-01-13") || !c.DueOnProvisional {
				t.Fatalf("provisional clock %+v", c)
			}
			if due, err := f.svc.DueDate(f.ctx, date(t, "2026-12-01"), 30); err != nil || due.On != date(t, "2027-01-13") || !due.Provisional {
				t.Fatalf("provisional DueDate %+v %v", due, err)
			}
			f.at("2027-01-11") // two working days before: listed, and marked
			ds, err := f.svc.Deadlines(f.ctx, f.office, 3)
			if err != nil || len(ds) != 1 || ds[0].CaseID != id || ds[0].DueOn != date(t, "2027-01-13") || !ds[0].DueOnProvisional || ds[0].Flag != review.FlagDueSoon {
				t.Fatalf("provisional deadlines %+v %v", ds, err)
			}
			f.at("2026-12-01")

			first := calendarFile(t, 2027, "2027-01-01")
			if y, err := f.svc.cals.Import(f.ctx, first); err != nil || y != 2027 {
				t.Fatalf("import: %d %v", y, err)
			}
			cal1, err := embedded(t).With(first)
			if err != nil {
				t.Fatal(err)
			}
			c := f.clockOf(id)
			if c.DueOn != after(t, cal1, "2026-12-01", 30) || c.DueOnProvisional {
				t.Fatalf("due %v (provisional %v), want %v final", c.DueOn, c.DueOnProvisional, after(t, cal1, "2026-12-01", 30))
			}
			// The corrected announcement adds a week off in January.
			corrected := calendarFile(t, 2027, "2027-01-01", "2027-01-04", "2027-01-05", "2027-01-06", "2027-01-07", "2027-01-08")
			if _, err := f.svc.cals.Import(f.ctx, corrected); err != nil {
				t.Fatal(err)
			}
			cal2, _ := embedded(t).With(corrected)
			c2 := f.clockOf(id)
			if want := after(t, cal2, "2026-12-01", 30); c2.DueOn != want || !c2.DueOn.After(c.DueOn) {
				t.Fatalf("re-derived due %v, want %v (before %v)", c2.DueOn, want, c.DueOn)
			}
			if _, err := f.svc.cals.Import(f.ctx, []byte(`{"year":2027,"days":[]}`)); !errors.Is(err, calendar.ErrInvalidFile) {
				t.Fatalf("empty year imported: %v", err)
			}
			if due, err := f.svc.DueDate(f.ctx, date(t, "2026-12-01"), 30); err != nil || due.On != c2.DueOn || due.Provisional {
				t.Fatalf("DueDate %v %v", due, err)
			}

			// Two working days before the due date: due soon, flagged once.
			f.mu.Lock()
			f.now = c2.DueOn.AddDays(-2).Time().Add(2 * time.Hour)
			f.mu.Unlock()
			for round := 0; round < 2; round++ {
				sw, err := f.svc.SweepDeadlines(f.ctx)
				if err != nil {
					t.Fatal(err)
				}
				wantFlagged := 1 - round
				if sw.DueSoon != 1 || sw.Overdue != 0 || sw.Flagged != wantFlagged {
					t.Fatalf("round %d: %+v", round, sw)
				}
			}
			ds, err = f.svc.Deadlines(f.ctx, f.office, 3)
			if err != nil || len(ds) != 1 || ds[0].CaseID != id || ds[0].Flag != review.FlagDueSoon || ds[0].DueOn != c2.DueOn || ds[0].DueOnProvisional {
				t.Fatalf("deadlines %+v %v", ds, err)
			}
			// Overdue, with the webhook down: flagged, not delivered, retried.
			f.mu.Lock()
			f.now = c2.DueOn.AddDays(3).Time().Add(2 * time.Hour)
			f.mu.Unlock()
			f.hookMu.Lock()
			f.hookFail = true
			f.hookMu.Unlock()
			sw, err := f.svc.SweepDeadlines(f.ctx)
			if err != nil || sw.Overdue != 1 || sw.Flagged != 1 || sw.Failed != 1 {
				t.Fatalf("overdue sweep %+v %v", sw, err)
			}
			f.hookMu.Lock()
			f.hookFail = false
			f.hookMu.Unlock()
			if sw, err = f.svc.SweepDeadlines(f.ctx); err != nil || sw.Flagged != 0 || sw.Notified != 1 {
				t.Fatalf("retry sweep %+v %v", sw, err)
			}
			f.hookMu.Lock()
			hooks := fmt.Sprint(f.hooks)
			f.hookMu.Unlock()
			want := fmt.Sprint([]WebhookPayload{{id, "due_soon", c2.DueOn.String(), false, "preliminary_review"}, {id, "overdue", c2.DueOn.String(), false, "preliminary_review"}})
			if hooks != want {
				t.Fatalf("webhooks %s, want %s", hooks, want)
			}
			evs, _, err := f.log.Query(f.ctx, audit.Filter{CaseID: id, Action: "deadline.flag", Limit: 50})
			if err != nil || len(evs) != 2 || evs[0].Actor != "system" || evs[0].Detail != "due_soon" || evs[1].Detail != "overdue" {
				t.Fatalf("flag events %+v %v", evs, err)
			}
			// Paused after its due date passed, it stays overdue (a stop
			// does not cure the lapse), with the same flag: not raised again.
			f.mustMove(id, "request_supplement", "more", 0)
			if sw, err = f.svc.SweepDeadlines(f.ctx); err != nil || sw.Overdue != 1 || sw.DueSoon != 0 || sw.Flagged != 0 {
				t.Fatalf("paused sweep %+v %v", sw, err)
			}
		})
	}
}
