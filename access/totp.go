package access

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Sealer encrypts small secrets at rest (TOTP secrets here). The label binds
// a sealed value to its place ("access/totp/<user id>"): Open must refuse a
// value sealed under another label, so that a database administrator cannot
// move one user's secret onto another account. cmd/vaultd wires one made
// from the master key; access never sees a key.
type Sealer interface {
	Seal(label string, plaintext []byte) ([]byte, error)
	Open(label string, sealed []byte) ([]byte, error)
}

// DefaultTOTPRequiredRoles are the roles that must use TOTP unless
// Options.TOTPRequiredRoles says otherwise.
var DefaultTOTPRequiredRoles = []Role{RoleOfficeAdmin, RoleReviewer, RoleMemberUnit, RoleInspector, RoleSysadmin}

// TOTP parameters (RFC 6238 defaults, which every authenticator app knows).
const (
	totpPeriod = 30
	totpDigits = 6
	totpSkew   = 1 // steps accepted either side of now
	// TOTPIssuer names the service in authenticator apps.
	TOTPIssuer = "crvault"
	// recoveryCodeCount is how many recovery codes an enrolment yields.
	recoveryCodeCount = 10
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// totpCode is the RFC 6238 / RFC 4226 code of secret at time step step.
func totpCode(secret []byte, step int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	m := hmac.New(sha1.New, secret)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1_000_000)
}

func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// TOTPCode computes the current code for a base32 secret as POST /me/totp
// returns it, as an authenticator app would (tests and tools use it).
func TOTPCode(secret string, t time.Time) (string, error) {
	key, err := b32.DecodeString(strings.ToUpper(strings.ReplaceAll(secret, " ", "")))
	if err != nil {
		return "", fmt.Errorf("totp secret: %w", err)
	}
	return totpCode(key, totpStep(t)), nil
}

// TOTPEnrolment is the answer of StartTOTP.
type TOTPEnrolment struct {
	Secret     string `json:"secret"`      // base32, for manual entry
	OTPAuthURL string `json:"otpauth_url"` // otpauth://totp/..., for a QR code
}

func totpLabel(userID string) string { return "access/totp/" + userID }

// totpRequired reports whether a user holding roles must use TOTP.
func (s *Service) totpRequired(roles []Role) bool {
	return slices.ContainsFunc(roles, func(r Role) bool { return slices.Contains(s.totpRoles, r) })
}

// TOTPRequired reports whether the user's roles require TOTP.
func (s *Service) TOTPRequired(u User) bool { return s.totpRequired(u.Roles) }

func (s *Service) sealer() (Sealer, error) {
	if s.seal == nil {
		return nil, ErrTOTPUnavailable
	}
	return s.seal, nil
}

// StartTOTP begins enrolment: a fresh secret is sealed as pending and
// returned once. It replaces an unconfirmed one. A *StateError
// "totp_already_enrolled" if the user has TOTP (remove it first).
func (s *Service) StartTOTP(ctx context.Context, p Principal) (TOTPEnrolment, error) {
	seal, err := s.sealer()
	if err != nil {
		return TOTPEnrolment{}, err
	}
	row, err := s.userRow(ctx, "id = ?", p.User.ID)
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("start totp: %w", err)
	}
	if row.TOTPSecret != nil {
		return TOTPEnrolment{}, &StateError{Code: "totp_already_enrolled", Detail: "TOTP is already set up; remove it first to enrol a new device"}
	}
	key := make([]byte, 20) // 160 bits, RFC 4226's recommendation
	if _, err := rand.Read(key); err != nil {
		return TOTPEnrolment{}, fmt.Errorf("start totp: %w", err)
	}
	sealed, err := seal.Seal(totpLabel(row.ID), key)
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("start totp: seal: %w", err)
	}
	if err := s.db.WithContext(ctx).Model(&userRow{}).Where("id = ?", row.ID).Update("totp_pending", sealed).Error; err != nil {
		return TOTPEnrolment{}, fmt.Errorf("start totp: %w", err)
	}
	secret := b32.EncodeToString(key)
	v := url.Values{}
	v.Set("secret", secret)
	v.Set("issuer", TOTPIssuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", fmt.Sprint(totpDigits))
	v.Set("period", fmt.Sprint(totpPeriod))
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + TOTPIssuer + ":" + row.Username, RawQuery: v.Encode()}
	return TOTPEnrolment{Secret: secret, OTPAuthURL: u.String()}, nil
}

