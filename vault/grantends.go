package vault

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
)

// GrantEnds reads from the audit trail, after the event numbered after,
// which grants the office ended: assignments revoked, users recused from a
// case, and conflicts of interest declared on one. access holds these
// apart from its tables (access.Options.TrailEnds): a database
// administrator can put back an assignment row, row tag included, as it
// was before its revocation or before a declared conflict suspended it (a
// replay, which the tag cannot tell from the genuine row), but he cannot
// take an event out of the trail without breaking the chain that
// verification walks.
//
// Each change is audited as allowed before it is written; if it then does
// not happen, the server records the same action again, as an error or a
// refusal naming the allowed event it undoes (";undoes=<seq>": recordUndo,
// the supervision's unrecord). Only such a refusal undoes an end, and only
// one of the same actor, case and resource: a request id is the client's
// to choose, and a refusal at authorisation has no allowed event before
// it, so neither can take a genuine end back (review h30h). An allowed
// event never undone counts even if its change did not take effect (its
// undo could not be recorded): the office meant to end the grant, and
// ending it is the safe side.
//
// Releases before this one recorded a failure as an error naming nothing:
// such an error undoes the latest allowed event of the same request,
// actor, case and resource read with it. Only the server writes errors;
// a refusal at authorisation is recorded as denied, and never undoes.
//
// The query reads only the ends and the undos: of the declarations, the
// conflicts, not every declaration ever made. The three scans are bounded
// by the log's size read first, and the next read resumes after it, so an
// end appended between two scans is read next time, not skipped (review
// h30i).
func GrantEnds(ctx context.Context, log *audit.Log, after int64) (access.TrailEnds, error) {
	until, err := log.Size(ctx)
	if err != nil {
		return access.TrailEnds{}, fmt.Errorf("read the grants the trail ended: %w", err)
	}
	out := access.TrailEnds{Through: max(after, until)}
	if until <= after {
		return out, nil
	}
	type legacyKey struct{ request, actor, caseID, resource string }
	for _, action := range []string{"assignment.revoke", "assignment.recuse", "declaration.create"} {
		sc := audit.ActionScan{Action: action, After: after, Until: until, OtherDetailContains: UndoMark, OtherErrors: true}
		if action == "declaration.create" {
			sc.AllowedDetail = "conflict"
		}
		allowed := map[int64]audit.Event{}
		var order []int64
		open := map[legacyKey][]int64{}
		err := log.EachOfAction(ctx, sc, func(e audit.Event) error {
			k := legacyKey{e.RequestID, e.Actor, e.CaseID, e.Resource}
			if e.Outcome == audit.Allowed {
				allowed[e.Seq] = e
				order = append(order, e.Seq)
				if e.RequestID != "" {
					open[k] = append(open[k], e.Seq)
				}
				return nil
			}
			seq, ok := undoes(e.Detail)
			if !ok {
				if o := open[k]; e.Outcome == audit.Errored && e.RequestID != "" && len(o) > 0 {
					delete(allowed, o[len(o)-1])
					open[k] = o[:len(o)-1]
				}
				return nil
			}
			if a, here := allowed[seq]; here {
				if a.Actor == e.Actor && a.CaseID == e.CaseID && a.Resource == e.Resource {
					delete(allowed, seq)
				}
				return nil
			}
			if seq <= after {
				// Its allowed event came in an earlier read; access
				// checks it is the same end before letting it go.
				out.Undone = append(out.Undone, access.Undo{Seq: seq, Actor: e.Actor, CaseID: e.CaseID, Resource: e.Resource})
			}
			return nil
		})
		if err != nil {
			return access.TrailEnds{}, fmt.Errorf("read the grants the trail ended: %w", err)
		}
		for _, seq := range order {
			e, ok := allowed[seq]
			if !ok {
				continue
			}
			end := access.End{Seq: e.Seq, At: e.Time, Actor: e.Actor, Resource: e.Resource, CaseID: e.CaseID}
			switch action {
			case "assignment.revoke":
				id, ok := strings.CutPrefix(e.Resource, "assignment/")
				if !ok {
					continue
				}
				end.Kind, end.AssignmentID = access.EndRevoked, id
			case "assignment.recuse":
				user, ok := strings.CutPrefix(e.Resource, "user/")
				if !ok {
					continue
				}
				end.Kind, end.UserID = access.EndRecused, user
			case "declaration.create":
				end.Kind, end.UserID = access.EndConflict, e.Actor
			}
			out.Ends = append(out.Ends, end)
		}
	}
	return out, nil
}

// UndoMark introduces, in the detail of a refusal or error the server
// records after its own allowed event, the number of the event it undoes.
const UndoMark = ";undoes="

// undoes reads the seq a refusal's detail says it undoes.
func undoes(detail string) (int64, bool) {
	_, s, ok := strings.Cut(detail, UndoMark)
	if !ok {
		return 0, false
	}
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	seq, err := strconv.ParseInt(s, 10, 64)
	return seq, err == nil && seq > 0
}
