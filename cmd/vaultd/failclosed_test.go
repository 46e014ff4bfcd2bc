package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

func (s *server) dbURL() string {
	for _, e := range s.env {
		if v, ok := strings.CutPrefix(e, "VAULT_DATABASE_URL="); ok {
			return v
		}
	}
	return "sqlite:" + filepath.Join(s.data, "vault.db")
}

func (s *server) sql(t testing.TB, stmts ...string) {
	t.Helper()
	db, err := sqldb.Open(context.Background(), s.dbURL())
	if err != nil {
		t.Fatalf("open server database: %v", err)
	}
	defer sqldb.Close(db)
	for _, q := range stmts {
		if err := db.Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestReadFailsClosedWithoutAudit makes the database refuse audit appends
// while the server runs: a read must then fail with 503 and send no byte of
// the document, and after recovery the log records the failure.
func TestReadFailsClosedWithoutAudit(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, docs := w.newCase(t, "MARKER-FAILCLOSED")
			var matID string
			for id := range docs {
				matID = id
			}
			w.op.expect(200, "GET", "/materials/"+matID+"/content", nil)

			if strings.HasPrefix(s.dbURL(), "postgres") {
				s.sql(t, `CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$`,
					`CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_audit()`)
			} else {
				s.sql(t, `CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END`)
			}
			r := w.op.do("GET", "/materials/"+matID+"/content", nil)
			if r.Status != 503 {
				t.Fatalf("read without audit: status %d, want 503", r.Status)
			}
			if p := r.problem(t); p["code"] != "audit_unavailable" {
				t.Fatalf("code %v", p["code"])
			}
			if strings.Contains(string(r.Body), "MARKER-FAILCLOSED") {
				t.Fatal("document bytes sent although the audit event was not written")
			}
			// An upload is refused as well, and leaves nothing behind.
			if r := w.op.uploadRaw(caseID, "other", "x.txt", "text/plain", []byte("MARKER-FAILCLOSED x")); r.Status != 503 {
				t.Fatalf("upload without audit: %d %s", r.Status, r.Body)
			}
			if strings.HasPrefix(s.dbURL(), "postgres") {
				s.sql(t, `DROP TRIGGER refuse_audit ON audit_events`)
			} else {
				s.sql(t, `DROP TRIGGER refuse_audit`)
			}
			w.op.expect(200, "GET", "/materials/"+matID+"/content", nil)
			var l struct {
				Items []any `json:"items"`
			}
			w.op.expect(200, "GET", "/cases/"+caseID+"/materials", nil).json(t, &l)
			if len(l.Items) != len(docs) {
				t.Fatalf("%d materials, want %d", len(l.Items), len(docs))
			}
			evs := w.insp.events("outcome=error")
			if len(evs) == 0 {
				t.Fatal("no error event records the refused appends after recovery")
			}
			s.stop()
			if out, errs, code := s.cli("", "audit", "verify"); code != 0 {
				t.Fatalf("audit verify: exit %d: %s %s", code, out, errs)
			}
		})
	}
}

type sqlConn struct{ db *gorm.DB }

func openSQL(url string) (*sqlConn, error) {
	db, err := sqldb.Open(context.Background(), url)
	if err != nil {
		return nil, err
	}
	return &sqlConn{db}, nil
}

func (c *sqlConn) close() { sqldb.Close(c.db) }

func (c *sqlConn) strings(q string) ([]string, error) {
	var out []string
	err := c.db.Raw(q).Scan(&out).Error
	return out, err
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func parseInt(s string) (int64, error) { return strconv.ParseInt(strings.TrimSpace(s), 10, 64) }
