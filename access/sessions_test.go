package access

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLogin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, nil)
		ctx := context.Background()
		// The decoy that unknown usernames are checked against costs a
		// start no hashing (Argon2id.Decoy).
		if n := f.hasher.hashes.Load(); n != 0 {
			t.Fatalf("a start ran %d password hashes, want none", n)
		}
		op := f.org(t, "Grid Co", OrgOperator)
		alice := f.user(t, "alice", op, RoleOperator)

		for _, tc := range []struct {
			name, user, pw string
			want           error
		}{
			{"ok", "alice", testPassword, nil},
			// A phone's capital first letter, autofill's spaces.
			{"typed Alice", " Alice\t", testPassword, nil},
			{"typed ALICE", "ALICE", testPassword, nil},
			{"Cyrillic a", "\u0430lice", testPassword, ErrBadCredentials},
			{"wrong password", "alice", "wrong password!", ErrBadCredentials},
			{"wrong password, typed Alice", "Alice", "wrong password!", ErrBadCredentials},
			{"unknown user", "mallory", testPassword, ErrBadCredentials},
			{"empty", "", "", ErrBadCredentials},
			{"overlong username", string(make([]byte, 500)), testPassword, ErrBadCredentials},
			{"NUL and bad UTF-8", "al\x00\xff", testPassword, ErrBadCredentials},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := f.hasher.verifies.Load()
				s, err := f.svc.Login(ctx, Credentials{Username: tc.user, Password: tc.pw}, "10.0.0.1")
				if !errors.Is(err, tc.want) {
					t.Fatalf("Login = %v, want %v", err, tc.want)
				}
				// Same work whether or not the user exists: exactly one verify.
				if n := f.hasher.verifies.Load() - before; n != 1 {
					t.Fatalf("%d password verifications, want 1", n)
				}
				if err != nil {
					return
				}
				if len(s.Token) != 43 || s.ID == "" || s.User.ID != alice.User.ID {
					t.Fatalf("session = %+v", s)
				}
				if want := f.clock.Now().Add(8 * time.Hour); !s.ExpiresAt.Equal(want) {
					t.Errorf("expires %v, want %v", s.ExpiresAt, want)
				}
				p, err := f.svc.Authenticate(ctx, s.Token)
				if err != nil || p.User.ID != alice.User.ID || p.SessionID != s.ID || p.OrgKind != OrgOperator {
					t.Fatalf("Authenticate = %+v, %v", p, err)
				}
				// Only the hash of the token is stored.
				var n int64
				f.db.Model(&sessionRow{}).Where("token_hash = ? OR id = ?", s.Token, s.Token).Count(&n)
				if n != 0 {
					t.Error("raw token found in the database")
				}
			})
		}
		if _, err := f.svc.Authenticate(ctx, "not-a-token"); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("unknown token: %v", err)
		}
	})
}

func TestSessionLifetime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		for _, tc := range []struct {
			name  string
			steps []time.Duration // advance, then Authenticate
			okAt  []bool
		}{
			{"idle within timeout slides", []time.Duration{7 * time.Hour, 7 * time.Hour, 7 * time.Hour}, []bool{true, true, true}},
			{"idle timeout", []time.Duration{8 * time.Hour}, []bool{false}},
			{"idle after slide", []time.Duration{7 * time.Hour, 8 * time.Hour}, []bool{true, false}},
			{"absolute timeout despite use", []time.Duration{7 * time.Hour, 7 * time.Hour, 7 * time.Hour, 3 * time.Hour}, []bool{true, true, true, false}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, dialect, nil)
				f.user(t, "alice", f.org(t, "Grid Co", OrgOperator), RoleOperator)
				s, err := f.svc.Login(ctx, Credentials{Username: "alice", Password: testPassword}, "10.0.0.1")
				if err != nil {
					t.Fatal(err)
				}
				for i, d := range tc.steps {
					f.clock.Advance(d)
					_, err := f.svc.Authenticate(ctx, s.Token)
					if got := err == nil; got != tc.okAt[i] {
						t.Fatalf("step %d (+%v): err = %v, want ok=%v", i, d, err, tc.okAt[i])
					}
					if err != nil && !errors.Is(err, ErrUnauthenticated) {
						t.Fatalf("step %d: %v", i, err)
					}
				}
			})
		}

		t.Run("logout and disable revoke", func(t *testing.T) {
			f := newFixture(t, dialect, func(o *Options) { o.IdleTimeout = time.Hour; o.AbsoluteTimeout = 2 * time.Hour })
			alice := f.user(t, "alice", f.org(t, "Grid Co", OrgOperator), RoleOperator)
			s1, _ := f.svc.Login(ctx, Credentials{Username: "alice", Password: testPassword}, "10.0.0.1")
			s2, _ := f.svc.Login(ctx, Credentials{Username: "alice", Password: testPassword}, "10.0.0.1")
			if !s1.ExpiresAt.Equal(f.clock.Now().Add(time.Hour)) {
				t.Errorf("configured idle timeout ignored: %v", s1.ExpiresAt)
			}
			if err := f.svc.Logout(ctx, s1.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Authenticate(ctx, s1.Token); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("after logout: %v", err)
			}
			if _, err := f.svc.Authenticate(ctx, s2.Token); err != nil {
				t.Errorf("other session: %v", err)
			}
			if err := f.svc.Logout(ctx, "nope"); !errors.Is(err, ErrNotFound) {
				t.Errorf("logout unknown: %v", err)
			}
			if err := f.svc.DisableUser(ctx, alice.User.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Authenticate(ctx, s2.Token); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("after disable: %v", err)
			}
			if _, err := f.svc.Login(ctx, Credentials{Username: "alice", Password: testPassword}, "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
				t.Errorf("disabled login with right password: %v, want exactly a wrong password's answer", err)
			}
			if _, err := f.svc.Login(ctx, Credentials{Username: "alice", Password: "wrong password!"}, "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
				t.Errorf("disabled login with wrong password: %v", err)
			}
		})
	})
}

// TestTypedUsername: only ASCII capitals fold; a look-alike that Unicode
// case folding would turn into ASCII (the Kelvin sign, K) stays itself and
// so names no account.
func TestTypedUsername(t *testing.T) {
	for in, want := range map[string]string{
		" Zhang.San_1 ": "zhang.san_1",
		"KELLY":         "kelly",
		"\u212Aelly":    "\u212Aelly",
		"al\xffce":      "al\xffce",
	} {
		if got := typedUsername(in); got != want {
			t.Errorf("typedUsername(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUserByUsername: an account is found by its username as sign-in reads
// it, and text that is no username finds nothing, without a database error.
func TestUserByUsername(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, nil)
		ctx := context.Background()
		alice := f.user(t, "alice", f.org(t, "Grid Co", OrgOperator), RoleOperator)
		for _, typed := range []string{"alice", " Alice ", "ALICE"} {
			if u, err := f.svc.UserByUsername(ctx, typed); err != nil || u.ID != alice.User.ID {
				t.Errorf("UserByUsername(%q) = %+v, %v", typed, u, err)
			}
		}
		for _, typed := range []string{"bob", alice.User.ID, "al\x00ice", "\xff", ""} {
			if u, err := f.svc.UserByUsername(ctx, typed); !errors.Is(err, ErrNotFound) {
				t.Errorf("UserByUsername(%q) = %+v, %v; want ErrNotFound", typed, u, err)
			}
		}
	})
}
