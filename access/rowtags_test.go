package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
)

// A database administrator writes the tables directly: every test here
// changes rows as he would (no tag, or the old tag over new values) and
// checks that vaultd does not obey.

func dbaExec(t *testing.T, f *fixture, q string, args ...any) {
	t.Helper()
	if err := f.db.Exec(q, args...).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestDBASessionRowsGiveNoSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		f := newFixture(t, dialect, nil)
		office := f.org(t, "Office", OrgOffice)
		f.user(t, "alice", office, RoleReviewer)
		bob := f.user(t, "bob", office, RoleOfficeAdmin)
		now := f.clock.Now().UTC()
		session := func(t *testing.T) Session {
			t.Helper()
			s, err := login(f, "alice", testPassword, "10.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Authenticate(ctx, s.Token); err != nil {
				t.Fatalf("a genuine session: %v", err)
			}
			return s
		}
		refused := func(t *testing.T, token string) {
			t.Helper()
			if p, err := f.svc.Authenticate(ctx, token); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Authenticate = %+v, %v; want ErrUnauthenticated", p.User, err)
			}
		}

		t.Run("inserted row", func(t *testing.T) {
			token := "a-token-the-dba-chose-0123456789abcdef"
			dbaExec(t, f, `INSERT INTO access_sessions (id, token_hash, user_id, created_at, last_seen_at, absolute_end, second_factor) VALUES (?, ?, ?, ?, ?, ?, '')`,
				newID(now), hashToken(token), bob.User.ID, now, now, now.Add(time.Hour))
			refused(t, token)
		})
		t.Run("user changed", func(t *testing.T) {
			s := session(t)
			dbaExec(t, f, `UPDATE access_sessions SET user_id = ? WHERE id = ?`, bob.User.ID, s.ID)
			refused(t, s.Token)
		})
		t.Run("token changed", func(t *testing.T) {
			s := session(t)
			token := "another-token-the-dba-chose-0123456789"
			dbaExec(t, f, `UPDATE access_sessions SET token_hash = ? WHERE id = ?`, hashToken(token), s.ID)
			refused(t, token)
		})
		t.Run("end moved", func(t *testing.T) {
			s := session(t)
			dbaExec(t, f, `UPDATE access_sessions SET absolute_end = ? WHERE id = ?`, now.Add(90*24*time.Hour), s.ID)
			refused(t, s.Token)
		})
		t.Run("second factor set", func(t *testing.T) {
			s := session(t)
			dbaExec(t, f, `UPDATE access_sessions SET second_factor = 'amr' WHERE id = ?`, s.ID)
			refused(t, s.Token)
		})
		t.Run("revocation undone", func(t *testing.T) {
			s := session(t)
			if err := f.svc.Logout(ctx, s.ID); err != nil {
				t.Fatal(err)
			}
			dbaExec(t, f, `UPDATE access_sessions SET revoked_at = NULL WHERE id = ?`, s.ID)
			refused(t, s.Token)
		})
		t.Run("disabled account's sessions undone", func(t *testing.T) {
			carol := f.user(t, "carol", office, RoleReviewer)
			s, err := login(f, "carol", testPassword, "10.0.0.2")
			if err != nil {
				t.Fatal(err)
			}
			if err := f.svc.DisableUser(ctx, carol.User.ID); err != nil {
				t.Fatal(err)
			}
			dbaExec(t, f, `UPDATE access_sessions SET revoked_at = NULL WHERE user_id = ?`, carol.User.ID)
			dbaExec(t, f, `UPDATE access_users SET disabled = ? WHERE id = ?`, false, carol.User.ID)
			f.svc.accounts.flushUser("")
			refused(t, s.Token)
		})
		// Normal sessions still work, slide and end.
		s := session(t)
		f.clock.Advance(2 * time.Minute)
		if _, err := f.svc.Authenticate(ctx, s.Token); err != nil {
			t.Fatalf("a genuine session after sliding: %v", err)
		}
	})
}

func TestDBAAccountEditsAreRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		f := newFixture(t, dialect, nil)
		office := f.org(t, "Office", OrgOffice)
		operators := f.org(t, "Grid", OrgOperator)
		sys := f.user(t, "root", office, RoleSysadmin)
		signIn := func(name, pw string) error {
			_, err := login(f, name, pw, "10.0.0.9")
			return err
		}

		t.Run("roles", func(t *testing.T) {
			f.user(t, "rita", office, RoleReviewer)
			s, err := login(f, "rita", testPassword, "10.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			dbaExec(t, f, `UPDATE access_users SET roles = 'office_admin' WHERE username = 'rita'`)
			f.svc.accounts.flushUser("")
			if p, err := f.svc.Authenticate(ctx, s.Token); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("session of an account whose roles the DBA set: %v %v", p.User.Roles, err)
			}
			if err := signIn("rita", testPassword); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("sign-in: %v", err)
			}
		})
		t.Run("password hash", func(t *testing.T) {
			f.user(t, "paul", operators, RoleOperator)
			known := "the dba's own password"
			hash, err := cheapArgon2id.Hash(known)
			if err != nil {
				t.Fatal(err)
			}
			dbaExec(t, f, `UPDATE access_users SET password_hash = ? WHERE username = 'paul'`, hash)
			if err := signIn("paul", known); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("sign-in with the DBA's password: %v", err)
			}
		})
		t.Run("pending made active", func(t *testing.T) {
			if _, err := f.svc.CreateUser(ctx, NewUser{Username: "pat", Org: office.ID, Password: testPassword,
				Roles: []Role{RoleReviewer}, By: &sys}); err != nil {
				t.Fatal(err)
			}
			dbaExec(t, f, `UPDATE access_users SET status = 'active' WHERE username = 'pat'`)
			if err := signIn("pat", testPassword); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("sign-in of a pending account the DBA activated: %v", err)
			}
		})
		t.Run("disabled undone", func(t *testing.T) {
			u := f.user(t, "dora", operators, RoleOperator)
			if err := f.svc.DisableUser(ctx, u.User.ID); err != nil {
				t.Fatal(err)
			}
			dbaExec(t, f, `UPDATE access_users SET disabled = ? WHERE id = ?`, false, u.User.ID)
			if err := signIn("dora", testPassword); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("sign-in of a disabled account the DBA enabled: %v", err)
			}
		})
		t.Run("inserted account", func(t *testing.T) {
			hash, err := cheapArgon2id.Hash(testPassword)
			if err != nil {
				t.Fatal(err)
			}
			now := f.clock.Now().UTC()
			dbaExec(t, f, `INSERT INTO access_users (id, username, display_name, org_id, roles, password_hash, disabled, created_at, status) VALUES (?, 'mallory', 'M', ?, 'office_admin', ?, ?, ?, 'active')`,
				newID(now), office.ID, hash, false, now)
			if err := signIn("mallory", testPassword); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("sign-in of an account the DBA inserted: %v", err)
			}
		})
		t.Run("organisation kind", func(t *testing.T) {
			f.user(t, "otto", operators, RoleOperator)
			s, err := login(f, "otto", testPassword, "10.0.0.3")
			if err != nil {
				t.Fatal(err)
			}
			dbaExec(t, f, `UPDATE access_orgs SET kind = 'office' WHERE id = ?`, operators.ID)
			f.svc.accounts.flushUser("")
			if _, err := f.svc.Authenticate(ctx, s.Token); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("session of an account whose organisation the DBA changed: %v", err)
			}
		})
		// Changes made through the service keep their accounts usable.
		u := f.user(t, "nora", f.org(t, "Grid 2", OrgOperator), RoleOperator)
		if err := f.svc.ChangePassword(ctx, Principal{User: u.User}, testPassword, "a brand new passphrase", "10.0.0.4"); err != nil {
			t.Fatal(err)
		}
		if err := signIn("nora", "a brand new passphrase"); err != nil {
			t.Fatalf("sign-in after a password change: %v", err)
		}
	})
}

func TestDBAAssignmentEditsGrantNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		for _, tc := range []struct {
			name, who string
			dba       func(t *testing.T, w *world, userID string)
			// listed: the user is rightly assigned after the edit too.
			listed bool
		}{
			{"inserted assignment and declaration", "revNone", func(t *testing.T, w *world, u string) {
				now := w.clock.Now().UTC()
				id := newID(now)
				dbaExec(t, w.fixture, `INSERT INTO access_assignments (id, case_id, user_id, role, purpose, granted_by, granted_at) VALUES (?, 'case-1', ?, 'reviewer', 'p', ?, ?)`,
					id, u, w.p["admin"].User.ID, now)
				dbaExec(t, w.fixture, `INSERT INTO access_declarations (id, assignment_id, case_id, user_id, conflict, statement, created_at) VALUES (?, ?, 'case-1', ?, ?, ?, ?)`,
					newID(now), id, u, false, []byte("none"), now)
			}, false},
			{"revocation deleted", "revRevoked", func(t *testing.T, w *world, u string) {
				dbaExec(t, w.fixture, `DELETE FROM access_assignment_revocations WHERE assignment_id IN (SELECT id FROM access_assignments WHERE user_id = ?)`, u)
			}, false},
			{"conflict flipped", "revSusp", func(t *testing.T, w *world, u string) {
				dbaExec(t, w.fixture, `UPDATE access_declarations SET conflict = ? WHERE user_id = ?`, false, u)
			}, false},
			{"conflict deleted and declaration inserted", "revSusp", func(t *testing.T, w *world, u string) {
				var a assignmentRow
				if err := w.db.Where("user_id = ?", u).Take(&a).Error; err != nil {
					t.Fatal(err)
				}
				dbaExec(t, w.fixture, `DELETE FROM access_declarations WHERE user_id = ?`, u)
				now := w.clock.Now().UTC()
				dbaExec(t, w.fixture, `INSERT INTO access_declarations (id, assignment_id, case_id, user_id, conflict, statement, created_at) VALUES (?, ?, 'case-1', ?, ?, ?, ?)`,
					newID(now), a.ID, u, false, []byte("none"), now)
			}, false},
			{"declaration inserted", "revUndecl", func(t *testing.T, w *world, u string) {
				var a assignmentRow
				if err := w.db.Where("user_id = ?", u).Take(&a).Error; err != nil {
					t.Fatal(err)
				}
				now := w.clock.Now().UTC()
				dbaExec(t, w.fixture, `INSERT INTO access_declarations (id, assignment_id, case_id, user_id, conflict, statement, created_at) VALUES (?, ?, 'case-1', ?, ?, ?, ?)`,
					newID(now), a.ID, u, false, []byte("none"), now)
			}, true},
			{"assignment and declaration moved to another user", "revNone", func(t *testing.T, w *world, u string) {
				rev := w.p["rev"].User.ID
				dbaExec(t, w.fixture, `UPDATE access_assignments SET user_id = ? WHERE user_id = ?`, u, rev)
				dbaExec(t, w.fixture, `UPDATE access_declarations SET user_id = ? WHERE user_id = ?`, u, rev)
			}, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := newWorld(t, dialect)
				p := w.p[tc.who]
				tc.dba(t, w, p.User.ID)
				noRead := func(t *testing.T, how string, s *Service) {
					t.Helper()
					if d := decide(t, s, p, w.submitted, ActMaterialRead); d.Allowed {
						t.Errorf("%s: %s reads the case's materials after the DBA's edit: %+v", how, tc.who, d)
					}
				}
				// The running instance re-reads the pair on a notice the DBA
				// can send himself (pg_notify), and on every resync.
				if err := w.svc.HandleNotice(ctx, noticeGrant+":case-1 "+p.User.ID); err != nil {
					t.Fatal(err)
				}
				noRead(t, "after a notice", w.svc)
				// A start reads every row.
				noRead(t, "after a restart", w.restart(t))
				// Decisions that read the tables (while the index loads).
				gs, err := w.svc.readGrants(ctx, "case-1", p.User.ID)
				if err != nil {
					t.Fatal(err)
				}
				if slices.ContainsFunc(gs, func(g grant) bool { return g.declared && !g.suspended }) {
					t.Errorf("read from the tables: %+v", gs)
				}
				users, err := w.svc.AssignedUsers(ctx, "case-1", "reviewer")
				if err != nil {
					t.Fatal(err)
				}
				if slices.Contains(users, p.User.ID) != tc.listed {
					t.Errorf("%s listed as assigned: %v, want %v", tc.who, !tc.listed, tc.listed)
				}
				cases, err := w.svc.CasesOf(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if slices.Contains(cases, "case-1") != tc.listed {
					t.Errorf("CasesOf(%s) = %v", tc.who, cases)
				}
			})
		}
	})
}

