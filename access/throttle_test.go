package access

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func login(f *fixture, user, pw, ip string) (Session, error) {
	return f.svc.Login(context.Background(), Credentials{Username: user, Password: pw}, ip)
}

func wantThrottled(t *testing.T, err error, wait time.Duration) {
	t.Helper()
	var te *ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, ErrThrottled) {
		t.Fatalf("err = %v, want throttled", err)
	}
	if wait > 0 && te.RetryAfter != wait {
		t.Fatalf("retry after %v, want %v", te.RetryAfter, wait)
	}
}

// TestLockoutAttempts is the lockout attack: wrong passwords from
// one client back that client off exponentially, and nobody else.
func TestLockoutAttempts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		rate := func(o *Options) {
			o.LoginRate = LoginRate{FreeFails: 3, BaseDelay: time.Second, MaxDelay: 8 * time.Second, PerUser: 1000, Window: time.Hour}
		}
		f := newFixture(t, dialect, rate)
		f.user(t, "alice", f.org(t, "Grid Co", OrgOperator), RoleOperator)
		const attacker, office = "203.0.113.9", "198.51.100.20"

		for i := range 3 {
			if _, err := login(f, "alice", "wrong password!", attacker); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("free failure %d: %v", i, err)
			}
		}
		// Backoff doubles per failure and is capped; a throttled attempt
		// does not even hash the password.
		for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
			before := f.hasher.verifies.Load()
			_, err := login(f, "alice", testPassword, attacker)
			wantThrottled(t, err, wait)
			if f.hasher.verifies.Load() != before {
				t.Fatal("throttled attempt hashed the password")
			}
			// The real user, elsewhere, signs in all along.
			if _, err := login(f, "alice", testPassword, office); err != nil {
				t.Fatalf("alice from her office while %s is backed off: %v", attacker, err)
			}
			f.clock.Advance(wait)
			if _, err := login(f, "alice", "wrong password!", attacker); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("after waiting %v: %v", wait, err)
			}
		}
		// Unknown usernames back off exactly alike (no existence oracle).
		for range 3 {
			login(f, "ghost", "wrong password!", attacker)
		}
		_, err := login(f, "ghost", "wrong password!", attacker)
		wantThrottled(t, err, time.Second)

		// The counter is in the database: another instance sees it.
		other := f.restart(t)
		_, err = other.Login(context.Background(), Credentials{Username: "alice", Password: testPassword}, attacker)
		wantThrottled(t, err, 0)

		// IPv6 clients are counted per /64.
		for i := range 3 {
			login(f, "alice", "wrong password!", fmt.Sprintf("2001:db8:1:2::%x", i+1))
		}
		_, err = login(f, "alice", testPassword, "2001:db8:1:2:ffff::1")
		wantThrottled(t, err, time.Second)
		if _, err := login(f, "alice", testPassword, "2001:db8:1:3::1"); err != nil {
			t.Fatalf("another /64: %v", err)
		}
	})
}

