package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/api/web"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/review"
)

// webDeps prepares the web application: its preferences table, on a
// database without accounts the first-run setup, and the audit page's
// background verifier, whose runs end with ctx (the server's); the caller
// closes it (Verifier.Close) before the audit log.
func (a *app) webDeps(ctx context.Context) (*web.Deps, error) {
	if err := web.Migrate(ctx, a.db); err != nil {
		return nil, err
	}
	setup, err := web.NewSetup(ctx, a.access)
	if err != nil {
		return nil, err
	}
	return &web.Deps{Prefs: web.NewPrefs(a.db), Setup: setup,
		Verifier: web.NewVerifier(ctx, a.audit.VerifyProgress, webVerifyTimeout, a.log).RecordResults(a.recordVerifyResult)}, nil
}

// webVerifyTimeout bounds one verification started from the audit page. A
// full run reads every event (hundreds of thousands a second) and lists the
// witnesses; hours mean something is stuck, and the page says the run did
// not finish rather than leave it running for ever. `vaultd audit verify`
// has no such bound.
const webVerifyTimeout = 4 * time.Hour

// announceSetup logs the one-time setup URL on a first start, and prints it
// as a plain line on stdout for the person who just typed vaultd serve.
func announceSetup(a *app, d *web.Deps, ln net.Listener, tls bool, stdout io.Writer) {
	if d == nil || d.Setup == nil {
		return
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	u := scheme + "://" + browserHost(ln.Addr().String()) + d.Setup.URL()
	a.log.Warn("first run: no account exists yet; open this one-time URL in a browser to create the Review Office and its first administrator",
		"url", u)
	fmt.Fprintf(stdout, "\ncrvault is running. First start: open this one-time link in your browser to set it up:\n\n    %s\n\n", u)
}

// browserHost turns a listen address into one a browser can open.
func browserHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, fs, err := parse("demo", args, stderr, getenv, nil)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"demo takes no arguments"}
	}
	a, err := openApp(ctx, cfg, newLogger(stderr, "warn"), withVault)
	if err != nil {
		return err
	}
	defer a.close(context.WithoutCancel(ctx))
	return fillDemo(ctx, a, stdout)
}

// demoFlag registers serve's --demo.
func demoFlag(demo *bool) func(*flag.FlagSet) {
	return func(fs *flag.FlagSet) {
		fs.BoolVar(demo, "demo", false, "first fill an empty data directory with sample organisations, accounts and a case (as vaultd demo)")
	}
}

var errNotEmpty = errors.New("demo needs an empty data directory: this one already has accounts")

type demoUser struct {
	username, display, org string
	role                   access.Role
	password               string
	id                     string
	orgKind                access.OrgKind
}

