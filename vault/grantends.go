package vault

import (
	"context"
	"fmt"
	"strings"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
)

// GrantEnds reads from the audit trail which grants the office ended:
// assignments revoked, users recused from a case, and conflicts of interest
// declared on one. access holds these apart from its tables
// (access.Options.TrailEnds): a database administrator can put back an
// assignment row, row tag included, as it was before its revocation or
// before a declared conflict suspended it (a replay, which the tag cannot
// tell from the genuine row), but he cannot take an event out of the trail
// without breaking the chain that verification walks.
//
// Each change is audited as allowed before it is written; if it then does
// not happen, the same request records the same action again as denied or
// as an error (recordRefusal, recordFailure, the supervision's unrecord).
// Such an allowed event is matched with its refusal by request, actor, case
// and resource, and does not count. An allowed event left unmatched counts
// even if its change never took effect (its refusal could not be recorded):
// the office meant to end the grant, and ending it is the safe side.
func GrantEnds(ctx context.Context, log *audit.Log) (access.TrailEnds, error) {
	var out access.TrailEnds
	for _, action := range []string{"assignment.revoke", "assignment.recuse", "declaration.create"} {
		m := endMatcher{}
		err := log.EachOfAction(ctx, action, func(e audit.Event) error {
			if action == "declaration.create" && e.Outcome == audit.Allowed && e.Detail != "conflict" {
				return nil // no conflict: nothing ended
			}
			m.add(e)
			return nil
		})
		if err != nil {
			return access.TrailEnds{}, fmt.Errorf("read the grants the trail ended: %w", err)
		}
		for e := range m.ended() {
			switch action {
			case "assignment.revoke":
				if id, ok := strings.CutPrefix(e.Resource, "assignment/"); ok {
					out.Revoked = append(out.Revoked, id)
				}
			case "assignment.recuse":
				if user, ok := strings.CutPrefix(e.Resource, "user/"); ok {
					out.Recused = append(out.Recused, access.CaseUser{CaseID: e.CaseID, UserID: user})
				}
			case "declaration.create":
				out.Conflicts = append(out.Conflicts, access.CaseUser{CaseID: e.CaseID, UserID: e.Actor})
			}
		}
	}
	return out, nil
}

// endMatcher pairs a request's allowed event with the refusal that
// followed it.
type endMatcher struct {
	allowed []audit.Event
	// open holds, per request, actor, case and resource, the positions in
	// allowed not yet matched by a refusal.
	open map[endKey][]int
	gone map[int]bool
}

type endKey struct{ request, actor, caseID, resource string }

func (m *endMatcher) add(e audit.Event) {
	if m.open == nil {
		m.open, m.gone = map[endKey][]int{}, map[int]bool{}
	}
	k := endKey{e.RequestID, e.Actor, e.CaseID, e.Resource}
	switch e.Outcome {
	case audit.Allowed:
		m.allowed = append(m.allowed, e)
		if e.RequestID != "" {
			m.open[k] = append(m.open[k], len(m.allowed)-1)
		}
	case audit.Denied, audit.Errored:
		if open := m.open[k]; len(open) > 0 {
			m.gone[open[len(open)-1]] = true
			m.open[k] = open[:len(open)-1]
		}
	}
}

// ended yields the allowed events no refusal matched.
func (m *endMatcher) ended() func(func(audit.Event) bool) {
	return func(yield func(audit.Event) bool) {
		for i, e := range m.allowed {
			if !m.gone[i] && !yield(e) {
				return
			}
		}
	}
}
