package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb"
)

// A database administrator, with write access to the database and no key,
// inserts and edits the rows that say who a caller is and what they may do
// (review h29b, finding 1). vaultd must not obey: every such row carries a
// tag under the vault key "rows" (access/rowtags.go).

func dbaExec(t *testing.T, s *server, q string, args ...any) {
	t.Helper()
	db, err := sqldb.Open(context.Background(), s.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close(db)
	if err := db.Exec(q, args...).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// dbaSession is a session row of the DBA's making: a token he chose, its
// SHA-256, the victim's user id.
func dbaSession(t *testing.T, s *server, userID string) *client {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	now := time.Now().UTC()
	dbaExec(t, s, `INSERT INTO access_sessions (id, token_hash, user_id, created_at, last_seen_at, absolute_end, second_factor) VALUES (?, ?, ?, ?, ?, ?, '')`,
		hex.EncodeToString(id), hex.EncodeToString(sum[:]), userID, now, now, now.Add(24*time.Hour))
	return &client{t: t, s: s, token: token, id: userID}
}

// dbaNotify pokes every instance into re-reading a pair's grants, as the
// DBA can on PostgreSQL; on SQLite the next start reads them.
func dbaNotify(t *testing.T, s *server, caseID, userID string) {
	t.Helper()
	if strings.HasPrefix(s.dbURL(), "postgres") {
		dbaExec(t, s, `SELECT pg_notify('crvault_access', ?)`, "grant:"+caseID+" "+userID)
	}
}

func TestDBAForgedAccessRowsAreRefused(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, docs := w.newCase(t, "MARKER-ROWTAGS")
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"})
			w.rev1.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "none"})
			var doc string
			for id := range docs {
				doc = id
				w.rev1.expect(200, "GET", "/materials/"+id+"/content", nil)
			}

			// A session row of the DBA's making, for an assigned reviewer
			// with TOTP: no session.
			fake := dbaSession(t, s, w.rev1.id)
			fake.expect(401, "GET", "/materials/"+doc+"/content", nil)
			fake.expect(401, "GET", "/cases/"+caseID, nil)

			// An assignment row (and a declaration) for rev2, never
			// assigned, announced to the running server.
			w.rev2.expect(404, "GET", "/cases/"+caseID, nil)
			now := time.Now().UTC()
			dbaExec(t, s, `INSERT INTO access_assignments (id, case_id, user_id, role, purpose, granted_by, granted_at) VALUES (?, ?, ?, 'reviewer', 'preliminary review', ?, ?)`,
				"dba00000000000000000000000000001", caseID, w.rev2.id, w.office.id, now)
			dbaExec(t, s, `INSERT INTO access_declarations (id, assignment_id, case_id, user_id, conflict, statement, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				"dba00000000000000000000000000002", "dba00000000000000000000000000001", caseID, w.rev2.id, false, []byte("none"), now)
			dbaNotify(t, s, caseID, w.rev2.id)
			time.Sleep(time.Second) // let the notice arrive
			w.rev2.expect(404, "GET", "/cases/"+caseID, nil)
			w.rev2.expect(404, "GET", "/materials/"+doc+"/content", nil)

			// rev1's revocation deleted: still revoked.
			var page struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
			}
			w.office.expect(200, "GET", "/cases/"+caseID+"/assignments", nil).json(t, &page)
			asg := page.Items
			if len(asg) != 1 {
				t.Fatalf("assignments listed: %+v, want rev1's alone (the DBA's is not one)", asg)
			}
			w.office.expect(204, "DELETE", "/cases/"+caseID+"/assignments/"+asg[0].ID, nil)
			w.rev1.expect(404, "GET", "/materials/"+doc+"/content", nil)
			dbaExec(t, s, `DELETE FROM access_assignment_revocations WHERE assignment_id = ?`, asg[0].ID)
			dbaNotify(t, s, caseID, w.rev1.id)
			time.Sleep(time.Second)
			w.rev1.expect(404, "GET", "/materials/"+doc+"/content", nil)

			// A start reads every row again: the same refusals.
			s.stop()
			s.start()
			rev1, rev2 := s.login(t, "rev1", pw), s.login(t, "rev2", pw)
			rev1.expect(404, "GET", "/materials/"+doc+"/content", nil)
			rev2.expect(404, "GET", "/cases/"+caseID, nil)
			fake.expect(401, "GET", "/cases/"+caseID, nil)
			if !strings.Contains(s.log.String(), "row tag does not check") {
				t.Errorf("no ERROR naming the refused rows in the log")
			}

			// An account the DBA edits (roles) signs in nowhere.
			dbaExec(t, s, `UPDATE access_users SET roles = 'office_admin' WHERE id = ?`, w.rev2.id)
			s.stop()
			s.start()
			body := map[string]string{"username": "rev2", "password": pw, "totp": authenticators.get(s.realm(), "rev2").next(t)}
			if r := s.postJSON(t, "", "/sessions", body); r.Status != 401 {
				t.Fatalf("sign-in of an account whose roles the DBA set: %d %s", r.Status, r.Body)
			}
		})
	}
}

// TestRowTaggingRunsOnce: the one-time tagging of rows from before row
// tags is recorded in the audit log when the database is first opened with
// the keys, and never runs again: rows whose tags the DBA blanks stay
// refused across restarts.
func TestRowTaggingRunsOnce(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			s.stop()
			dbaExec(t, s, `UPDATE access_users SET row_tag = NULL WHERE id = ?`, w.op.id)
			s.start()
			s.stop()
			s.start()
			if r := s.postJSON(t, "", "/sessions", map[string]string{"username": "operator1", "password": pw}); r.Status != 401 {
				t.Fatalf("sign-in of an account whose tag the DBA blanked: %d %s", r.Status, r.Body)
			}
			s.login(t, "operator2", pw) // the others' rows still check
			marks := queryStrings(t, s, `SELECT actor || ' ' || detail FROM audit_events WHERE action = ?`, rowsTaggedAction)
			if len(marks) != 1 || !strings.HasPrefix(marks[0], "system orgs=0 users=0 ") {
				t.Fatalf("records of the one-time tagging: %q, want one, made before any row existed", marks)
			}
		})
	}
}
