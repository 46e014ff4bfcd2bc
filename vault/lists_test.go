package vault

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/review"
)

// walk follows next_cursor from the first page to the last, checking the
// page contract on the way: every page but the last is full, the last
// carries no cursor, and no item comes twice. between runs after each page.
func walk[T any](t *testing.T, limit int, page func(cursor string) (Page[T], error), id func(T) string, between func(n int)) []string {
	t.Helper()
	var ids []string
	seen := map[string]bool{}
	cursor := ""
	for n := 1; ; n++ {
		p, err := page(cursor)
		if err != nil {
			t.Fatalf("page %d: %v", n, err)
		}
		if p.Items == nil {
			t.Fatalf("page %d: items is null", n)
		}
		for _, it := range p.Items {
			k := id(it)
			if seen[k] {
				t.Fatalf("page %d repeats %s", n, k)
			}
			seen[k] = true
			ids = append(ids, k)
		}
		if p.NextCursor == "" {
			if len(p.Items) > limit {
				t.Fatalf("last page %d holds %d items, limit %d", n, len(p.Items), limit)
			}
			return ids
		}
		if len(p.Items) != limit {
			t.Fatalf("page %d holds %d items with a next_cursor: a short page must be the last (limit %d)", n, len(p.Items), limit)
		}
		if n > 1000 {
			t.Fatal("cursor never ends")
		}
		cursor = p.NextCursor
		if between != nil {
			between(n)
		}
	}
}

func (f *wfFixture) uploadID(a Actor, caseID, kind, name string) string {
	f.t.Helper()
	body := name + " document"
	m, err := f.svc.Upload(f.ctx, a, caseID, Upload{Kind: kind, Filename: name + ".txt", ContentType: "text/plain",
		Body: strings.NewReader(body), Size: int64(len(body))})
	if err != nil {
		f.t.Fatalf("upload %s: %v", name, err)
	}
	return m.ID
}

func forgedCursors(valid string) []string {
	return []string{
		"garbage!",
		"bm90IGEgY3Vyc29y",                        // base64 of "not a cursor"
		encodeCursor("cases", "0"),                // another list's cursor
		encodeCursor("materials", "x' OR '1'='1"), // not an id
		encodeCursor("materials", "a", "b"),       // too many keys
		encodeCursor("materials", ""),             // empty key
		strings.Repeat("A", 300),                  // too long
		valid[:len(valid)-1] + "%",                // not base64url
		"YzF8bWF0ZXJpYWxzfA",                      // "c1|materials|"
		encodeCursor("events", "0"), encodeCursor("events", "-3"), encodeCursor("events", "007"),
		encodeCursor("deadlines", "2025-02-30", "abc"), encodeCursor("deadlines", "2025-03-01"),
	}
}

