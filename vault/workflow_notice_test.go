package vault

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// crashed is the panic of a simulated crash.
type crashed struct{}

// crashAfterDecision runs fn with the vault dying (a panic) right after a
// decision commits, before its written notice is written.
func (f *wfFixture) crashAfterDecision(fn func()) {
	f.t.Helper()
	f.svc.faults = func(p faultPoint) {
		if p == faultAfterDecision {
			panic(crashed{})
		}
	}
	defer func() { f.svc.faults = nil }()
	died := false
	func() {
		defer func() {
			if v := recover(); v != nil {
				if _, ok := v.(crashed); !ok {
					panic(v)
				}
				died = true
			}
		}()
		fn()
	}()
	if !died {
		f.t.Fatal("the request finished: no decision was taken")
	}
}

// notices are the case's written notices, as the party lists them.
func (f *wfFixture) notices(id string) []Material {
	f.t.Helper()
	ms, err := f.svc.ListMaterials(f.ctx, f.op, id)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []Material
	for _, m := range ms {
		if m.Kind == "notice" {
			out = append(out, m)
		}
	}
	return out
}

// uploader is who a material is attributed to, as stored.
func (f *wfFixture) uploader(materialID string) string {
	f.t.Helper()
	var r materialRow
	if err := f.db.Where("id = ?", materialID).Take(&r).Error; err != nil {
		f.t.Fatal(err)
	}
	return r.UploadedBy
}

// TestNoticeWrittenAfterCrash: the vault dies right after a decision
// commits and before its written notice is stored. The decision stands; the
// notice is owed, not lost: after a restart the notice sweeper writes it,
// once, even with two instances sweeping at once, and attributed as the
// request would have (the office for its decision, the system for the
// disagreement that starts a special review). The sweeper leaves alone a
// notice its own request is still about to write, and one already written.
func TestNoticeWrittenAfterCrash(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, editionStarts["2021"], false)
			id := f.draft()
			f.submit(id)
			f.crashAfterDecision(func() { _, _ = f.move(id, "require_review", "", 0) })
			if c, err := f.svc.GetCase(f.ctx, f.office, id); err != nil || c.Status != "under_review" {
				t.Fatalf("after the crash: %+v %v", c, err)
			}
			if n := len(f.notices(id)); n != 0 {
				t.Fatalf("%d notices before the restart", n)
			}

			// Restarted at once: the sweeper gives the request its grace
			// (it cannot tell a dead request from a slow one yet).
			svc := f.restart()
			if n, err := svc.WritePendingNotices(f.ctx); err != nil || n != 0 {
				t.Fatalf("sweep within the grace: %d %v", n, err)
			}
			// Past it, two instances sweep at once: one notice.
			f.mu.Lock()
			f.now = f.now.Add(noticeGrace + time.Second)
			f.mu.Unlock()
			other := f.restart()
			var wg sync.WaitGroup
			written := make([]int, 2)
			for i, s := range []*Service{svc, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n, err := s.WritePendingNotices(f.ctx)
					if err != nil {
						t.Errorf("sweep: %v", err)
					}
					written[i] = n
				}()
			}
			wg.Wait()
			ns := f.notices(id)
			if written[0]+written[1] != 1 || len(ns) != 1 {
				t.Fatalf("written %v, %d notices; want one", written, len(ns))
			}
			body := f.read(f.op, ns[0].ID)
			if !strings.Contains(body, "requires a cybersecurity review") || !strings.Contains(body, "Status: submitted -> under_review") ||
				!strings.Contains(body, "Review period: preliminary_review") || f.uploader(ns[0].ID) != f.office.P.User.ID {
				t.Fatalf("notice by %s:\n%s", f.uploader(ns[0].ID), body)
			}
			zhNotice(t, ns[0], body, "启动审查通知-", "状态：已提交 → 审查中", "审查期限：初步审查，自", "依据：《网络安全审查办法》（2021年", "第九条")
			if n, err := svc.WritePendingNotices(f.ctx); err != nil || n != 0 {
				t.Fatalf("second sweep: %d %v", n, err)
			}

			// A decision whose request lives writes its own notice; the
			// sweeper finds nothing left to write.
			f.mustMove(id, "extend", "complex supply chain", 0)
			f.mu.Lock()
			f.now = f.now.Add(time.Hour)
			f.mu.Unlock()
			if n, err := f.svc.WritePendingNotices(f.ctx); err != nil || n != 0 {
				t.Fatalf("sweep after a live decision: %d %v", n, err)
			}
			if n := len(f.notices(id)); n != 2 {
				t.Fatalf("%d notices, want 2", n)
			}

			// The disagreement that starts the special review: its notice
			// is the system's, never the member unit's.
			f.assign(id, f.rev, "reviewer")
			f.upload(f.rev, id, "recommendation")
			f.assign(id, f.u1, "member_unit")
			f.assign(id, f.u2, "member_unit")
			f.mustMove(id, "recommend", "", 0)
			no := false
			f.crashAfterDecision(func() { _, _ = f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &no, Comment: "supply risk"}) })
			if n := len(f.notices(id)); n != 3 {
				t.Fatalf("%d notices after the crash, want 3", n)
			}
			f.mu.Lock()
			f.now = f.now.Add(time.Hour)
			f.mu.Unlock()
			if n, err := f.restart().WritePendingNotices(f.ctx); err != nil || n != 1 {
				t.Fatalf("sweep after the disagreement: %d %v", n, err)
			}
			ns = f.notices(id)
			if len(ns) != 4 {
				t.Fatalf("%d notices, want 4", len(ns))
			}
			var special *Material
			for i := range ns {
				if strings.HasPrefix(ns[i].Filename, "进入特别审查程序通知-") {
					special = &ns[i]
				}
			}
			if special == nil {
				t.Fatalf("no special review notice in %+v", ns)
			}
			body = f.read(f.op, special.ID)
			if by := f.uploader(special.ID); by != "system" || strings.Contains(body, "supply risk") ||
				!strings.Contains(body, "special review procedure") {
				t.Fatalf("special review notice by %s:\n%s", by, body)
			}
			zhNotice(t, *special, body, "进入特别审查程序通知-", "本案进入特别审查程序", "状态：征求意见中 → 特别审查", "第十二条、第十三条")
		})
	}
}

