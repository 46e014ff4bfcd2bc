package access

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// aeadSealer is a Sealer for tests: AES-GCM under a random key, the label
// as additional data (cmd/vaultd wires the master key's instead).
type aeadSealer struct{ aead cipher.AEAD }

func testSealer(t testing.TB) Sealer {
	key := make([]byte, 32)
	rand.Read(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := cipher.NewGCM(b)
	return aeadSealer{g}
}

func (s aeadSealer) Seal(label string, p []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, p, []byte(label)), nil
}

func (s aeadSealer) Open(label string, c []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(c) < n {
		return nil, errors.New("short")
	}
	return s.aead.Open(nil, c[:n], c[n:], []byte(label))
}

// enrol sets up TOTP for p and returns the base32 secret.
func enrol(t *testing.T, f *fixture, p Principal) string {
	t.Helper()
	ctx := context.Background()
	en, err := f.svc.StartTOTP(ctx, p)
	if err != nil {
		t.Fatalf("start totp: %v", err)
	}
	code, _ := TOTPCode(en.Secret, f.clock.Now())
	if _, err := f.svc.ConfirmTOTP(ctx, p, code); err != nil {
		t.Fatalf("confirm totp: %v", err)
	}
	return en.Secret
}

// TestTOTPCodeRFC6238 checks the code against RFC 6238's SHA-1 test vectors.
func TestTOTPCodeRFC6238(t *testing.T) {
	secret := base32.StdEncoding.EncodeToString([]byte("12345678901234567890"))
	for unix, want := range map[int64]string{
		59: "287082", 1111111109: "081804", 1111111111: "050471", 1234567890: "005924", 2000000000: "279037", 20000000000: "353130",
	} {
		if got, err := TOTPCode(secret, time.Unix(unix, 0)); err != nil || got != want {
			t.Errorf("T=%d: %s, %v; want %s", unix, got, err, want)
		}
	}
}