// ConfirmTOTP finishes enrolment with a code from the new device and returns
// the recovery codes, shown only here. A *StateError "totp_not_started" if
// StartTOTP was not called; ErrTOTPInvalid for a wrong code.
func (s *Service) ConfirmTOTP(ctx context.Context, p Principal, code string) ([]string, error) {
	seal, err := s.sealer()
	if err != nil {
		return nil, err
	}
	row, err := s.userRow(ctx, "id = ?", p.User.ID)
	if err != nil {
		return nil, fmt.Errorf("confirm totp: %w", err)
	}
	if row.TOTPSecret != nil {
		return nil, &StateError{Code: "totp_already_enrolled", Detail: "TOTP is already set up"}
	}
	if row.TOTPPending == nil {
		return nil, &StateError{Code: "totp_not_started", Detail: "call POST /me/totp first"}
	}
	key, err := seal.Open(totpLabel(row.ID), row.TOTPPending)
	if err != nil {
		return nil, fmt.Errorf("confirm totp: open pending secret: %w", err)
	}
	defer clear(key)
	step, ok := matchTOTP(key, code, 0, s.now())
	if !ok {
		return nil, ErrTOTPInvalid
	}
	codes, rows, err := newRecoveryCodes(row.ID)
	if err != nil {
		return nil, fmt.Errorf("confirm totp: %w", err)
	}
	enrolled := row
	enrolled.TOTPSecret = row.TOTPPending
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&userRow{}).Where("id = ? AND totp_secret IS NULL", row.ID).
			Updates(map[string]any{"totp_secret": row.TOTPPending, "totp_pending": nil, "totp_last_step": step,
				"row_tag": s.tag(tagUsers, enrolled.tagFields()...)})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return &StateError{Code: "totp_already_enrolled", Detail: "TOTP is already set up"}
		}
		if err := tx.Where("user_id = ?", row.ID).Delete(&recoveryCodeRow{}).Error; err != nil {
			return err
		}
		for i := range rows {
			rows[i].RowTag = s.tag(tagRecovery, rows[i].tagFields()...)
		}
		if err := tx.Create(&rows).Error; err != nil {
			return err
		}
		// Whether a session is limited to enrolment is read from the
		// account on each request, so every session opened with the
		// password alone would become a full one now, someone else's too
		// (whoever set the first password, say). Only the session that
		// just proved the code stays.
		if err := tx.Model(&sessionRow{}).Where("user_id = ? AND id <> ? AND revoked_at IS NULL", row.ID, p.SessionID).
			Updates(revokedSession(s.now().UTC())).Error; err != nil {
			return err
		}
		return s.publish(tx, noticeUser, row.ID)
	})
	s.accounts.flushUser(row.ID)
	if err != nil {
		return nil, fmt.Errorf("confirm totp: %w", err)
	}
	s.log.InfoContext(ctx, "totp enrolled", "user", row.ID)
	return codes, nil
}