// TestRowTagsKeepNormalFlows: grants, declarations, suspension and
// revocation made through the service read back the same after a restart
// and a notice (the tags they wrote check).
func TestRowTagsKeepNormalFlows(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		w := newWorld(t, dialect)
		re := w.restart(t)
		for name, want := range map[string]bool{"rev": true, "revUndecl": false, "revSusp": false, "revExp": false, "revRevoked": false, "muDecl": true, "adminRevDecl": true} {
			for _, s := range []*Service{w.svc, re} {
				if d := decide(t, s, w.p[name], w.submitted, ActMaterialRead); d.Allowed != want {
					t.Errorf("%s: %+v, want allowed %v", name, d, want)
				}
			}
			if err := re.HandleNotice(ctx, noticeGrant+":case-1 "+w.p[name].User.ID); err != nil {
				t.Fatal(err)
			}
			if d := decide(t, re, w.p[name], w.submitted, ActMaterialRead); d.Allowed != want {
				t.Errorf("%s after a notice: %+v, want allowed %v", name, d, want)
			}
		}
		as, err := re.Assignments(ctx, "case-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(as) != 9 {
			t.Errorf("%d assignments listed, want 9: %+v", len(as), as)
		}
	})
}

// TestTagUntaggedRows: rows from before row tags are refused until the
// one-time tagging, which keeps each as it stood (a revoked assignment
// stays revoked), and tags nothing the second time.
func TestTagUntaggedRows(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		f := newFixture(t, dialect, func(o *Options) { o.RowTagger = nil })
		office := f.org(t, "Office", OrgOffice)
		admin := f.user(t, "admin", office, RoleOfficeAdmin)
		rev := f.user(t, "rev", office, RoleReviewer)
		gone := f.user(t, "gone", office, RoleReviewer)
		facts := CaseFacts{ID: "case-1", Status: "submitted"}
		if _, err := f.svc.Assign(ctx, admin, "case-1", rev.User.ID, "reviewer", "p", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Declare(ctx, rev, "case-1", false, "none"); err != nil {
			t.Fatal(err)
		}
		a, err := f.svc.Assign(ctx, admin, "case-1", gone.User.ID, "reviewer", "p", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Declare(ctx, gone, "case-1", false, "none"); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Revoke(ctx, admin, "case-1", a.ID); err != nil {
			t.Fatal(err)
		}
		sess, err := login(f, "rev", testPassword, "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		// Single sign-on links and recovery codes, keyed by two columns
		// each, as older binaries wrote them.
		now := f.clock.Now().UTC()
		for i, u := range []Principal{admin, rev, gone} {
			dbaExec(t, f, `INSERT INTO access_oidc_identities (issuer, subject, user_id, created_at) VALUES (?, ?, ?, ?)`,
				"https://idp.example", fmt.Sprintf("sub-%d", 3-i), u.User.ID, now)
		}
		for _, c := range []struct {
			user, hash string
			used       *time.Time
		}{{rev.User.ID, "h2", nil}, {rev.User.ID, "h1", nil}, {gone.User.ID, "h1", nil}, {gone.User.ID, "h0", &now}} {
			dbaExec(t, f, `INSERT INTO access_recovery_codes (user_id, hash, used_at) VALUES (?, ?, ?)`, c.user, c.hash, c.used)
		}

		// The upgraded binary, before the tagging: nothing checks.
		tags := testTagger{key: []byte("access tests' row key")}
		f.opts.RowTagger = tags
		s := f.restart(t)
		if _, err := s.Authenticate(ctx, sess.Token); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("untagged session: %v", err)
		}
		if d := decide(t, s, rev, facts, ActMaterialRead); d.Allowed {
			t.Fatalf("untagged assignment: %+v", d)
		}

		// In pages of two rows: a table of three takes a full page and a
		// part, one of two a full page and an empty one.
		n, err := tagUntaggedRows(ctx, f.db, tags, 2)
		if err != nil {
			t.Fatal(err)
		}
		want := RowTagCounts{Orgs: 1, Users: 3, Identities: 3, Sessions: 1, Assignments: 2, Declarations: 2, RecoveryCodes: 3}
		if n != want {
			t.Fatalf("tagged %s, want %s", n, want)
		}
		var links []oidcIdentityRow
		if err := f.db.Find(&links).Error; err != nil || len(links) != 3 {
			t.Fatalf("links: %v, %v", links, err)
		}
		for _, l := range links {
			if !tags.CheckRowTag(l.RowTag, tagIdentities, l.tagFields()...) {
				t.Errorf("link %s: tag does not check", l.Subject)
			}
		}
		var codes []recoveryCodeRow
		if err := f.db.Find(&codes).Error; err != nil || len(codes) != 4 {
			t.Fatalf("codes: %v, %v", codes, err)
		}
		for _, c := range codes {
			if ok := tags.CheckRowTag(c.RowTag, tagRecovery, c.tagFields()...); ok != (c.UsedAt == nil) {
				t.Errorf("code %s of %s (used %v): tag checks %v", c.Hash, c.UserID, c.UsedAt != nil, ok)
			}
		}
		s = f.restart(t)
		if _, err := s.Authenticate(ctx, sess.Token); err != nil {
			t.Fatalf("tagged session: %v", err)
		}
		if d := decide(t, s, rev, facts, ActMaterialRead); !d.Allowed {
			t.Fatalf("tagged assignment: %+v", d)
		}
		if d := decide(t, s, gone, facts, ActMaterialRead); d.Allowed || d.Visible {
			t.Fatalf("a revoked assignment, tagged: %+v", d)
		}
		// Its revocation is in its tag now.
		dbaExec(t, f, `DELETE FROM access_assignment_revocations WHERE assignment_id = ?`, a.ID)
		if d := decide(t, f.restart(t), gone, facts, ActMaterialRead); d.Allowed || d.Visible {
			t.Fatalf("revocation deleted after the tagging: %+v", d)
		}
		if n, err := TagUntaggedRows(ctx, f.db, tags); err != nil || n.Total() != 0 {
			t.Fatalf("second tagging: %s, %v", n, err)
		}
	})
}

func TestDBARecoveryCodesAreRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		f := newFixture(t, dialect, func(o *Options) { o.Sealer = testSealer(t) })
		grid := f.org(t, "Grid", OrgOperator)
		alice := f.user(t, "alice", grid, RoleOperator)
		en, err := f.svc.StartTOTP(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		code, _ := TOTPCode(en.Secret, f.clock.Now())
		recovery, err := f.svc.ConfirmTOTP(ctx, alice, code)
		if err != nil {
			t.Fatal(err)
		}
		withCode := func(c string) error {
			_, err := f.svc.Login(ctx, Credentials{Username: "alice", Password: testPassword, TOTP: c}, "10.0.0.1")
			return err
		}
		// A code of the DBA's choosing, its hash inserted.
		mine := "abcd-efgh-jkmn"
		dbaExec(t, f, `INSERT INTO access_recovery_codes (user_id, hash) VALUES (?, ?)`, alice.User.ID, recoveryHash(alice.User.ID, mine))
		if err := withCode(mine); !errors.Is(err, ErrTOTPInvalid) {
			t.Fatalf("an inserted recovery code: %v", err)
		}
		// A used code made unused again.
		if err := withCode(recovery[0]); err != nil {
			t.Fatalf("a genuine recovery code: %v", err)
		}
		dbaExec(t, f, `UPDATE access_recovery_codes SET used_at = NULL WHERE user_id = ?`, alice.User.ID)
		if err := withCode(recovery[0]); !errors.Is(err, ErrTOTPInvalid) {
			t.Fatalf("a spent recovery code made unused: %v", err)
		}
		if err := withCode(recovery[1]); err != nil {
			t.Fatalf("another genuine recovery code: %v", err)
		}
		// TOTP taken off the account behind its back: no sign-in at all.
		dbaExec(t, f, `UPDATE access_users SET totp_secret = NULL WHERE id = ?`, alice.User.ID)
		if err := withCode(""); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("sign-in after the DBA removed TOTP: %v", err)
		}
	})
}