// TestTOTP walks enrolment, sign-in with and without a code, replay, the
// recovery codes (each once) and removal, on both databases.
func TestTOTP(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		f := newFixture(t, dialect, func(o *Options) { o.Sealer = testSealer(t) })
		op := f.org(t, "Grid Co", OrgOperator)
		alice := f.user(t, "alice", op, RoleOperator)
		cred := Credentials{Username: "alice", Password: testPassword}

		// Not required for operators: a full session without TOTP.
		s, err := f.svc.Login(ctx, cred, "10.0.0.1")
		if err != nil || s.TOTPEnrolmentRequired {
			t.Fatalf("login before enrolment: %+v, %v", s, err)
		}
		if _, err := f.svc.ConfirmTOTP(ctx, alice, "123456"); !isState(err, "totp_not_started") {
			t.Fatalf("confirm before start: %v", err)
		}
		en, err := f.svc.StartTOTP(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(en.OTPAuthURL)
		if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != en.Secret ||
			u.Query().Get("issuer") != TOTPIssuer || u.Path != "/crvault:alice" {
			t.Fatalf("otpauth url %q", en.OTPAuthURL)
		}
		// Until confirmed, sign-in needs no code.
		if _, err := f.svc.Login(ctx, cred, "10.0.0.1"); err != nil {
			t.Fatalf("login with enrolment pending: %v", err)
		}
		if _, err := f.svc.ConfirmTOTP(ctx, alice, "000000"); !errors.Is(err, ErrTOTPInvalid) {
			t.Fatalf("confirm with a wrong code: %v", err)
		}
		code, _ := TOTPCode(en.Secret, f.clock.Now())
		recovery, err := f.svc.ConfirmTOTP(ctx, alice, code)
		if err != nil || len(recovery) != 10 {
			t.Fatalf("confirm: %v, %v", recovery, err)
		}
		if _, err := f.svc.StartTOTP(ctx, alice); !isState(err, "totp_already_enrolled") {
			t.Fatalf("second start: %v", err)
		}
		if u, _ := f.svc.User(ctx, alice.User.ID); !u.TOTPEnabled {
			t.Error("user does not show totp_enabled")
		}
		// The secret is sealed: neither it nor its bytes are in the row.
		var row userRow
		f.db.Where("id = ?", alice.User.ID).Take(&row)
		key, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(en.Secret)
		if row.TOTPSecret == nil || bytes.Contains(row.TOTPSecret, key) || bytes.Contains(row.TOTPSecret, []byte(en.Secret)) {
			t.Fatal("TOTP secret stored in plain text")
		}

		// Without a code: totp_required, only to the right password.
		if _, err := f.svc.Login(ctx, cred, "10.0.0.1"); !errors.Is(err, ErrTOTPRequired) {
			t.Fatalf("login without code: %v", err)
		}
		bad := cred
		bad.Password = "wrong password!"
		if _, err := f.svc.Login(ctx, bad, "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("wrong password without code: %v", err)
		}
		// The code used to confirm cannot sign in (replay); the next one can, once.
		withCode := func(c string) error {
			cr := cred
			cr.TOTP = c
			_, err := f.svc.Login(ctx, cr, "10.0.0.1")
			return err
		}
		if err := withCode(code); !errors.Is(err, ErrTOTPInvalid) {
			t.Fatalf("replayed enrolment code: %v", err)
		}
		f.clock.Advance(30 * time.Second)
		next, _ := TOTPCode(en.Secret, f.clock.Now())
		if err := withCode(next); err != nil {
			t.Fatalf("fresh code: %v", err)
		}
		if err := withCode(next); !errors.Is(err, ErrTOTPInvalid) {
			t.Fatalf("replayed code: %v", err)
		}
		// One step of clock skew either way is accepted.
		ahead, _ := TOTPCode(en.Secret, f.clock.Now().Add(30*time.Second))
		if err := withCode(ahead); err != nil {
			t.Fatalf("code one step ahead: %v", err)
		}
		farAhead, _ := TOTPCode(en.Secret, f.clock.Now().Add(5*time.Minute))
		if err := withCode(farAhead); !errors.Is(err, ErrTOTPInvalid) {
			t.Fatalf("code five minutes ahead: %v", err)
		}
		// A recovery code works once, in place of a code, in any case and dashes.
		if err := withCode(strings.ToUpper(strings.ReplaceAll(recovery[0], "-", ""))); err != nil {
			t.Fatalf("recovery code: %v", err)
		}
		if err := withCode(recovery[0]); !errors.Is(err, ErrTOTPInvalid) {
			t.Fatalf("recovery code used twice: %v", err)
		}
		// Another instance opens the same sealed secret.
		other := f.restart(t)
		f.clock.Advance(90 * time.Second)
		c2, _ := TOTPCode(en.Secret, f.clock.Now())
		if _, err := other.Login(ctx, Credentials{Username: "alice", Password: testPassword, TOTP: c2}, "10.0.0.1"); err != nil {
			t.Fatalf("login on a restarted service: %v", err)
		}
		// Removal needs a valid code, and guesses are throttled like
		// sign-ins; afterwards no code is asked.
		if err := f.svc.RemoveTOTP(ctx, alice, "000000", "10.0.0.7"); !errors.Is(err, ErrTOTPInvalid) {
			t.Fatalf("remove with a wrong code: %v", err)
		}
		var throttled *ThrottledError
		for i := 0; i < 20 && !errors.As(err, &throttled); i++ {
			err = f.svc.RemoveTOTP(ctx, alice, "000000", "10.0.0.7")
		}
		if !errors.As(err, &throttled) {
			t.Fatalf("20 wrong codes to remove TOTP, never throttled: %v", err)
		}
		if err := f.svc.RemoveTOTP(ctx, alice, recovery[1], "10.0.0.7"); !errors.As(err, &throttled) {
			t.Fatalf("a right code while throttled: %v", err)
		}
		f.clock.Advance(24 * time.Hour)
		if err := f.svc.RemoveTOTP(ctx, alice, recovery[1], "10.0.0.1"); err != nil {
			t.Fatalf("remove with a recovery code: %v", err)
		}
		if _, err := f.svc.Login(ctx, cred, "10.0.0.1"); err != nil {
			t.Fatalf("login after removal: %v", err)
		}
		if err := f.svc.RemoveTOTP(ctx, alice, recovery[2], "10.0.0.1"); !isState(err, "totp_not_enrolled") {
			t.Fatalf("remove twice: %v", err)
		}
		var left int64
		f.db.Model(&recoveryCodeRow{}).Where("user_id = ?", alice.User.ID).Count(&left)
		if left != 0 {
			t.Errorf("%d recovery codes left after removal", left)
		}
	})
}