// TestDistributedGuessNeedsTOTP: failures for one user from many clients
// reach the per-user limit; then a new client needs TOTP (a user without it
// waits), while clients that signed in before carry on.
func TestDistributedGuessNeedsTOTP(t *testing.T) {
	f := newFixture(t, "sqlite", func(o *Options) {
		o.LoginRate = LoginRate{PerUser: 5, Window: time.Hour}
		o.Sealer = testSealer(t)
	})
	op := f.org(t, "Grid Co", OrgOperator)
	f.user(t, "alice", op, RoleOperator)
	bob := f.user(t, "bobby", op, RoleOperator)
	secret := enrol(t, f, bob)
	const home = "192.0.2.1"
	if _, err := login(f, "alice", testPassword, home); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bobby"} {
		for i := range 5 {
			login(f, u, "wrong password!", fmt.Sprintf("203.0.113.%d", i))
		}
	}
	before := f.hasher.verifies.Load()
	_, err := login(f, "alice", testPassword, "198.51.100.7")
	wantThrottled(t, err, 0)
	if f.hasher.verifies.Load() != before {
		t.Error("the answer under the per-user limit depended on the password")
	}
	if _, err := login(f, "alice", testPassword, home); err != nil {
		t.Fatalf("known client under the per-user limit: %v", err)
	}
	// Bob has TOTP: from a new client, password and code still work; the
	// password alone waits, as everyone's does.
	_, err = login(f, "bobby", testPassword, "198.51.100.7")
	wantThrottled(t, err, 0)
	f.clock.Advance(totpPeriod * time.Second)
	code, _ := TOTPCode(secret, f.clock.Now())
	if _, err := f.svc.Login(context.Background(), Credentials{Username: "bobby", Password: testPassword, TOTP: code}, "198.51.100.7"); err != nil {
		t.Fatalf("TOTP user from a new client under the per-user limit: %v", err)
	}
	f.clock.Advance(time.Hour)
	if _, err := login(f, "alice", testPassword, "198.51.100.7"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestUserLimitSaysNothingOfTheName: under the per-user limit, a fresh
// client gets the same answer after the same work for a name that does not
// exist, one without TOTP and one with it (every staff account), so a
// distributed guess cannot sort names into staff, parties and nobody; and a
// user without TOTP cannot be signed in, nor its password confirmed, by
// sending any code.
func TestUserLimitSaysNothingOfTheName(t *testing.T) {
	f := newFixture(t, "sqlite", func(o *Options) {
		o.LoginRate = LoginRate{PerUser: 5, Window: time.Hour}
		o.Sealer = testSealer(t)
	})
	op := f.org(t, "Grid Co", OrgOperator)
	f.user(t, "alice", op, RoleOperator)
	secret := enrol(t, f, f.user(t, "bobby", op, RoleOperator))
	names := []string{"ghost", "alice", "bobby"}
	for _, u := range names {
		for i := range 5 {
			login(f, u, "wrong password!", fmt.Sprintf("203.0.113.%d", i))
		}
	}
	const fresh = "198.51.100.7"
	attempt := func(u, password, code string) (error, int64) {
		before := f.hasher.verifies.Load()
		_, err := f.svc.Login(context.Background(), Credentials{Username: u, Password: password, TOTP: code}, fresh)
		return err, f.hasher.verifies.Load() - before
	}
	for _, u := range names {
		// Without a code: the limit's answer, before any hashing.
		err, work := attempt(u, "wrong password!", "")
		wantThrottled(t, err, 0)
		if work != 0 {
			t.Errorf("%s without a code: %d password checks", u, work)
		}
		// With a code: the answer of a wrong password, after one check.
		err, work = attempt(u, "wrong password!", "123456")
		if !errors.Is(err, ErrBadCredentials) || work != 1 {
			t.Errorf("%s with a code: %v after %d checks, want bad credentials after 1", u, err, work)
		}
	}
	// Alice's right password and any code: still a wrong password's answer.
	err, work := attempt("alice", testPassword, "123456")
	if !errors.Is(err, ErrBadCredentials) || work != 1 {
		t.Errorf("alice's right password with a code: %v after %d checks", err, work)
	}
	// Bobby's right password with a wrong code: the same answer, or the
	// code's refusal would confirm the password to the guess.
	wrong := "000000"
	if code, _ := TOTPCode(secret, f.clock.Now()); code == wrong {
		wrong = "111111"
	}
	err, _ = attempt("bobby", testPassword, wrong)
	if !errors.Is(err, ErrBadCredentials) {
		t.Errorf("bobby's right password with a wrong code: %v, want bad credentials", err)
	}
}

// TestDisabledAnswersLikeWrongPassword: same error, same work, same count.
func TestDisabledAnswersLikeWrongPassword(t *testing.T) {
	f := newFixture(t, "sqlite", func(o *Options) { o.LoginRate = LoginRate{FreeFails: 2} })
	op := f.org(t, "Grid Co", OrgOperator)
	alice := f.user(t, "alice", op, RoleOperator)
	if err := f.svc.DisableUser(context.Background(), alice.User.ID); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		before := f.hasher.verifies.Load()
		_, errRight := login(f, "alice", testPassword, "10.0.0.1")
		_, errWrong := login(f, "alice", "wrong password!", "10.0.0.2")
		if !errors.Is(errRight, ErrBadCredentials) || errRight.Error() != errWrong.Error() {
			t.Fatalf("attempt %d: right password %v, wrong password %v", i, errRight, errWrong)
		}
		if n := f.hasher.verifies.Load() - before; n != 2 {
			t.Fatalf("%d verifications for two attempts", n)
		}
	}
	// Both clients are now backed off alike.
	_, errRight := login(f, "alice", testPassword, "10.0.0.1")
	_, errWrong := login(f, "alice", "wrong password!", "10.0.0.2")
	wantThrottled(t, errRight, time.Second)
	wantThrottled(t, errWrong, time.Second)
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":             "192.0.2.1",
		"::ffff:192.0.2.1":      "192.0.2.1",
		"2001:db8::1":           "2001:db8::/64",
		"2001:db8:0:0:ffff::ff": "2001:db8::/64",
		"not an ip":             "?not an ip",
	} {
		if got := ClientKey(in); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConcurrentGuessesThrottled: guesses sent all at once from one client
// are checked one after another, each seeing the failures before it, so
// the backoff stops the burst after the free failures as it stops the same
// guesses sent in turn, and the right password after it is refused too.
func TestConcurrentGuessesThrottled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, func(o *Options) {
			o.LoginRate = LoginRate{FreeFails: 3, BaseDelay: time.Minute, MaxDelay: time.Hour, PerUser: 1000, Window: time.Hour}
		})
		f.user(t, "alice", f.org(t, "Grid Co", OrgOperator), RoleOperator)
		const n = 30
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = login(f, "alice", fmt.Sprintf("wrong guess number %d", i), "203.0.113.9")
			}()
		}
		wg.Wait()
		checked := 0
		for i, err := range errs {
			var te *ThrottledError
			switch {
			case errors.As(err, &te):
			case errors.Is(err, ErrBadCredentials):
				checked++
			default:
				t.Errorf("attempt %d: %v", i, err)
			}
		}
		if checked > 3 {
			t.Fatalf("%d of %d simultaneous guesses were checked; the backoff allows 3", checked, n)
		}
		_, err := login(f, "alice", testPassword, "203.0.113.9")
		wantThrottled(t, err, 0)
	})
}