// TestMaterialsPages walks a case's materials page by page as a party that
// may see only some of them: the pages are full until the last, the hidden
// materials leave no trace (no short page with a cursor, no cursor after
// the last visible one), and materials added or opened to the caller by a
// consent between pages are met further on.
func TestMaterialsPages(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			prov := f.org("Acme Routers", "provider")
			pu := f.user("prov1", prov, "provider")
			c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000", Providers: []string{prov.ID}})
			if err != nil {
				t.Fatal(err)
			}
			var mine, theirs []string
			for i := range 3 {
				mine = append(mine, f.uploadID(f.op, c.ID, "other", fmt.Sprintf("op-%d", i)))
				time.Sleep(2 * time.Millisecond) // ids sort by millisecond first
			}
			for i := range 4 {
				theirs = append(theirs, f.uploadID(pu, c.ID, "other", fmt.Sprintf("prov-%d", i)))
				time.Sleep(2 * time.Millisecond)
			}
			matID := func(m Material) string { return m.ID }

			// Three visible, four hidden after them: a page of three is the
			// whole list and says so.
			p, err := f.svc.MaterialsPage(f.ctx, f.op, c.ID, 3, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(p.Items); !slices.Equal(got, mine) || p.NextCursor != "" {
				t.Fatalf("operator's one page: %v next %q, want %v and no cursor", got, p.NextCursor, mine)
			}
			if got := walk(t, 2, func(cur string) (Page[Material], error) { return f.svc.MaterialsPage(f.ctx, f.op, c.ID, 2, cur) }, matID, nil); !slices.Equal(got, mine) {
				t.Fatalf("operator walk %v, want %v", got, mine)
			}
			if got := walk(t, 3, func(cur string) (Page[Material], error) { return f.svc.MaterialsPage(f.ctx, pu, c.ID, 3, cur) }, matID, nil); !slices.Equal(got, theirs) {
				t.Fatalf("provider walk %v, want %v", got, theirs)
			}

			// Between pages: the provider opens its third material to the
			// operator, and the operator adds one.
			var added string
			got := walk(t, 1, func(cur string) (Page[Material], error) { return f.svc.MaterialsPage(f.ctx, f.op, c.ID, 1, cur) }, matID, func(n int) {
				if n != 1 {
					return
				}
				if _, err := f.svc.GrantConsent(f.ctx, pu, theirs[2], NewConsent{Org: f.op.P.User.OrgID, Purpose: "joint answer"}); err != nil {
					t.Fatal(err)
				}
				added = f.uploadID(f.op, c.ID, "other", "op-late")
			})
			want := append(slices.Clone(mine), theirs[2], added)
			if !slices.Equal(got, want) {
				t.Fatalf("walk across a consent and an upload: %v, want %v", got, want)
			}

			// A cursor that names a hidden material moves the start, and
			// shows nothing hidden.
			p, err = f.svc.MaterialsPage(f.ctx, f.op, c.ID, 50, encodeCursor("materials", theirs[0]))
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(p.Items); !slices.Equal(got, []string{theirs[2], added}) {
				t.Fatalf("from a hidden material's id: %v", got)
			}
			for _, bad := range forgedCursors(p0Cursor(t, f, c.ID)) {
				_, err := f.svc.MaterialsPage(f.ctx, f.op, c.ID, 2, bad)
				wantCode(t, err, ErrInvalid, "invalid_cursor")
			}
		})
	}
}

func p0Cursor(t *testing.T, f *wfFixture, caseID string) string {
	t.Helper()
	p, err := f.svc.MaterialsPage(f.ctx, f.op, caseID, 1, "")
	if err != nil || p.NextCursor == "" {
		t.Fatalf("first page: %+v %v", p, err)
	}
	return p.NextCursor
}

func ids(ms []Material) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// TestAssignmentsPages walks a case's assignments while one on a page not
// yet read is revoked: every assignment comes once, the revoked one as
// revoked, and forged cursors are refused.
func TestAssignmentsPages(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			id := f.draft()
			if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
				t.Fatal(err)
			}
			officeOrg := f.office.P.User.OrgID
			var want []string
			for i := range 5 {
				u := f.user(fmt.Sprintf("rev-%d", i), access.Org{ID: officeOrg, Kind: "office"}, "reviewer")
				a, err := f.svc.Assign(f.ctx, f.office, id, NewAssignment{User: u.P.User.ID, Role: "reviewer", Purpose: "review"})
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, a.ID)
				time.Sleep(2 * time.Millisecond)
			}
			status := map[string]string{}
			got := walk(t, 2, func(cur string) (Page[access.Assignment], error) {
				p, err := f.svc.AssignmentsPage(f.ctx, f.office, id, 2, cur)
				for _, a := range p.Items {
					status[a.ID] = a.Status
				}
				return p, err
			}, func(a access.Assignment) string { return a.ID }, func(n int) {
				if n == 1 {
					if err := f.svc.Revoke(f.ctx, f.office, id, want[3]); err != nil {
						t.Fatal(err)
					}
				}
			})
			if !slices.Equal(got, want) {
				t.Fatalf("walk %v, want %v", got, want)
			}
			if status[want[3]] != access.StatusRevoked || status[want[4]] != access.StatusActive {
				t.Fatalf("statuses %v", status)
			}
			for _, bad := range forgedCursors(encodeCursor("assignments", want[0])) {
				_, err := f.svc.AssignmentsPage(f.ctx, f.office, id, 2, bad)
				wantCode(t, err, ErrInvalid, "invalid_cursor")
			}
			// The operator is refused whatever the cursor.
			_, err := f.svc.AssignmentsPage(f.ctx, f.op, id, 2, encodeCursor("assignments", want[0]))
			wantCode(t, err, ErrForbidden, "forbidden")
		})
	}
}