// RemoveTOTP turns TOTP off after checking a current code or a recovery
// code. A *StateError "totp_not_enrolled" if there is none; ErrTOTPInvalid
// for a wrong code. If the user's roles require TOTP, the user's sessions
// are limited to enrolment again from the next request on.
func (s *Service) RemoveTOTP(ctx context.Context, p Principal, code, ip string) error {
	row, err := s.userRow(ctx, "id = ?", p.User.ID)
	if err != nil {
		return fmt.Errorf("remove totp: %w", err)
	}
	if row.TOTPSecret == nil {
		return &StateError{Code: "totp_not_enrolled", Detail: "TOTP is not set up"}
	}
	// Guesses at the code count as failed sign-ins, as a wrong current
	// password does: a stolen session must not try a million codes to
	// take the second factor off and put its own on.
	now := s.now().UTC()
	keys, release, err := s.guardAttempt(ctx, row.Username, ip, now)
	if err != nil {
		return fmt.Errorf("remove totp: %w", err)
	}
	defer release()
	ok, err := s.secondFactor(ctx, row, code)
	if err != nil {
		return fmt.Errorf("remove totp: %w", err)
	}
	if !ok {
		if err := s.recordFailure(ctx, keys, now); err != nil {
			return fmt.Errorf("remove totp: %w", err)
		}
		return ErrTOTPInvalid
	}
	removed := row
	removed.TOTPSecret = nil
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&userRow{}).Where("id = ?", row.ID).
			Updates(map[string]any{"totp_secret": nil, "totp_pending": nil, "row_tag": s.tag(tagUsers, removed.tagFields()...)}).Error; err != nil {
			return err
		}
		if err := tx.Where("user_id = ?", row.ID).Delete(&recoveryCodeRow{}).Error; err != nil {
			return err
		}
		return s.publish(tx, noticeUser, row.ID)
	})
	s.accounts.flushUser(row.ID)
	if err != nil {
		return fmt.Errorf("remove totp: %w", err)
	}
	s.log.InfoContext(ctx, "totp removed", "user", row.ID)
	return nil
}

// matchTOTP finds the step within the skew whose code is code, newer than
// lastStep (a code is good once).
func matchTOTP(key []byte, code string, lastStep int64, now time.Time) (int64, bool) {
	if len(code) != totpDigits {
		return 0, false
	}
	t := totpStep(now)
	found, step := 0, int64(0)
	for st := t - totpSkew; st <= t+totpSkew; st++ {
		// Constant time per candidate, and every candidate is checked.
		if subtle.ConstantTimeCompare([]byte(totpCode(key, st)), []byte(code)) == 1 && st > lastStep {
			found, step = 1, st
		}
	}
	return step, found == 1
}

// secondFactor checks a TOTP code (6 digits) or a recovery code, and spends
// it: a TOTP step is used once (the newest used step is stored, checked and
// advanced in one conditional update, so two instances cannot both accept
// it), a recovery code once.
func (s *Service) secondFactor(ctx context.Context, row userRow, code string) (bool, error) {
	code = strings.TrimSpace(code)
	if code == "" || len(code) > 64 {
		return false, nil
	}
	db := s.db.WithContext(ctx)
	if len(code) == totpDigits && strings.Trim(code, "0123456789") == "" {
		seal, err := s.sealer()
		if err != nil {
			return false, err
		}
		key, err := seal.Open(totpLabel(row.ID), row.TOTPSecret)
		if err != nil {
			return false, fmt.Errorf("open totp secret: %w", err)
		}
		defer clear(key)
		step, ok := matchTOTP(key, code, row.TOTPLastStep, s.now())
		if !ok {
			return false, nil
		}
		res := db.Model(&userRow{}).Where("id = ? AND totp_last_step < ?", row.ID, step).Update("totp_last_step", step)
		if res.Error != nil {
			return false, res.Error
		}
		return res.RowsAffected == 1, nil
	}
	now := s.now().UTC()
	hash := recoveryHash(row.ID, code)
	var rc recoveryCodeRow
	switch err := db.Where("user_id = ? AND hash = ? AND used_at IS NULL", row.ID, hash).Take(&rc).Error; {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return false, nil
	case err != nil:
		return false, err
	case !s.tagOK(ctx, tagRecovery, rc.UserID, rc.RowTag, rc.tagFields()...):
		return false, nil
	}
	// Spent in one conditional update (two instances cannot both accept
	// it), its tag with it.
	res := db.Model(&recoveryCodeRow{}).Where("user_id = ? AND hash = ? AND used_at IS NULL", row.ID, hash).
		Updates(map[string]any{"used_at": now, "row_tag": nil})
	if res.Error != nil {
		return false, res.Error
	}
	if res.RowsAffected == 1 {
		s.log.InfoContext(ctx, "recovery code used", "user", row.ID)
		return true, nil
	}
	return false, nil
}