// TestProposalApprovalAtomicWithItsNotice: recording the Commission's
// approval opens the party's case in the same transaction, so two offices
// approving at once open one case, and a crash right after leaves a case
// whose notice the sweeper writes, once, as the office's. Before, the
// approval committed on its own: a crash before the case left a proposal
// approved with no case, which could be neither approved again nor
// followed, and a crash before the notice left the party uninformed.
func TestProposalApprovalAtomicWithItsNotice(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, editionStarts["2021"], false)
			in := NewProposal{PartyOrg: f.op.P.User.OrgID, Subject: "data_processing", Title: "Ride data", Product: "dispatch platform", Reason: "risk"}
			p, err := f.svc.Propose(f.ctx, f.u1, in)
			if err != nil {
				t.Fatal(err)
			}
			// Approved twice at once: one case, one refusal.
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = f.svc.ApproveProposal(f.ctx, f.office, p.ID, ApprovalRequest{Reference: "CCAC-1"})
				}()
			}
			wg.Wait()
			if (errs[0] == nil) == (errs[1] == nil) {
				t.Fatalf("concurrent approvals: %v, %v; want one to win", errs[0], errs[1])
			}
			var cases int64
			if err := f.db.Model(&caseRow{}).Where("proposal_id = ?", p.ID).Count(&cases).Error; err != nil || cases != 1 {
				t.Fatalf("%d cases for the proposal (%v), want 1", cases, err)
			}

			// The vault dies right after the approval commits.
			p2, err := f.svc.Propose(f.ctx, f.u1, in)
			if err != nil {
				t.Fatal(err)
			}
			f.crashAfterDecision(func() {
				_, _ = f.svc.ApproveProposal(f.ctx, f.office, p2.ID, ApprovalRequest{Reference: "CCAC-2"})
			})
			var row proposalRow
			if err := f.db.Where("id = ?", p2.ID).Take(&row).Error; err != nil || row.Status != ProposalApproved || row.CaseID == "" {
				t.Fatalf("proposal after the crash: %+v %v", row, err)
			}
			if _, err := f.svc.GetCase(f.ctx, f.op, row.CaseID); err != nil {
				t.Fatalf("the approved proposal's case: %v", err)
			}
			if n := len(f.notices(row.CaseID)); n != 0 {
				t.Fatalf("%d notices before the restart", n)
			}
			f.mu.Lock()
			f.now = f.now.Add(noticeGrace + time.Second)
			f.mu.Unlock()
			svc := f.restart()
			if n, err := svc.WritePendingNotices(f.ctx); err != nil || n != 1 {
				t.Fatalf("sweep: %d %v", n, err)
			}
			if n, err := svc.WritePendingNotices(f.ctx); err != nil || n != 0 {
				t.Fatalf("second sweep: %d %v", n, err)
			}
			ns := f.notices(row.CaseID)
			if len(ns) != 1 || f.uploader(ns[0].ID) != f.office.P.User.ID {
				t.Fatalf("notices %+v", ns)
			}
			if body := f.read(f.op, ns[0].ID); !strings.Contains(body, "CCAC-2") || !strings.Contains(body, "Art. 16") {
				t.Fatalf("notice:\n%s", body)
			}
			zhNotice(t, ns[0], f.read(f.op, ns[0].ID), "成员单位提议审查通知-", "CCAC-2", "第十六条", "审查期间，当事人应当")
		})
	}
}