// TestStartChecksTagsAsRowTagWroteThem: a start checks assignments and
// declarations from the bytes it scans, with vaultd's checker; the tags
// they must match are RowTag's over the fields as strings, which every
// write makes (and every database tagged so far holds).
func TestStartChecksTagsAsRowTagWroteThem(t *testing.T) {
	tags := newCaseKeyTagger(t)
	expiry := time.Date(2026, 3, 4, 9, 0, 0, 123456000, time.UTC)
	for _, exp := range []*time.Time{nil, &expiry} {
		for _, suspended := range []bool{false, true} {
			state := assignmentState(false, suspended)
			fields := []string{"0190a1b2c3d4e5f60718293a4b5c6d7e", "case-1", "user-1", "reviewer", "Art. 16 review\x1fof 审查", "admin-1"}
			tag := tags.RowTag(tagAssignments, assignmentTagFields(fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], exp, state)...)
			row := func() (grantRow, []byte) {
				r := grantRow{id: []byte(fields[0]), caseID: []byte(fields[1]), userID: []byte(fields[2]), role: []byte(fields[3]),
					purpose: []byte(fields[4]), suspended: suspended}
				if exp != nil {
					r.expires = *exp
				}
				return r, []byte(fields[5])
			}
			chk := tags.RowTagChecker(tagAssignments)
			r, by := row()
			if !checkGrantTag(chk, &r, by, exp != nil, tag) {
				t.Fatalf("expires %v, state %q: RowTag's tag refused", exp, state)
			}
			for name, change := range map[string]func(r *grantRow, by *[]byte) bool{
				"id":         func(r *grantRow, _ *[]byte) bool { r.id[0] = 'f'; return exp != nil },
				"case":       func(r *grantRow, _ *[]byte) bool { r.caseID = []byte("case-2"); return exp != nil },
				"user":       func(r *grantRow, _ *[]byte) bool { r.userID = []byte("user-2"); return exp != nil },
				"role":       func(r *grantRow, _ *[]byte) bool { r.role = []byte("member_unit"); return exp != nil },
				"purpose":    func(r *grantRow, _ *[]byte) bool { r.purpose = r.purpose[:5]; return exp != nil },
				"granted by": func(_ *grantRow, by *[]byte) bool { *by = []byte("admin-2"); return exp != nil },
				"suspension": func(r *grantRow, _ *[]byte) bool { r.suspended = !r.suspended; return exp != nil },
				"expiry":     func(r *grantRow, _ *[]byte) bool { r.expires = expiry.Add(time.Microsecond); return true },
				"no expiry":  func(r *grantRow, _ *[]byte) bool { r.expires = time.Time{}; return false },
			} {
				if name == "no expiry" && exp == nil {
					continue
				}
				r, by := row()
				hasExp := change(&r, &by)
				if checkGrantTag(chk, &r, by, hasExp, tag) {
					t.Errorf("expires %v, state %q: %s changed, tag accepted", exp, state, name)
				}
			}
		}
	}
	for _, conflict := range []bool{false, true} {
		tag := tags.RowTag(tagDeclarations, declarationTagFields("d1", "a1", "case-1", "user-1", conflict)...)
		chk := tags.RowTagChecker(tagDeclarations)
		if !checkDeclarationTag(chk, []byte("d1"), []byte("a1"), []byte("case-1"), []byte("user-1"), conflict, tag) {
			t.Fatalf("conflict %v: RowTag's declaration tag refused", conflict)
		}
		for name, ok := range map[string]bool{
			"id":         checkDeclarationTag(chk, []byte("d2"), []byte("a1"), []byte("case-1"), []byte("user-1"), conflict, tag),
			"assignment": checkDeclarationTag(chk, []byte("d1"), []byte("a2"), []byte("case-1"), []byte("user-1"), conflict, tag),
			"case":       checkDeclarationTag(chk, []byte("d1"), []byte("a1"), []byte("case-2"), []byte("user-1"), conflict, tag),
			"user":       checkDeclarationTag(chk, []byte("d1"), []byte("a1"), []byte("case-1"), []byte("user-2"), conflict, tag),
			"conflict":   checkDeclarationTag(chk, []byte("d1"), []byte("a1"), []byte("case-1"), []byte("user-1"), !conflict, tag),
		} {
			if ok {
				t.Errorf("conflict %v: declaration's %s changed, tag accepted", conflict, name)
			}
		}
	}

	// Through the tables, on each backend: rows the service wrote (with
	// RowTag) load, and a row the DBA edits does not.
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		f := newFixture(t, dialect, func(o *Options) { o.RowTagger = tags })
		office := f.org(t, "Office", OrgOffice)
		admin := f.user(t, "admin", office, RoleOfficeAdmin)
		facts := CaseFacts{ID: "case-1", Status: "submitted"}
		exp := f.clock.Now().Add(48*time.Hour + 123456789)
		p := map[string]Principal{}
		for _, who := range []string{"rev", "revexp", "revsusp", "revedit"} {
			p[who] = f.user(t, who, office, RoleReviewer)
			var e *time.Time
			if who == "revexp" {
				e = &exp
			}
			if _, err := f.svc.Assign(ctx, admin, "case-1", p[who].User.ID, "reviewer", "Art. 16 review", e); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Declare(ctx, p[who], "case-1", who == "revsusp", "I declare."); err != nil {
				t.Fatal(err)
			}
		}
		dbaExec(t, f, `UPDATE access_assignments SET purpose = 'another purpose' WHERE user_id = ?`, p["revedit"].User.ID)
		s := f.restart(t)
		for who, want := range map[string]bool{"rev": true, "revexp": true, "revsusp": false, "revedit": false} {
			if d := decide(t, s, p[who], facts, ActMaterialRead); d.Allowed != want {
				t.Errorf("%s after a start: %+v, want allowed %v", who, d, want)
			}
		}
		// The suspended grant is in the index (its tag, naming its
		// suspension, checked); the edited one is not.
		s.mu.RLock()
		gs := s.grants["case-1"]
		s.mu.RUnlock()
		got := map[string]bool{}
		for _, g := range gs {
			got[g.user] = g.suspended
		}
		if susp, ok := got[p["revsusp"].User.ID]; !ok || !susp || len(got) != 3 {
			t.Errorf("index after a start: %+v", gs)
		}
		if _, ok := got[p["revedit"].User.ID]; ok {
			t.Errorf("the edited assignment is in the index: %+v", gs)
		}
	})
}

