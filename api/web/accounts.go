package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/access"
)

// Account pages: every user's own account (password, TOTP), the
// sysadmin's account management and the approval queue. Each action is
// the JSON API's own call (apicall.go), so who may do what, and what is
// audited, is decided there.
func (a *app) accountPages(g *gin.RouterGroup) {
	g.GET("/account", a.accountPage)
	g.POST("/account/password", a.csrf, a.changePassword)
	g.POST("/account/totp/remove", a.csrf, a.removeTOTP)
	g.GET("/admin/users", a.usersPage)
	g.POST("/admin/users", a.csrf, a.createUser)
	g.POST("/admin/users/:id/disable", a.csrf, a.disableUser)
	g.POST("/admin/orgs", a.csrf, a.createOrg)
	g.GET("/approvals", a.approvalsPage)
	g.POST("/approvals/:id", a.csrf, a.approveUser)
}

type accountView struct {
	Me       access.User
	OrgName  string
	Required bool // TOTP is required for the account's roles
}

func (a *app) accountPage(c *gin.Context) {
	a.renderAccount(c, http.StatusOK, "")
}

func (a *app) renderAccount(c *gin.Context, status int, errMsg string) {
	p := pageOf(c)
	var me access.User
	if ans, ok := a.apiJSON(c, http.MethodGet, "/me", nil, &me); !ok {
		a.apiFail(c, ans)
		return
	}
	pr := principalOf(c)
	p.Error = errMsg
	p.Data = accountView{Me: me, OrgName: a.orgName(c.Request.Context(), me.OrgID), Required: a.Access.TOTPRequired(pr.User)}
	a.render(c, status, "account", p)
}

// changePassword changes the password with POST /me/password; every
// session of the account ends, this one too, so the page signs in again.
func (a *app) changePassword(c *gin.Context) {
	if c.PostForm("new") != c.PostForm("new2") {
		a.renderAccount(c, http.StatusUnprocessableEntity, pageOf(c).L.T("setup.password_mismatch"))
		return
	}
	ans, ok := a.apiJSON(c, http.MethodPost, "/me/password", map[string]string{"current": c.PostForm("current"), "new": c.PostForm("new")}, nil)
	if !ok {
		if ans.Status == http.StatusUnauthorized {
			a.apiFail(c, ans)
			return
		}
		a.renderAccount(c, ans.Status, a.apiMessage(c, ans))
		return
	}
	clearCookie(c.Writer, SessionCookie)
	c.Redirect(http.StatusSeeOther, "/login?done=password_changed")
}

// removeTOTP turns two-step sign-in off with DELETE /me/totp, where the
// account's roles allow it (the API refuses otherwise).
func (a *app) removeTOTP(c *gin.Context) {
	ans, ok := a.apiJSON(c, http.MethodDelete, "/me/totp", map[string]string{"code": strings.TrimSpace(c.PostForm("code"))}, nil)
	if !ok {
		if ans.Status == http.StatusUnauthorized {
			a.apiFail(c, ans)
			return
		}
		a.renderAccount(c, ans.Status, a.apiMessage(c, ans))
		return
	}
	c.Redirect(http.StatusSeeOther, "/account?done=totp_removed")
}

// userRow is an account as the lists show it.
type userRow struct {
	access.User
	OrgName string
}

type usersView struct {
	Users      []userRow
	NextCursor string
	Roles      []access.Role
	OrgKinds   []access.OrgKind
	Form       map[string]string
}

type userPage struct {
	Items      []access.User `json:"items"`
	NextCursor string        `json:"next_cursor"`
}

func (a *app) usersPage(c *gin.Context) {
	a.renderUsers(c, http.StatusOK, "", nil)
}

func (a *app) renderUsers(c *gin.Context, status int, errMsg string, form map[string]string) {
	p := pageOf(c)
	q := url.Values{"limit": {"50"}}
	if cur := c.Query("cursor"); cur != "" {
		q.Set("cursor", cur)
	}
	var list userPage
	if ans, ok := a.apiJSON(c, http.MethodGet, "/users?"+q.Encode(), nil, &list); !ok {
		a.apiFail(c, ans)
		return
	}
	p.Error = errMsg
	p.Data = usersView{Users: a.withOrgNames(c.Request.Context(), list.Items), NextCursor: list.NextCursor, Roles: access.Roles, OrgKinds: access.OrgKinds, Form: form}
	a.render(c, status, "users", p)
}