// zhNotice checks that a written notice is written for its Chinese reader
// first: a Chinese file name, then a Chinese text with what want names, no
// raw enum or ISO date in it, and the English text after it.
func zhNotice(t *testing.T, m Material, body, prefix string, want ...string) {
	t.Helper()
	if !strings.HasPrefix(m.Filename, prefix) {
		t.Errorf("notice file %q, want it to start %q", m.Filename, prefix)
	}
	zh, en, found := strings.Cut(body, englishFollows)
	if !found || !strings.HasPrefix(zh, "网络安全审查办公室\n") || !strings.Contains(en, "Cybersecurity Review Office - written notice") {
		t.Fatalf("notice is not Chinese first, English after:\n%s", body)
	}
	for _, w := range want {
		if !strings.Contains(zh, w) {
			t.Errorf("Chinese notice lacks %q:\n%s", w, zh)
		}
	}
	if raw := regexp.MustCompile(`[a-z]+_[a-z_]+|\d{4}-\d{2}-\d{2}|Art\.`).FindString(zh); raw != "" {
		t.Errorf("Chinese notice shows %q:\n%s", raw, zh)
	}
}

// TestNoticeKind: the notices list can name a notice from its file name,
// the Chinese ones written now and the English ones written before.
func TestNoticeKind(t *testing.T) {
	for name, want := range map[string][2]string{
		"要求补充材料通知-2026-12-02.txt":                        {"request_supplement", "2026-12-02"},
		"notice-request_supplement-2026-12-02.txt":       {"request_supplement", "2026-12-02"},
		"notice-special_review-2027-01-04.txt":           {"special_review", "2027-01-04"},
		"进入特别审查程序通知-2027-01-04.txt":                      {"special_review", "2027-01-04"},
		"notice-proposal-06h3aj4e7wn919cetygrsncj64.txt": {"proposal", ""},
		"成员单位提议审查通知-06h3aj4e7wn919cetygrsncj64.txt":      {"proposal", ""},
		"notice-2026-12-02.txt":                          {"", ""},
		"notice-unknown-2026-12-02.txt":                  {"", ""},
		"会议纪要.txt":                                       {"", ""},
	} {
		key, on, ok := NoticeKind(name)
		if key != want[0] || on != want[1] || ok != (want[0] != "") {
			t.Errorf("NoticeKind(%q) = %q, %q, %v; want %q, %q", name, key, on, ok, want[0], want[1])
		}
	}
	for _, a := range []review.Action{review.RequireReview, review.Opinion, review.Conclude} {
		on := calendar.Date{Y: 2026, M: 12, D: 2}
		if key, d, ok := NoticeKind(noticeFilename(a, on)); !ok || key != noticeKey(a) || d != on.String() {
			t.Errorf("%s: its own file name reads as %q, %q", a, key, d)
		}
	}
}

// TestPartysUploadLeavesTheNoticeTheSystems: the party's upload that
// brings in the last requested supplement closes the request, and the
// written notice of that is the office's, written by the system: stored as
// the party's upload it would be offered for consent and listed in the
// providers' access log as the operator's material.
func TestPartysUploadLeavesTheNoticeTheSystems(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, editionStarts["2021"], false)
			id := f.draft()
			f.submit(id)
			f.mustMove(id, "require_review", "", 0)
			f.mustMove(id, "request_supplement", "escrow agreement missing", 0)
			before := map[string]bool{}
			for _, m := range f.notices(id) {
				before[m.ID] = true
			}
			f.upload(f.op, id, "supplementary")
			var added []Material
			for _, m := range f.notices(id) {
				if !before[m.ID] {
					added = append(added, m)
				}
			}
			if len(added) != 1 {
				t.Fatalf("%d notices after the last supplement, want 1", len(added))
			}
			if by := f.uploader(added[0].ID); by != "system" {
				t.Fatalf("the notice of the closed request is attributed to %s, want system", by)
			}
		})
	}
}