func isState(err error, code string) bool {
	var se *StateError
	return errors.As(err, &se) && se.Code == code && errors.Is(err, ErrConflict)
}

// TestTOTPRequiredRoles: a required user without TOTP gets a session that
// reaches nothing until enrolled; the requirement is configurable.
func TestTOTPRequiredRoles(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "sqlite", func(o *Options) { o.Sealer = testSealer(t) })
	office := f.org(t, "Review Office", OrgOffice)
	f.user(t, "rev1", office, RoleReviewer)
	s, err := f.svc.Login(ctx, Credentials{Username: "rev1", Password: testPassword}, "10.0.0.1")
	if err != nil || !s.TOTPEnrolmentRequired {
		t.Fatalf("reviewer without TOTP: %+v, %v", s, err)
	}
	p, err := f.svc.Authenticate(ctx, s.Token)
	if err != nil || !p.TOTPEnrolmentRequired {
		t.Fatalf("authenticate: %+v, %v", p, err)
	}
	if f.svc.Can(p, "case", "create") || f.svc.Can(p, "deadline", "list") {
		t.Error("a session limited to enrolment holds a global permission")
	}
	if d, _ := f.svc.Decide(ctx, p, CaseFacts{ID: "c1", Status: "submitted"}, ActCaseRead); d.Visible || d.Allowed {
		t.Errorf("a session limited to enrolment sees a case: %+v", d)
	}
	// Another session opened with the password alone (whoever set it,
	// say), kept alive meanwhile.
	other, err := f.svc.Login(ctx, Credentials{Username: "rev1", Password: testPassword}, "10.0.0.9")
	if err != nil || !other.TOTPEnrolmentRequired {
		t.Fatalf("second session: %+v, %v", other, err)
	}
	enrol(t, f, p)
	// The session that proved the code is a full one once enrolled; the
	// other ends, rather than become full without a second factor.
	if p, err := f.svc.Authenticate(ctx, s.Token); err != nil || p.TOTPEnrolmentRequired {
		t.Fatalf("after enrolment: %+v, %v", p, err)
	}
	if p, err := f.svc.Authenticate(ctx, other.Token); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a password-only session after the holder enrolled elsewhere: %+v, %v", p, err)
	}

	off := newFixture(t, "sqlite", func(o *Options) { o.TOTPRequiredRoles = []Role{} })
	off.user(t, "rev1", off.org(t, "Review Office", OrgOffice), RoleReviewer)
	if s, err := off.svc.Login(ctx, Credentials{Username: "rev1", Password: testPassword}, "10.0.0.1"); err != nil || s.TOTPEnrolmentRequired {
		t.Fatalf("requirement off: %+v, %v", s, err)
	}
	// Without a sealer, enrolment says so rather than storing a plain secret.
	if _, err := off.svc.StartTOTP(ctx, off.user(t, "rev2", off.org(t, "Office 2", OrgOffice), RoleReviewer)); !errors.Is(err, ErrTOTPUnavailable) {
		t.Fatalf("start without a sealer: %v", err)
	}
}
