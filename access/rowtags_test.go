package access

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
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

		n, err := TagUntaggedRows(ctx, f.db, tags)
		if err != nil {
			t.Fatal(err)
		}
		want := RowTagCounts{Orgs: 1, Users: 3, Sessions: 1, Assignments: 2, Declarations: 2}
		if n != want {
			t.Fatalf("tagged %s, want %s", n, want)
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