// TestHistoryAndDeadlinePages checks that walking the case history (as the
// office and as a party, whose numbering skips what it may not see) and the
// deadlines page by page gives the whole list, in order.
func TestHistoryAndDeadlinePages(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			var cases []string
			for range 3 {
				id := f.draft()
				f.at("2025-03-03")
				if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
					t.Fatal(err)
				}
				cases = append(cases, id)
			}
			f.at("2025-03-05")
			id := cases[0]
			f.mustMove(id, "require_review", "", 0)
			f.mustMove(id, "request_supplement", "need the escrow agreement", 0)
			for _, who := range []Actor{f.office, f.op} {
				whole, err := f.svc.History(f.ctx, who, id)
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, e := range whole {
					want = append(want, fmt.Sprint(e.Seq, e.Action))
				}
				got := walk(t, 1, func(cur string) (Page[review.Event], error) { return f.svc.HistoryPage(f.ctx, who, id, 1, cur) },
					func(e review.Event) string { return fmt.Sprint(e.Seq, e.Action) }, nil)
				if !slices.Equal(got, want) || len(want) < 2 {
					t.Fatalf("%s history walk %v, want %v", who.P.User.Username, got, want)
				}
			}
			whole, err := f.svc.Deadlines(f.ctx, f.office, MaxWithin)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, d := range whole {
				want = append(want, d.CaseID)
			}
			got := walk(t, 2, func(cur string) (Page[Deadline], error) {
				return f.svc.DeadlinesPage(f.ctx, f.office, MaxWithin, 2, cur)
			},
				func(d Deadline) string { return d.CaseID }, nil)
			if !slices.Equal(got, want) || len(want) < 2 {
				t.Fatalf("deadlines walk %v, want %v", got, want)
			}
			for _, bad := range forgedCursors(encodeCursor("events", "1")) {
				_, err := f.svc.HistoryPage(f.ctx, f.op, id, 2, bad)
				wantCode(t, err, ErrInvalid, "invalid_cursor")
				_, err = f.svc.DeadlinesPage(f.ctx, f.office, 3, 2, bad)
				wantCode(t, err, ErrInvalid, "invalid_cursor")
			}
			// The cases list's cursor is opaque too: a raw id is refused.
			if _, err := f.svc.ListCases(f.ctx, f.op, "", 1, id); err == nil {
				t.Fatal("a raw case id taken as a cursor")
			}
			// A forged audit cursor is invalid_cursor, for a party too.
			for _, who := range []Actor{f.op, f.user("insp", f.org("Inspectorate", "supervision"), "inspector")} {
				_, _, err := f.svc.AuditEvents(f.ctx, who, audit.Filter{Cursor: "bm9wZQ"})
				wantCode(t, err, ErrInvalid, "invalid_cursor")
			}
		})
	}
}