// TestStartTagCheckDoesNotAllocate: a start checks a million rows'
// tags; checking one (vaultd's checker, through access's interface) must
// allocate nothing, as RowTag's strings and fresh HMAC did.
func TestStartTagCheckDoesNotAllocate(t *testing.T) {
	tags := newCaseKeyTagger(t)
	exp := time.Date(2026, 3, 4, 9, 0, 0, 123456000, time.UTC)
	r := grantRow{id: []byte("0190a1b2c3d4e5f60718293a4b5c6d7e"), caseID: []byte("case-0000001"), userID: []byte("0190a1b2c3d4e5f60718293a4b5c6d7f"),
		role: []byte("reviewer"), purpose: []byte("preliminary review (Art. 10)"), expires: exp}
	by := []byte("0190a1b2c3d4e5f60718293a4b5c6d80")
	tag := tags.RowTag(tagAssignments, assignmentTagFields(string(r.id), string(r.caseID), string(r.userID), string(r.role), string(r.purpose), string(by), &exp, stateOpen)...)
	dtag := tags.RowTag(tagDeclarations, declarationTagFields("d1", string(r.id), string(r.caseID), string(r.userID), false)...)
	chk, dchk := tags.RowTagChecker(tagAssignments), tags.RowTagChecker(tagDeclarations)
	did := []byte("d1")
	if a := testing.AllocsPerRun(1000, func() {
		if !checkGrantTag(chk, &r, by, true, tag) {
			t.Fatal("assignment refused")
		}
	}); a != 0 {
		t.Errorf("an assignment's check: %v allocations, want none", a)
	}
	if a := testing.AllocsPerRun(1000, func() {
		if !checkDeclarationTag(dchk, did, r.id, r.caseID, r.userID, false, dtag) {
			t.Fatal("declaration refused")
		}
	}); a != 0 {
		t.Errorf("a declaration's check: %v allocations, want none", a)
	}
}

// countingPool counts the statements gorm and TagUntaggedRows send.
type countingPool struct {
	gorm.ConnPool
	n *atomic.Int64
}

func (p countingPool) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	p.n.Add(1)
	return p.ConnPool.ExecContext(ctx, q, args...)
}

func (p countingPool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	p.n.Add(1)
	return p.ConnPool.QueryContext(ctx, q, args...)
}

func (p countingPool) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	p.n.Add(1)
	return p.ConnPool.QueryRowContext(ctx, q, args...)
}

// countingDB is the pool; countingTx a transaction begun on it.
type countingDB struct{ countingPool }

func (p countingDB) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := p.ConnPool.(*sql.DB).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &countingTx{countingPool{tx, p.n}, tx}, nil
}

type countingTx struct {
	countingPool
	tx *sql.Tx
}