// Recovery codes are 12 characters of a 32-letter alphabet (60 bits) in
// groups of four; being random and long, a salted SHA-256 is enough to keep
// them from the database administrator.
// The alphabet leaves out i, l, o and 1, which read alike.
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz023456789"

func normaliseRecovery(code string) string {
	return strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
}

func recoveryHash(userID, code string) string {
	sum := sha256.Sum256([]byte("crvault recovery code\x00" + userID + "\x00" + normaliseRecovery(code)))
	return hex.EncodeToString(sum[:])
}

func newRecoveryCodes(userID string) ([]string, []recoveryCodeRow, error) {
	codes := make([]string, 0, recoveryCodeCount)
	rows := make([]recoveryCodeRow, 0, recoveryCodeCount)
	seen := map[string]bool{}
	for len(codes) < recoveryCodeCount {
		b := make([]byte, 12)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, err
		}
		for i := range b {
			b[i] = recoveryAlphabet[int(b[i])%len(recoveryAlphabet)]
		}
		c := string(b[0:4]) + "-" + string(b[4:8]) + "-" + string(b[8:12])
		h := recoveryHash(userID, c)
		if seen[h] {
			continue
		}
		seen[h] = true
		codes = append(codes, c)
		rows = append(rows, recoveryCodeRow{UserID: userID, Hash: h})
	}
	return codes, rows, nil
}

// StaleSealer is a Sealer that can tell a value sealed under a key it is
// moving away from; ResealSecrets re-seals those.
type StaleSealer interface {
	Sealer
	Stale(sealed []byte) bool
}

// ResealSecrets re-seals the TOTP secrets (confirmed and pending) that the
// Sealer reports stale, each in a conditional update (a value changed in the
// meantime is left for the next run). It returns how many it re-sealed, and
// does nothing if the Sealer cannot tell.
func (s *Service) ResealSecrets(ctx context.Context) (int, error) {
	seal, ok := s.seal.(StaleSealer)
	if !ok {
		return 0, nil
	}
	var rows []userRow
	if err := s.db.WithContext(ctx).Select("id, totp_secret, totp_pending").
		Where("totp_secret IS NOT NULL OR totp_pending IS NOT NULL").Find(&rows).Error; err != nil {
		return 0, fmt.Errorf("reseal secrets: %w", err)
	}
	n := 0
	for _, r := range rows {
		for col, v := range map[string][]byte{"totp_secret": r.TOTPSecret, "totp_pending": r.TOTPPending} {
			if v == nil || !seal.Stale(v) {
				continue
			}
			plain, err := seal.Open(totpLabel(r.ID), v)
			if err != nil {
				return n, fmt.Errorf("reseal %s of %s: %w", col, r.ID, err)
			}
			nv, err := seal.Seal(totpLabel(r.ID), plain)
			clear(plain)
			if err != nil {
				return n, fmt.Errorf("reseal %s of %s: %w", col, r.ID, err)
			}
			res := s.db.WithContext(ctx).Model(&userRow{}).Where("id = ? AND "+col+" = ?", r.ID, v).Update(col, nv)
			if res.Error != nil {
				return n, fmt.Errorf("reseal %s of %s: %w", col, r.ID, res.Error)
			}
			n += int(res.RowsAffected)
		}
	}
	return n, nil
}