// TestSmallListsPages walks the lists that are short in practice (a
// material's consents, a member's own open uploads, the member units, the
// proposals) page by page: they honour limit and cursor like every other
// list, an item added between pages is met further on, one withdrawn
// before its page is not, and a forged cursor is invalid_cursor.
func TestSmallListsPages(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			var provs []access.Org
			var pu Actor
			for i := range 4 {
				provs = append(provs, f.org(fmt.Sprintf("Provider %d", i), "provider"))
				if i == 0 {
					pu = f.user("prov0", provs[0], "provider")
				}
			}
			c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000",
				Providers: []string{provs[0].ID, provs[1].ID, provs[2].ID, provs[3].ID}})
			if err != nil {
				t.Fatal(err)
			}
			forged := func(list string, page func(cursor string) error) {
				t.Helper()
				for _, bad := range append(forgedCursors(encodeCursor(list, "abc")), encodeCursor(list, "x y")) {
					wantCode(t, page(bad), ErrInvalid, "invalid_cursor")
				}
			}

			// Consents: the operator's material to its four providers; the
			// one to the last is withdrawn after the first page.
			mat := f.uploadID(f.op, c.ID, "other", "quote")
			var consents []string
			for _, org := range []string{provs[0].ID, provs[1].ID, provs[2].ID, provs[3].ID} {
				k, err := f.svc.GrantConsent(f.ctx, f.op, mat, NewConsent{Org: org, Purpose: "joint answer"})
				if err != nil {
					t.Fatal(err)
				}
				consents = append(consents, k.ID)
				time.Sleep(2 * time.Millisecond) // ids sort by millisecond first
			}
			got := walk(t, 2, func(cur string) (Page[Consent], error) { return f.svc.Consents(f.ctx, f.op, mat, 2, cur) },
				func(k Consent) string { return k.ID }, func(n int) {
					if err := f.svc.RevokeConsent(f.ctx, f.op, consents[3]); err != nil {
						t.Fatal(err)
					}
				})
			if !slices.Equal(got, consents[:3]) {
				t.Fatalf("consents %v, want %v", got, consents[:3])
			}
			forged("consents", func(cur string) error { _, err := f.svc.Consents(f.ctx, f.op, mat, 2, cur); return err })

			// The operator's open uploads; another one opened between pages.
			var uploads []string
			for i := range 3 {
				u, err := f.svc.CreateUpload(f.ctx, f.op, c.ID, NewUpload{Kind: "other", Filename: fmt.Sprintf("part-%d.bin", i)})
				if err != nil {
					t.Fatal(err)
				}
				uploads = append(uploads, u.ID)
				time.Sleep(2 * time.Millisecond)
			}
			if _, err := f.svc.CreateUpload(f.ctx, pu, c.ID, NewUpload{Kind: "other", Filename: "not-the-operators.bin"}); err != nil {
				t.Fatal(err)
			}
			got = walk(t, 2, func(cur string) (Page[UploadSession], error) { return f.svc.ListUploads(f.ctx, f.op, c.ID, 2, cur) },
				func(u UploadSession) string { return u.ID }, func(n int) {
					u, err := f.svc.CreateUpload(f.ctx, f.op, c.ID, NewUpload{Kind: "other", Filename: "late.bin"})
					if err != nil {
						t.Fatal(err)
					}
					uploads = append(uploads, u.ID)
				})
			if !slices.Equal(got, uploads) {
				t.Fatalf("uploads %v, want %v", got, uploads)
			}
			forged("uploads", func(cur string) error { _, err := f.svc.ListUploads(f.ctx, f.op, c.ID, 2, cur); return err })

			// The fixture's three member units, and a fourth registered
			// between pages (its org id sorts after the others').
			var units []string
			all, err := f.svc.MemberUnits(f.ctx, f.office, 500, "")
			if err != nil || len(all.Items) != 3 || all.NextCursor != "" {
				t.Fatalf("member units in one page: %+v, %v", all, err)
			}
			for _, m := range all.Items {
				units = append(units, m.Org)
			}
			got = walk(t, 2, func(cur string) (Page[MemberUnit], error) { return f.svc.MemberUnits(f.ctx, f.u1, 2, cur) },
				func(m MemberUnit) string { return m.Org }, func(n int) {
					org := f.org("Member unit cac", "member_unit")
					if _, err := f.svc.RegisterMemberUnit(f.ctx, f.office, NewMemberUnit{Org: org.ID, Unit: "cac"}); err != nil {
						t.Fatal(err)
					}
					units = append(units, org.ID)
				})
			if !slices.IsSorted(units) || !slices.Equal(got, units) {
				t.Fatalf("member units %v, want %v", got, units)
			}
			forged("member_units", func(cur string) error { _, err := f.svc.MemberUnits(f.ctx, f.office, 2, cur); return err })

			// Proposals: the office sees every unit's, a unit its own.
			var mine []string
			for i := range 3 {
				in := NewProposal{PartyOrg: f.op.P.User.OrgID, Subject: "product", Title: fmt.Sprintf("Ride data %d", i), Product: "dispatch platform", Reason: "national security risk"}
				p, err := f.svc.Propose(f.ctx, f.u1, in)
				if err != nil {
					t.Fatal(err)
				}
				mine = append(mine, p.ID)
				time.Sleep(2 * time.Millisecond)
				if i == 1 {
					in.Title = "Another unit's"
					if _, err := f.svc.Propose(f.ctx, f.u2, in); err != nil {
						t.Fatal(err)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
			got = walk(t, 2, func(cur string) (Page[Proposal], error) { return f.svc.Proposals(f.ctx, f.u1, "", 2, cur) },
				func(p Proposal) string { return p.ID }, nil)
			if !slices.Equal(got, mine) {
				t.Fatalf("a unit's proposals %v, want %v", got, mine)
			}
			props := walk(t, 3, func(cur string) (Page[Proposal], error) { return f.svc.Proposals(f.ctx, f.office, "", 3, cur) },
				func(p Proposal) string { return p.ID }, nil)
			if len(props) != 4 {
				t.Fatalf("the office sees %d proposals, want 4", len(props))
			}
			// Filtered by status, a page at a time: the approved one
			// leaves the proposals awaiting approval.
			if _, err := f.svc.ApproveProposal(f.ctx, f.office, props[1], ApprovalRequest{Reference: "CAC-1"}); err != nil {
				t.Fatal(err)
			}
			byStatus := func(status string) []string {
				t.Helper()
				return walk(t, 2, func(cur string) (Page[Proposal], error) { return f.svc.Proposals(f.ctx, f.office, status, 2, cur) },
					func(p Proposal) string { return p.ID }, nil)
			}
			if got, want := byStatus(ProposalProposed), []string{props[0], props[2], props[3]}; !slices.Equal(got, want) {
				t.Fatalf("awaiting approval %v, want %v", got, want)
			}
			if got := byStatus(ProposalApproved); !slices.Equal(got, []string{props[1]}) {
				t.Fatalf("approved %v, want [%s]", got, props[1])
			}
			if got := walk(t, 5, func(cur string) (Page[Proposal], error) {
				return f.svc.Proposals(f.ctx, f.u1, ProposalProposed, 5, cur)
			},
				func(p Proposal) string { return p.ID }, nil); len(got) != len(slices.DeleteFunc(slices.Clone(mine), func(id string) bool { return id == props[1] })) {
				t.Fatalf("a unit's proposals awaiting approval: %v (its own: %v)", got, mine)
			}
			var ve *Error
			if _, err := f.svc.Proposals(f.ctx, f.office, "pending", 2, ""); !errors.As(err, &ve) || ve.Kind != ErrInvalid || ve.Field != "status" {
				t.Fatalf("an unknown status: %v", err)
			}
			forged("proposals", func(cur string) error { _, err := f.svc.Proposals(f.ctx, f.office, "", 2, cur); return err })
		})
	}
}

