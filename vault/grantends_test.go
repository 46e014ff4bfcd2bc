package vault

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// in is a as the request rid makes it.
func in(a Actor, rid string) Actor {
	a.RequestID = rid
	return a
}

// caseUser names one user on one case.
type caseUser struct{ CaseID, UserID string }

// TestGrantEndsFromTheTrail: the trail's revocations, recusals and declared
// conflicts are read back, a change that did not take effect (an allowed
// event its request then refused) is not, and an access index given them
// refuses an assignment the database administrator put back.
func TestGrantEndsFromTheTrail(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			ctx := f.ctx
			id := f.draft()
			if _, err := f.svc.Submit(ctx, f.op, id); err != nil {
				t.Fatal(err)
			}
			assign := func(who Actor, role, rid string) access.Assignment {
				t.Helper()
				a, err := f.svc.Assign(ctx, in(f.office, rid), id, NewAssignment{User: who.P.User.ID, Role: role, Purpose: "review"})
				if err != nil {
					t.Fatal(err)
				}
				return a
			}
			revoked := assign(f.rev, "reviewer", "r1")
			if err := f.svc.Revoke(ctx, in(f.office, "r2"), id, revoked.ID); err != nil {
				t.Fatal(err)
			}
			// Revoked again: allowed, then refused in the same request;
			// the first revocation still stands.
			if err := f.svc.Revoke(ctx, in(f.office, "r3"), id, revoked.ID); err == nil {
				t.Fatal("a second revocation succeeded")
			}
			// A revocation that never took effect.
			kept := assign(f.u1, "member_unit", "r4")
			if _, err := f.svc.Declare(ctx, in(f.u1, "r5"), id, NewDeclaration{Conflict: new(false), Statement: "None."}); err != nil {
				t.Fatal(err)
			}
			assign(f.u2, "member_unit", "r6")
			if _, err := f.svc.Declare(ctx, in(f.u2, "r7"), id, NewDeclaration{Conflict: new(true), Statement: "My brother works there."}); err != nil {
				t.Fatal(err)
			}
			// A second declaration by u2 under the same request id, refused
			// at authorisation: it names no event it undoes, so the
			// conflict stands (review h30h F1).
			if _, err := f.svc.Declare(ctx, in(f.u2, "r7"), id, NewDeclaration{Conflict: new(false), Statement: "None after all."}); err == nil {
				t.Fatal("a suspended unit declared again")
			}
			// Recusals are audited by supervision: one that took effect,
			// and a loser's of two concurrent resolutions, undone by the
			// server's refusal naming it; a refusal naming it by another
			// actor undoes nothing.
			kept1, err := f.log.Append(ctx, audit.Event{Actor: "insp", Action: "assignment.recuse", Outcome: audit.Allowed, CaseID: id, Resource: "user/" + f.unassigned.P.User.ID, RequestID: "r8"})
			if err != nil {
				t.Fatal(err)
			}
			lost, err := f.log.Append(ctx, audit.Event{Actor: "insp", Action: "assignment.recuse", Outcome: audit.Allowed, CaseID: id, Resource: "user/" + f.u1.P.User.ID, RequestID: "r9"})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range []audit.Event{
				{Actor: "insp2", Action: "assignment.recuse", Outcome: audit.Denied, CaseID: id, Resource: "user/" + f.unassigned.P.User.ID, RequestID: "r8",
					Detail: "concurrent_update" + UndoMark + strconv.FormatInt(kept1.Seq, 10)},
				{Actor: "insp", Action: "assignment.recuse", Outcome: audit.Denied, CaseID: id, Resource: "user/" + f.u1.P.User.ID, RequestID: "r9",
					Detail: "concurrent_update" + UndoMark + strconv.FormatInt(lost.Seq, 10)},
			} {
				if _, err := f.log.Append(ctx, e); err != nil {
					t.Fatal(err)
				}
			}

			ends, err := GrantEnds(ctx, f.log, 0)
			if err != nil {
				t.Fatal(err)
			}
			var revokedIDs []string
			var recused, conflicts []caseUser
			for _, e := range ends.Ends {
				switch e.Kind {
				case access.EndRevoked:
					revokedIDs = append(revokedIDs, e.AssignmentID)
				case access.EndRecused:
					recused = append(recused, caseUser{CaseID: e.CaseID, UserID: e.UserID})
				case access.EndConflict:
					conflicts = append(conflicts, caseUser{CaseID: e.CaseID, UserID: e.UserID})
				}
			}
			if !slices.Equal(revokedIDs, []string{revoked.ID}) {
				t.Errorf("revoked %v, want [%s]", revokedIDs, revoked.ID)
			}
			if want := []caseUser{{CaseID: id, UserID: f.unassigned.P.User.ID}}; !slices.Equal(recused, want) {
				t.Errorf("recused %v, want %v", recused, want)
			}
			if want := []caseUser{{CaseID: id, UserID: f.u2.P.User.ID}}; !slices.Equal(conflicts, want) {
				t.Errorf("conflicts %v, want %v", conflicts, want)
			}
			// Read on from where it stopped: nothing new, then an undo of
			// an end read before is handed over as such.
			more, err := GrantEnds(ctx, f.log, ends.Through)
			if err != nil || len(more.Ends) != 0 || len(more.Undone) != 0 || more.Through != ends.Through {
				t.Fatalf("a second read with nothing new: %+v, %v", more, err)
			}
			if _, err := f.log.Append(ctx, audit.Event{Actor: "insp", Action: "assignment.recuse", Outcome: audit.Errored, CaseID: id,
				Resource: "user/" + f.unassigned.P.User.ID, RequestID: "r8", Detail: "internal" + UndoMark + strconv.FormatInt(kept1.Seq, 10)}); err != nil {
				t.Fatal(err)
			}
			more, err = GrantEnds(ctx, f.log, ends.Through)
			if err != nil || len(more.Undone) != 1 || more.Undone[0].Seq != kept1.Seq || more.Undone[0].Actor != "insp" {
				t.Fatalf("an undo of an end read before: %+v, %v", more, err)
			}

			// Written by an earlier release: a failed revocation's error
			// named nothing, and undoes the allowed event of its request;
			// a refusal at authorisation (denied) never does.
			size, err := f.log.Size(ctx)
			if err != nil || more.Through != size {
				t.Fatalf("the read resumes after %d; the log holds %d (%v)", more.Through, size, err)
			}
			legacy := func(outcome audit.Outcome, rid, asg string) {
				t.Helper()
				if _, err := f.log.Append(ctx, audit.Event{Actor: "admin-old", Action: "assignment.revoke", Outcome: outcome, CaseID: id,
					Resource: "assignment/" + asg, RequestID: rid, Detail: "not_found"}); err != nil {
					t.Fatal(err)
				}
			}
			legacy(audit.Allowed, "old1", "a-failed")
			legacy(audit.Errored, "old1", "a-failed")
			legacy(audit.Allowed, "old2", "a-kept")
			legacy(audit.Denied, "old2", "a-kept")
			old, err := GrantEnds(ctx, f.log, more.Through)
			if err != nil {
				t.Fatal(err)
			}
			if len(old.Ends) != 1 || old.Ends[0].AssignmentID != "a-kept" {
				t.Fatalf("earlier release's revocations read as %+v; want a-kept only", old.Ends)
			}

			// The administrator deletes the revocation (this fixture's
			// access tags nothing, so that is the whole replay).
			if err := f.db.Exec("DELETE FROM access_assignment_revocations WHERE assignment_id = ?", revoked.ID).Error; err != nil {
				t.Fatal(err)
			}
			facts := access.CaseFacts{ID: id, OperatorOrg: f.op.P.User.OrgID, Status: "submitted"}
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			for _, withTrail := range []bool{false, true} {
				opts := access.Options{Logger: quiet}
				if withTrail {
					opts.TrailEnds = func(ctx context.Context, after int64) (access.TrailEnds, error) { return GrantEnds(ctx, f.log, after) }
				}
				acc, err := access.New(ctx, f.db, opts)
				if err != nil {
					t.Fatal(err)
				}
				d, err := acc.Decide(ctx, f.rev.P, facts, access.ActCaseRead)
				if err != nil {
					t.Fatal(err)
				}
				if d.Allowed == withTrail {
					t.Errorf("with the trail %v: the put-back assignment decides %+v", withTrail, d)
				}
				d, err = acc.Decide(ctx, f.u1.P, facts, access.ActCaseRead)
				if err != nil || !d.Allowed {
					t.Errorf("with the trail %v: u1, whose assignment %s nothing ended, decides %+v, %v", withTrail, kept.ID, d, err)
				}
			}
		})
	}
}

