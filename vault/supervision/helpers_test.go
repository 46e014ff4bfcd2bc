package supervision

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/crypt"
)

// fixture is the supervision service over a real database, blob directory,
// age keys, access and audit log, with one case: filed by op, reviewed by
// rev, supervised by insp.
type fixture struct {
	t   testing.TB
	ctx context.Context
	db  *gorm.DB
	log *audit.Log
	acc *access.Service
	v   *vault.Service
	svc *Service

	master *crypt.Master
	blobs  blob.Store

	office, op, rev, insp vault.Actor
	caseID                string
}

func newFixture(t testing.TB, dialect string) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, ctx: ctx, db: sqldbtest.Open(t, dialect)}
	for _, migrate := range []func(context.Context, *gorm.DB) error{audit.Migrate, access.Migrate, vault.Migrate, Migrate} {
		if err := migrate(ctx, f.db); err != nil {
			t.Fatal(err)
		}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var err error
	if f.log, err = audit.Open(ctx, f.db, audit.Options{KeyDir: t.TempDir(), Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.log.Close(context.Background()) })
	if f.acc, err = access.New(ctx, f.db, access.Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	master, err := crypt.GenerateMaster()
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f.master, f.blobs = master, blobs
	f.v = vault.New(f.db, blobs, master, f.acc, f.log, vault.Config{Logger: quiet})
	if f.svc, err = New(f.db, f.v, f.acc, f.log, master, blobs, Config{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	office := f.org("Review Office", access.OrgOffice)
	f.office = f.user("office", office, access.RoleOfficeAdmin)
	f.rev = f.user("rev", office, access.RoleReviewer)
	f.op = f.user("operator1", f.org("Grid Co", access.OrgOperator), access.RoleOperator)
	f.insp = f.user("insp", f.org("Inspectorate", access.OrgSupervision), access.RoleInspector)
	f.caseID = f.newCase()
	if _, err := f.acc.Assign(ctx, f.office.P, f.caseID, f.rev.P.User.ID, "reviewer", "review", nil); err != nil {
		t.Fatal(err)
	}
	return f
}

// restart is a new vault and supervision service over the same database,
// store and keys: what a process started again finds.
func (f *fixture) restart() (*vault.Service, *Service) {
	f.t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	v := vault.New(f.db, f.blobs, f.master, f.acc, f.log, vault.Config{Logger: quiet})
	svc, err := New(f.db, v, f.acc, f.log, f.master, f.blobs, Config{Logger: quiet})
	if err != nil {
		f.t.Fatal(err)
	}
	return v, svc
}

// tagged returns r with the tag crvault would have written.
func (f *fixture) tagged(r commitmentRow) commitmentRow {
	f.t.Helper()
	key, err := f.v.RowsKey(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	r.Tag = commitmentTag(key, &r)
	return r
}

// taggedReport returns r with the tag crvault would have written.
func (f *fixture) taggedReport(r reportRow) reportRow {
	f.t.Helper()
	key, err := f.v.RowsKey(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	r.Tag = reportTag(key, &r)
	return r
}

// newCase files a case as the operator.
func (f *fixture) newCase() string {
	f.t.Helper()
	c, err := f.v.CreateCase(f.ctx, f.op, vault.NewCase{Title: "Routers", Product: "AR-9000"})
	if err != nil {
		f.t.Fatal(err)
	}
	return c.ID
}

func (f *fixture) org(name string, kind access.OrgKind) access.Org {
	f.t.Helper()
	o, err := f.acc.CreateOrg(f.ctx, name, kind)
	if err != nil {
		f.t.Fatal(err)
	}
	return o
}

func (f *fixture) user(name string, org access.Org, role access.Role) vault.Actor {
	f.t.Helper()
	u, err := f.acc.CreateUser(f.ctx, access.NewUser{Username: name, Org: org.ID, Password: "correct horse battery", Roles: []access.Role{role}})
	if err != nil {
		f.t.Fatal(err)
	}
	return vault.Actor{P: access.Principal{User: u, OrgKind: org.Kind}, IP: "127.0.0.1", RequestID: "test-" + name}
}

// investigatedComplaint stores a complaint by the operator against the
// reviewer, already under investigation: what FileComplaint and
// SetComplaintStatus make, without the pseudonym round trip.
func (f *fixture) investigatedComplaint() string {
	f.t.Helper()
	return f.complaintOn(f.caseID)
}

// complaintOn stores a complaint like investigatedComplaint's on caseID.
func (f *fixture) complaintOn(caseID string) string {
	f.t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	row := complaintRow{ID: newID(), CaseID: caseID, Subject: f.rev.P.User.ID, Kind: "confidentiality", Status: StatusInvestigating,
		FiledBy: f.op.P.User.ID, FiledByOrg: f.op.P.User.OrgID, FiledAt: now, UpdatedAt: now}
	var err error
	if row.Description, err = f.svc.seal(f.ctx, label("supervision_complaints", "description", row.ID), "the reviewer leaked the design"); err != nil {
		f.t.Fatal(err)
	}
	key, err := f.v.RowsKey(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	tagComplaint(key, &row)
	if err := f.db.Create(&row).Error; err != nil {
		f.t.Fatal(err)
	}
	// Its change to investigating, as SetComplaintStatus records it.
	h := complaintChangeRow{ComplaintID: row.ID, Status: StatusInvestigating, Note: []byte{}, By: f.insp.P.User.ID, At: now}
	if err := f.db.Create(&h).Error; err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.Model(&h).UpdateColumn("tag", complaintChangeTag(key, &h)).Error; err != nil {
		f.t.Fatal(err)
	}
	return row.ID
}

// failRecusals makes every write of a recusal fail in the database (on)
// or lets it through again (off): a fault in the middle of the recusal.
func (f *fixture) failRecusals(on bool) {
	f.t.Helper()
	var stmts []string
	switch {
	case sqldb.Dialect(f.db) == sqldb.Postgres && on:
		stmts = []string{
			`CREATE FUNCTION h28_fail_recusal() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$ LANGUAGE plpgsql`,
			`CREATE TRIGGER h28_fail_recusal BEFORE INSERT ON access_recusals FOR EACH ROW EXECUTE FUNCTION h28_fail_recusal()`,
		}
	case sqldb.Dialect(f.db) == sqldb.Postgres:
		stmts = []string{`DROP TRIGGER h28_fail_recusal ON access_recusals`, `DROP FUNCTION h28_fail_recusal()`}
	case on:
		stmts = []string{`CREATE TRIGGER h28_fail_recusal BEFORE INSERT ON access_recusals BEGIN SELECT RAISE(ABORT, 'injected fault'); END`}
	default:
		stmts = []string{`DROP TRIGGER h28_fail_recusal`}
	}
	for _, q := range stmts {
		if err := f.db.Exec(q).Error; err != nil {
			f.t.Fatalf("%s: %v", q, err)
		}
	}
}

// trail lists the outcome and detail of every event of action, in order.
func (f *fixture) trail(action string) []string {
	f.t.Helper()
	evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: action, Limit: 500})
	if err != nil {
		f.t.Fatal(err)
	}
	// An undo names the allowed event it undoes by number: shown as
	// ";undoes=allowed" when that is an allowed event of the same action.
	allowed := map[string]bool{}
	out := []string{}
	for _, e := range evs {
		d := e.Detail
		if head, seq, ok := strings.Cut(d, vault.UndoMark); ok && allowed[seq] {
			d = head + vault.UndoMark + "allowed"
		}
		if e.Outcome == audit.Allowed {
			allowed[strconv.FormatInt(e.Seq, 10)] = true
		}
		out = append(out, string(e.Outcome)+":"+d)
	}
	return out
}