// fillDemo puts sample organisations, accounts and a case in progress into
// an empty database, through the same services the server uses, and prints
// the accounts. It refuses a database that has any account.
func fillDemo(ctx context.Context, a *app, out io.Writer) error {
	users, _, err := a.access.ListUsers(ctx, access.UserFilter{}, 1, "")
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return errNotEmpty
	}
	orgs := []struct {
		name string
		kind access.OrgKind
	}{
		{"网络安全审查办公室 Cybersecurity Review Office", access.OrgOffice},
		{"华北电网 North Grid Co", access.OrgOperator},
		{"安可路由 Acme Routers", access.OrgProvider},
		{"成员单位甲 Member Unit A", access.OrgMemberUnit},
		{"监督组 Inspectorate", access.OrgSupervision},
	}
	orgIDs := map[string]string{}
	for _, o := range orgs {
		org, err := a.access.CreateOrg(ctx, o.name, o.kind)
		if err != nil {
			return cliError("add organisation", err)
		}
		orgIDs[o.name] = org.ID
		if err := demoAudit(ctx, a, "org.create", "org/"+org.ID); err != nil {
			return err
		}
	}
	people := []*demoUser{
		{username: "office", display: "王主任 (office admin)", org: orgs[0].name, role: access.RoleOfficeAdmin, orgKind: access.OrgOffice},
		{username: "reviewer", display: "李审查 (reviewer)", org: orgs[0].name, role: access.RoleReviewer, orgKind: access.OrgOffice},
		{username: "gridop", display: "张工 (operator)", org: orgs[1].name, role: access.RoleOperator, orgKind: access.OrgOperator},
		{username: "acme", display: "陈经理 (provider)", org: orgs[2].name, role: access.RoleProvider, orgKind: access.OrgProvider},
		{username: "member", display: "赵处长 (member unit)", org: orgs[3].name, role: access.RoleMemberUnit, orgKind: access.OrgMemberUnit},
		{username: "inspector", display: "周监督 (inspector)", org: orgs[4].name, role: access.RoleInspector, orgKind: access.OrgSupervision},
	}
	byName := map[string]*demoUser{}
	for _, p := range people {
		p.password = demoPassword()
		u, err := a.access.CreateUser(ctx, access.NewUser{Username: p.username, DisplayName: p.display, Org: orgIDs[p.org],
			Roles: []access.Role{p.role}, Password: p.password})
		if err != nil {
			return cliError("add user "+p.username, err)
		}
		p.id = u.ID
		byName[p.username] = p
		if err := demoAudit(ctx, a, "user.create", "user/"+u.ID); err != nil {
			return err
		}
	}
	as := func(name string) vault.Actor {
		p := byName[name]
		u, _ := a.access.User(ctx, p.id)
		return vault.Actor{P: access.Principal{User: u, OrgKind: p.orgKind}, IP: "local", RequestID: "demo"}
	}
	cs, err := a.vault.CreateCase(ctx, as("gridop"), vault.NewCase{Title: "核心路由器采购 Core routers", Product: "AR-9000",
		Providers: []string{orgIDs[orgs[2].name]}})
	if err != nil {
		return fmt.Errorf("demo case: %w", err)
	}
	docs := []struct{ kind, name, ctype, text string }{
		{"declaration", "申报书 declaration.pdf", "application/pdf", "Cybersecurity review declaration: AR-9000 core routers"},
		{"impact_analysis", "影响分析 impact-analysis.pdf", "application/pdf", "National security impact analysis of the AR-9000"},
		{"procurement", "contract.txt", "text/plain; charset=utf-8", "采购合同 Procurement contract for 40 AR-9000 routers.\n"},
	}
	for _, d := range docs {
		body := []byte(d.text)
		if d.ctype == "application/pdf" {
			body = SamplePDF(d.text)
		}
		if _, err := a.vault.Upload(ctx, as("gridop"), cs.ID, vault.Upload{Kind: d.kind, Filename: d.name, ContentType: d.ctype,
			Body: strings.NewReader(string(body)), Size: int64(len(body))}); err != nil {
			return fmt.Errorf("demo material: %w", err)
		}
	}
	if _, err := a.vault.Submit(ctx, as("gridop"), cs.ID); err != nil {
		return fmt.Errorf("demo submit: %w", err)
	}
	if _, err := a.vault.Transition(ctx, as("office"), cs.ID, vault.TransitionRequest{Action: string(review.RequireReview)}); err != nil {
		return fmt.Errorf("demo review: %w", err)
	}
	if _, err := a.vault.Assign(ctx, as("office"), cs.ID, vault.NewAssignment{User: byName["reviewer"].id, Role: "reviewer",
		Purpose: "初步审查 preliminary review (Art. 10)"}); err != nil {
		return fmt.Errorf("demo assignment: %w", err)
	}
	fmt.Fprintln(out, "Demo data: five organisations, six accounts and a case under review:", cs.ID)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tPASSWORD\tROLE\tORGANISATION")
	for _, p := range people {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.username, p.password, p.role, p.org)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "Sign in at the server's address (default http://127.0.0.1:8080/). The reviewer must declare before reading.")
	return nil
}

func demoAudit(ctx context.Context, a *app, action, resource string) error {
	e := actorCLI()
	e.Action, e.Outcome, e.Resource = action, audit.Allowed, resource
	if _, err := a.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("record in audit log: %w", err)
	}
	return nil
}

// demoPassword is random, readable and long enough for any password rule.
func demoPassword() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	var s strings.Builder
	for i, c := range b {
		if i > 0 && i%5 == 0 {
			s.WriteByte('-')
		}
		s.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return s.String()
}

// SamplePDF is a minimal, valid one-page PDF showing a line of ASCII text,
// for the demo case and the browser tests.
func SamplePDF(text string) []byte {
	esc := strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(text)
	stream := "BT /F1 14 Tf 72 720 Td (" + esc + ") Tj ET"
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(stream), stream),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	var b strings.Builder
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return []byte(b.String())
}

// recordVerifyResult writes what a verification started from the audit page
// found, by whoever started it: passed (with the size checked), damaged,
// or incomplete (a run that could not finish proves nothing either way).
func (a *app) recordVerifyResult(ctx context.Context, run web.VerifyRun) error {
	_, err := a.audit.Append(ctx, verifyResultEvent(run))
	return err
}

func verifyResultEvent(run web.VerifyRun) audit.Event {
	e := audit.Event{Actor: run.By, ActorOrg: run.ByOrg, Action: "audit.verify_result", Resource: "audit"}
	switch {
	case run.Report != nil:
		e.Outcome, e.Detail = audit.Allowed, fmt.Sprintf("passed;size=%d", run.Report.TreeSize)
	case run.Broken:
		e.Outcome, e.Detail = audit.Errored, "damaged"
	default:
		e.Outcome, e.Detail = audit.Errored, "incomplete"
	}
	return e
}
