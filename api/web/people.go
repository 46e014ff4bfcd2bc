package web

import (
	"context"
	"strings"

	"github.com/crvault/crvault/access"
)

// person is how a page names an account or an organisation to the people
// who may know it (office admins for their assignments, inspectors in the
// audit trail): by name, with the opaque id kept for copying.
type person struct {
	ID, Name string
}

// people names the accounts of users and the organisations of orgs, one
// lookup per distinct id; an id that names none (a pseudonym, "system", a
// deleted account) has no name, and the page shows the id alone.
func (a *app) people(ctx context.Context, users, orgs []string) map[string]person {
	out := make(map[string]person, len(users)+len(orgs))
	name := func(ids []string, nameOf func(id string) string) {
		for _, id := range ids {
			if _, done := out[id]; !done && id != "" {
				out[id] = person{ID: id, Name: nameOf(id)}
			}
		}
	}
	name(users, func(id string) string {
		u, err := a.Access.CachedUser(ctx, id)
		if err != nil {
			return ""
		}
		return accountLabel(u)
	})
	name(orgs, func(id string) string { return a.orgNameOr(ctx, id, "") })
	return out
}

// accountLabel names an account as people know it: display name and
// username, or the username alone.
func accountLabel(u access.User) string {
	if d := strings.TrimSpace(u.DisplayName); d != "" && d != u.Username {
		return d + " (" + u.Username + ")"
	}
	return u.Username
}

// accountID reads what an office admin typed to name an account: its id,
// or else its username as sign-in reads it. What names neither is
// returned as typed, for the service to refuse.
func (a *app) accountID(ctx context.Context, typed string) string {
	typed = strings.TrimSpace(typed)
	if _, err := a.Access.User(ctx, typed); err == nil {
		return typed
	}
	if u, err := a.Access.UserByUsername(ctx, typed); err == nil {
		return u.ID
	}
	return typed
}

// maxAssignable bounds the accounts read for the assignment form's
// suggestions; past it, typing a username still works.
const maxAssignable = 2000

// assignable lists the active accounts an office admin may assign to a
// case (reviewers and member-unit staff), username first, for the form to
// suggest as the admin types.
func (a *app) assignable(ctx context.Context) []person {
	var out []person
	cursor := ""
	for read := 0; read < maxAssignable; {
		users, next, err := a.Access.ListUsers(ctx, access.UserFilter{Status: access.UserActive}, 500, cursor)
		if err != nil {
			return out // suggestions only: the form works without them
		}
		read += len(users)
		for _, u := range users {
			if u.Has(access.RoleReviewer) || u.Has(access.RoleMemberUnit) {
				out = append(out, person{ID: u.Username, Name: accountLabel(u)})
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return out
}