// The editions are a list like the others: two, oldest first, a page at a
// time.
func TestEditionsPages(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	got := walk(t, 1, func(cur string) (Page[EditionInfo], error) { return f.svc.EditionsPage(1, cur) },
		func(e EditionInfo) string { return e.ID }, nil)
	if !slices.Equal(got, []string{"2020", "2021"}) {
		t.Fatalf("editions %v", got)
	}
	if p, err := f.svc.EditionsPage(0, ""); err != nil || len(p.Items) != 2 || p.NextCursor != "" {
		t.Fatalf("one page: %+v, %v", p, err)
	}
	for _, bad := range append(forgedCursors(encodeCursor("editions", "2020")), encodeCursor("editions", "2019")) {
		_, err := f.svc.EditionsPage(1, bad)
		wantCode(t, err, ErrInvalid, "invalid_cursor")
	}
}

// CaseTitles names only the cases the caller may list, whatever ids it is
// given, in one audited listing.
func TestCaseTitles(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			prov := f.org("Acme Routers", "provider")
			pu := f.user("prov1", prov, "provider")
			other := f.user("operator2", f.org("Other Grid", "operator"), "operator")
			insp := f.user("insp", f.org("Supervision", "supervision"), "inspector")
			mine, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "路由器采购", Product: "AR-9000", Providers: []string{prov.ID}})
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := f.svc.CreateCase(f.ctx, other, NewCase{Title: "Their secret title", Product: "X"})
			if err != nil {
				t.Fatal(err)
			}
			ids := []string{theirs.ID, mine.ID, mine.ID, "not an id", NewID()}
			for _, tc := range []struct {
				who  Actor
				want map[string]string
			}{
				{f.op, map[string]string{mine.ID: "路由器采购"}},
				{pu, map[string]string{mine.ID: "路由器采购"}},
				{other, map[string]string{theirs.ID: "Their secret title"}},
				{insp, map[string]string{mine.ID: "路由器采购", theirs.ID: "Their secret title"}},
				{f.rev, map[string]string{}}, // assigned to neither
			} {
				before, _, err := f.log.Query(f.ctx, audit.Filter{Actor: tc.who.P.User.ID, Action: "case.list", Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				got, err := f.svc.CaseTitles(f.ctx, tc.who, ids)
				if err != nil || !maps.Equal(got, tc.want) {
					t.Errorf("%s: %v, %v; want %v", tc.who.P.User.Username, got, err, tc.want)
				}
				after, _, err := f.log.Query(f.ctx, audit.Filter{Actor: tc.who.P.User.ID, Action: "case.list", Limit: 100})
				if err != nil || len(after) != len(before)+1 {
					t.Errorf("%s: %d case.list events after %d, want one more", tc.who.P.User.Username, len(after), len(before))
				}
			}
			if _, err := f.svc.CaseTitles(f.ctx, f.op, make([]string, 0)); err != nil {
				t.Fatal(err)
			}
			many := make([]string, maxCaseTitles+1)
			for i := range many {
				many[i] = fmt.Sprintf("c%04d", i)
			}
			_, err = f.svc.CaseTitles(f.ctx, f.op, many)
			wantCode(t, err, ErrInvalid, "too_many_ids")
		})
	}
}