// TestGrantEndsReadEachEndOnceUnderAppends: ends appended while reads run
// (revocations and declared conflicts from two writers) are each read
// exactly once by reads that resume where the last one stopped. The three
// scans of a read are bounded by the log's size read first; an unbounded
// scan, or a resume point past what every scan saw, reads an end twice or
// skips one appended between two scans (review h30i: 59 of 400 skipped).
func TestGrantEndsReadEachEndOnceUnderAppends(t *testing.T) {
	const perWriter = 150
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			ctx := f.ctx
			start, err := f.log.Size(ctx)
			if err != nil {
				t.Fatal(err)
			}
			errs := make(chan error, 2)
			done := make(chan struct{})
			var writers sync.WaitGroup
			for w, e := range []audit.Event{
				{Actor: "office", Action: "assignment.revoke", Outcome: audit.Allowed, CaseID: "c1"},
				{Action: "declaration.create", Outcome: audit.Allowed, CaseID: "c1", Detail: "conflict"},
			} {
				writers.Add(1)
				go func() {
					defer writers.Done()
					for i := range perWriter {
						e := e
						if w == 0 {
							e.Resource = "assignment/a" + strconv.Itoa(i)
						} else {
							e.Actor, e.Resource = "u"+strconv.Itoa(i), "case/c1"
						}
						if _, err := f.log.Append(ctx, e); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			go func() { writers.Wait(); close(done) }()
			seen := map[string]int{}
			after := start
			read := func() {
				t.Helper()
				ends, err := GrantEnds(ctx, f.log, after)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range ends.Ends {
					seen[strconv.Itoa(int(e.Kind))+"/"+e.AssignmentID+e.UserID]++
				}
				after = ends.Through
			}
			for reading := true; reading; {
				select {
				case <-done:
					reading = false
				default:
				}
				read()
			}
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			read() // whatever the last read in the loop left
			if len(seen) != 2*perWriter {
				t.Errorf("%d distinct ends read, want %d", len(seen), 2*perWriter)
			}
			for k, n := range seen {
				if n != 1 {
					t.Errorf("end %s read %d times", k, n)
				}
			}
		})
	}
}