func (a *app) createUser(c *gin.Context) {
	var roles []access.Role
	for _, r := range c.PostFormArray("roles") {
		roles = append(roles, access.Role(r))
	}
	body := map[string]any{"username": strings.TrimSpace(c.PostForm("username")), "display_name": strings.TrimSpace(c.PostForm("display_name")),
		"org": strings.TrimSpace(c.PostForm("org")), "roles": roles, "password": c.PostForm("password")}
	var u access.User
	ans, ok := a.apiJSON(c, http.MethodPost, "/users", body, &u)
	if !ok {
		if ans.Status == http.StatusUnauthorized || ans.Status == http.StatusForbidden {
			a.apiFail(c, ans)
			return
		}
		a.renderUsers(c, ans.Status, a.apiMessage(c, ans), map[string]string{"username": c.PostForm("username"),
			"display_name": c.PostForm("display_name"), "org": c.PostForm("org")})
		return
	}
	done := "user_created"
	if u.Status == access.UserPendingApproval {
		done = "user_created_pending"
	}
	c.Redirect(http.StatusSeeOther, "/admin/users?done="+done)
}

// disableUser disables an account, after a page that asks: it cannot be
// undone from the web (the API has no enable), so it is never one click.
func (a *app) disableUser(c *gin.Context) {
	L := pageOf(c).L
	id := c.Param("id")
	name := strings.TrimSpace(c.PostForm("username")) // as the list showed it; only to say whom
	if name == "" {
		name = id
	}
	v := confirmView{Title: L.T("confirm.disable_title"), Summary: L.T("confirm.disable_summary", "User", name),
		Consequence: L.T("confirm.disable_consequence"), Button: L.T("users.disable"),
		Action: "/admin/users/" + url.PathEscape(id) + "/disable", Back: "/admin/users"}
	if id == principalOf(c).User.ID {
		v.Warning = L.T("confirm.disable_self")
	}
	if !a.confirmFirst(c, v, "username") {
		return
	}
	if ans, ok := a.apiJSON(c, http.MethodPost, "/users/"+url.PathEscape(c.Param("id"))+"/disable", nil, nil); !ok {
		a.apiFail(c, ans)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin/users?done=user_disabled")
}

func (a *app) createOrg(c *gin.Context) {
	body := map[string]string{"name": strings.TrimSpace(c.PostForm("name")), "kind": c.PostForm("kind")}
	ans, ok := a.apiJSON(c, http.MethodPost, "/orgs", body, nil)
	if !ok {
		if ans.Status == http.StatusUnauthorized || ans.Status == http.StatusForbidden {
			a.apiFail(c, ans)
			return
		}
		a.renderUsers(c, ans.Status, a.apiMessage(c, ans), nil)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin/users?done=org_created")
}

// approvalsPage lists the accounts waiting for the caller's approval
// (GET /users?status=pending_approval decides which).
func (a *app) approvalsPage(c *gin.Context) {
	p := pageOf(c)
	q := url.Values{"status": {access.UserPendingApproval}, "limit": {"50"}}
	if cur := c.Query("cursor"); cur != "" {
		q.Set("cursor", cur)
	}
	var list userPage
	if ans, ok := a.apiJSON(c, http.MethodGet, "/users?"+q.Encode(), nil, &list); !ok {
		a.apiFail(c, ans)
		return
	}
	p.Data = usersView{Users: a.withOrgNames(c.Request.Context(), list.Items), NextCursor: list.NextCursor}
	a.render(c, http.StatusOK, "approvals", p)
}

func (a *app) approveUser(c *gin.Context) {
	if ans, ok := a.apiJSON(c, http.MethodPost, "/users/"+url.PathEscape(c.Param("id"))+"/approve", nil, nil); !ok {
		a.apiFail(c, ans)
		return
	}
	c.Redirect(http.StatusSeeOther, "/approvals?done=user_approved")
}

// withOrgNames adds the organisations' names to accounts the caller was
// already allowed to list.
func (a *app) withOrgNames(ctx context.Context, users []access.User) []userRow {
	names := map[string]string{}
	rows := make([]userRow, 0, len(users))
	for _, u := range users {
		n, ok := names[u.OrgID]
		if !ok {
			n = a.orgName(ctx, u.OrgID)
			names[u.OrgID] = n
		}
		rows = append(rows, userRow{User: u, OrgName: n})
	}
	return rows
}

func (a *app) orgName(ctx context.Context, id string) string { return a.orgNameOr(ctx, id, id) }

// orgNameOr is the organisation's name, or otherwise when id names none.
func (a *app) orgNameOr(ctx context.Context, id, otherwise string) string {
	if o, err := a.Access.Org(ctx, id); err == nil {
		return o.Name
	}
	return otherwise
}