// TestMaterialNames: the access log names the materials it refers to, each
// only to a viewer who may list it: the operator its own, another party's
// only under a live consent, an unrelated operator none, inspectors all;
// one material.list event per call.
func TestMaterialNames(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			prov := f.org("Acme Routers", "provider")
			pu := f.user("prov1", prov, "provider")
			other := f.user("operator2", f.org("Other Grid", "operator"), "operator")
			insp := f.user("insp", f.org("Supervision", "supervision"), "inspector")
			cs, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "路由器采购", Product: "AR-9000", Providers: []string{prov.ID}})
			if err != nil {
				t.Fatal(err)
			}
			up := func(a Actor, kind, name string) string {
				m, err := f.svc.Upload(f.ctx, a, cs.ID, Upload{Kind: kind, Filename: name, ContentType: "text/plain", Body: strings.NewReader("x"), Size: 1})
				if err != nil {
					t.Fatal(err)
				}
				return m.ID
			}
			opDoc, provDoc, provSecret := up(f.op, "declaration", "申报书.pdf"), up(pu, "other", "设计说明.pdf"), up(pu, "other", "源代码清单.txt")
			if _, err := f.svc.GrantConsent(f.ctx, pu, provDoc, NewConsent{Org: f.op.P.User.OrgID, Purpose: "the operator's own review"}); err != nil {
				t.Fatal(err)
			}
			ids := []string{opDoc, provDoc, provSecret, opDoc, "not an id", NewID()}
			for _, tc := range []struct {
				who  Actor
				want map[string]string
			}{
				{f.op, map[string]string{opDoc: "申报书.pdf", provDoc: "设计说明.pdf"}},
				{pu, map[string]string{provDoc: "设计说明.pdf", provSecret: "源代码清单.txt"}},
				{other, map[string]string{}},
				{insp, map[string]string{opDoc: "申报书.pdf", provDoc: "设计说明.pdf", provSecret: "源代码清单.txt"}},
			} {
				before, _, err := f.log.Query(f.ctx, audit.Filter{Actor: tc.who.P.User.ID, Action: "material.list", Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				got, err := f.svc.MaterialNames(f.ctx, tc.who, ids)
				if err != nil || !maps.Equal(got, tc.want) {
					t.Errorf("%s: %v, %v; want %v", tc.who.P.User.Username, got, err, tc.want)
				}
				after, _, err := f.log.Query(f.ctx, audit.Filter{Actor: tc.who.P.User.ID, Action: "material.list", Limit: 100})
				if err != nil || len(after) != len(before)+1 {
					t.Errorf("%s: %d material.list events after %d, want one more", tc.who.P.User.Username, len(after), len(before))
				}
			}
			many := make([]string, maxCaseTitles+1)
			for i := range many {
				many[i] = fmt.Sprintf("m%04d", i)
			}
			_, err = f.svc.MaterialNames(f.ctx, f.op, many)
			wantCode(t, err, ErrInvalid, "too_many_ids")
		})
	}
}

// TestLimitedSessionListsNoCase: a session limited to setting up its
// second factor lists no case, whatever its roles and assignments.
func TestLimitedSessionListsNoCase(t *testing.T) {
	f := newWF(t, sqldbtest.Backends[0], time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	cs, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "T", Product: "P"})
	if err != nil {
		t.Fatal(err)
	}
	limited := f.op
	limited.P.TOTPEnrolmentRequired = true
	for _, a := range []Actor{f.op, limited} {
		page, err := f.svc.ListCases(f.ctx, a, "", 50, "")
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 1, true: 0}[a.P.TOTPEnrolmentRequired]; len(page.Items) != want {
			t.Errorf("limited=%v: %d cases listed, want %d", a.P.TOTPEnrolmentRequired, len(page.Items), want)
		}
		if names, err := f.svc.CaseTitles(f.ctx, a, []string{cs.ID}); err != nil || len(names) != map[bool]int{false: 1, true: 0}[a.P.TOTPEnrolmentRequired] {
			t.Errorf("limited=%v: titles %v, %v", a.P.TOTPEnrolmentRequired, names, err)
		}
	}
}