func (t *countingTx) Commit() error   { return t.tx.Commit() }
func (t *countingTx) Rollback() error { return t.tx.Rollback() }

// TestTagUntaggedRowsInPages: an upgrade's tagging reads and writes each
// table a page at a time (it took three statements an assignment, minutes
// for a million), and tags each assignment with its state: revoked,
// suspended by a declared conflict, or open.
func TestTagUntaggedRowsInPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		f := newFixture(t, dialect, func(o *Options) { o.RowTagger = nil })
		now := f.clock.Now().UTC()
		const n = 60
		exp := now.Add(time.Hour)
		states := map[string]string{}
		for i := range n {
			id := fmt.Sprintf("a%03d", i)
			var e *time.Time
			if i%2 == 0 {
				e = &exp
			}
			dbaExec(t, f, `INSERT INTO access_assignments (id, case_id, user_id, role, purpose, granted_by, granted_at, expires_at) VALUES (?, ?, ?, 'reviewer', 'p', 'admin', ?, ?)`,
				id, fmt.Sprintf("case-%d", i/10), fmt.Sprintf("user-%d", i), now, e)
			switch i % 3 {
			case 0:
				dbaExec(t, f, `INSERT INTO access_assignment_revocations (assignment_id, revoked_by, revoked_at, reason) VALUES (?, 'admin', ?, 'r')`, id, now)
				states[id] = stateRevoked
			case 1:
				states[id] = stateSuspended
			default:
				states[id] = stateOpen
			}
			// Every assignment has a no-conflict declaration; the
			// suspended also a conflict.
			for _, conflict := range []bool{false, true} {
				if !conflict || i%3 == 1 {
					dbaExec(t, f, `INSERT INTO access_declarations (id, assignment_id, case_id, user_id, conflict, statement, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
						fmt.Sprintf("d%v%03d", conflict, i), id, fmt.Sprintf("case-%d", i/10), fmt.Sprintf("user-%d", i), conflict, []byte("s"), now)
				}
			}
		}
		sqlDB, err := f.db.DB()
		if err != nil {
			t.Fatal(err)
		}
		var stmts atomic.Int64
		db := f.db.Session(&gorm.Session{Context: ctx}) // a Statement of its own
		db.Statement.ConnPool = countingDB{countingPool{sqlDB, &stmts}}
		tags := testTagger{key: []byte("access tests' row key")}
		c, err := tagUntaggedRows(ctx, db, tags, 25)
		if err != nil {
			t.Fatal(err)
		}
		if want := (RowTagCounts{Assignments: n, Declarations: n + n/3}); c != want {
			t.Fatalf("tagged %s, want %s", c, want)
		}
		// A read and a write a page: the assignments in three (25, 25,
		// 10), the declarations in four (25, 25, 25, 5); a read of each of
		// the five empty tables.
		want := int64(2*3 + 2*4 + 5)
		if f.db.Dialector.Name() == "postgres" {
			want++ // the plan cache mode, set first
		}
		if got := stmts.Load(); got != want {
			t.Errorf("%d statements to tag %s, want %d", got, c, want)
		}
		var as []assignmentRow
		if err := f.db.Order("id").Find(&as).Error; err != nil || len(as) != n {
			t.Fatalf("%d assignments, %v", len(as), err)
		}
		for _, a := range as {
			if !tags.CheckRowTag(a.RowTag, tagAssignments, a.tagFields(states[a.ID])...) {
				t.Errorf("%s: tag does not name its state %q", a.ID, states[a.ID])
			}
		}
		var ds []declarationRow
		if err := f.db.Find(&ds).Error; err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if !tags.CheckRowTag(d.RowTag, tagDeclarations, d.tagFields()...) {
				t.Errorf("declaration %s: tag does not check", d.ID)
			}
		}
		// A start with the tags checked: the open ones grant, the
		// suspended are suspended, the revoked are not there.
		f.opts.RowTagger = tags
		s := f.restart(t)
		s.mu.RLock()
		defer s.mu.RUnlock()
		got := map[string]string{}
		for _, gs := range s.grants {
			for _, g := range gs {
				got[g.id] = assignmentState(false, g.suspended)
			}
		}
		for id, want := range states {
			if st, ok := got[id]; ok != (want != stateRevoked) || ok && st != want {
				t.Errorf("%s after a start: %q (loaded %v), want %q", id, st, ok, want)
			}
		}
	})
}
