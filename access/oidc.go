package access

// Single sign-on with OpenID Connect, beside local accounts. The office's
// identity provider (IdP) proves who someone is; the configuration maps its
// claims to one organisation and to roles. What holds for every account
// holds for these:
//
//   - An account is linked to the IdP's (issuer, subject), never to a local
//     account by name: an IdP user called "office" does not become the local
//     "office".
//   - The roles come from the claims at every sign-in. Roles the claims no
//     longer give are dropped at once; a role they newly give that reaches a
//     case's content puts the account in pending_approval, as an account a
//     sysadmin creates does, until an office admin approves it (the IdP is
//     one party, the approval a second). sysadmin combines with no other
//     role; roles must fit the organisation's kind. Claims that map to no
//     organisation or no role sign nobody in.
//   - TOTP stays required for the roles that need it: by default the
//     account's own TOTP (a sign-in that needs a code answers totp_required
//     with a one-time ticket, redeemed with the code). The IdP's "amr" claim
//     counts instead only if it names a method the office listed
//     (OIDCConfig.TrustedAMR, e.g. "hwk" or "otp"): the office decides
//     whether it trusts its IdP's second factor.
//
// The authorization code flow runs with state, nonce and PKCE (S256); the
// state is bound to the browser by a cookie the API sets, and states and
// tickets are single-use rows in the database, so any instance may finish
// a sign-in another began.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"gorm.io/gorm"
)

// OIDCConfig configures single sign-on. Issuer, ClientID and RedirectURL
// are required.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is this server's callback as registered with the IdP
	// (https://vault.example/api/v1/oidc/callback).
	RedirectURL string
	// Claim names (defaults: preferred_username, org, roles). The roles
	// claim may be a string or a list of strings.
	UsernameClaim, OrgClaim, RolesClaim string
	// Orgs maps an org claim value to an organisation name or id; Roles
	// maps a roles claim value to crvault roles. Unmapped values give
	// nothing.
	Orgs  map[string]string
	Roles map[string][]Role
	// TrustedAMR lists the "amr" values that count as the second factor
	// for accounts that need TOTP; empty: only the account's own TOTP.
	TrustedAMR []string
	// HTTPClient talks to the IdP (default: 10 s timeout).
	HTTPClient *http.Client
}

// OIDC errors callers branch on.
var (
	ErrOIDCUnavailable = errors.New("identity provider unavailable")
	ErrOIDCState       = errors.New("sign-in state unknown, expired or not this browser's")
	ErrOIDCToken       = errors.New("identity provider's answer does not verify")
	ErrOIDCNotMapped   = errors.New("claims map to no organisation or role")
	ErrAccountPending  = errors.New("account awaits approval")
)

// OIDC runs sign-ins through one identity provider.
type OIDC struct {
	s   *Service
	cfg OIDCConfig

	mu       sync.Mutex
	provider *oidc.Provider
}

// NewOIDC checks the configuration; the IdP is first contacted at the
// first sign-in, so an IdP outage does not stop the vault.
func (s *Service) NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("oidc: issuer, client id and redirect URL are required")
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "preferred_username"
	}
	if cfg.OrgClaim == "" {
		cfg.OrgClaim = "org"
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = "roles"
	}
	for v, rs := range cfg.Roles {
		for _, r := range rs {
			if !r.Valid() {
				return nil, fmt.Errorf("oidc: claim %q maps to unknown role %q", v, r)
			}
		}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &OIDC{s: s, cfg: cfg}, nil
}

func (o *OIDC) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, o.cfg.HTTPClient)
}

func (o *OIDC) client(ctx context.Context) (*oidc.Provider, oauth2.Config, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider == nil {
		p, err := oidc.NewProvider(o.ctx(ctx), o.cfg.Issuer)
		if err != nil {
			return nil, oauth2.Config{}, fmt.Errorf("%w: discovery: %v", ErrOIDCUnavailable, err)
		}
		o.provider = p
	}
	return o.provider, oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: o.provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}, nil
}

// oidcStateRow is a sign-in in progress: single use, ten minutes.
type oidcStateRow struct {
	StateHash string    `gorm:"primaryKey;size:64"`
	Nonce     string    `gorm:"size:64;not null"`
	Verifier  string    `gorm:"size:128;not null"`
	ExpiresAt time.Time `gorm:"not null;index"`
}

func (oidcStateRow) TableName() string { return "access_oidc_states" }

// oidcIdentityRow links an IdP identity to an account.
type oidcIdentityRow struct {
	Issuer    string    `gorm:"primaryKey;size:255"`
	Subject   string    `gorm:"primaryKey;size:255"`
	UserID    string    `gorm:"size:32;not null;uniqueIndex"`
	CreatedAt time.Time `gorm:"not null"`
	RowTag    []byte    `gorm:"column:row_tag"`
}

func (oidcIdentityRow) TableName() string { return "access_oidc_identities" }

// oidcTicketRow is a proven IdP sign-in waiting for the account's TOTP
// code: single use, five minutes.
type oidcTicketRow struct {
	TicketHash string    `gorm:"primaryKey;size:64"`
	UserID     string    `gorm:"size:32;not null"`
	ExpiresAt  time.Time `gorm:"not null;index"`
}

func (oidcTicketRow) TableName() string { return "access_oidc_tickets" }

const (
	oidcStateTTL  = 10 * time.Minute
	oidcTicketTTL = 5 * time.Minute
)

func randomString() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Begin starts a sign-in: it returns the IdP's authorization URL to send
// the browser to, and the state, which the caller binds to the browser (a
// cookie) and Finish checks.
func (o *OIDC) Begin(ctx context.Context) (authURL, state string, err error) {
	_, oc, err := o.client(ctx)
	if err != nil {
		return "", "", err
	}
	state, err = randomString()
	if err != nil {
		return "", "", err
	}
	nonce, err := randomString()
	if err != nil {
		return "", "", err
	}
	verifier := oauth2.GenerateVerifier()
	now := o.s.now().UTC()
	db := o.s.db.WithContext(ctx)
	_ = db.Where("expires_at < ?", now).Delete(&oidcStateRow{}).Error
	if err := db.Create(&oidcStateRow{StateHash: hashToken(state), Nonce: nonce, Verifier: verifier, ExpiresAt: now.Add(oidcStateTTL)}).Error; err != nil {
		return "", "", fmt.Errorf("oidc: store state: %w", err)
	}
	return oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), state, nil
}

// OIDCResult is a finished IdP sign-in: a session, or (Ticket set, with
// ErrTOTPRequired) a wait for the account's TOTP code.
type OIDCResult struct {
	Session Session
	Ticket  string
	User    User
	Created bool // the account was made by this sign-in
}

// Finish completes a sign-in from the IdP's redirect: state (from the
// query) must equal browserState (from the cookie Begin's caller set) and
// name a live sign-in; the code is exchanged and the ID token verified
// (signature, issuer, audience, expiry, nonce). The account is found or
// made from the claims (see the package comment on OIDC).
func (o *OIDC) Finish(ctx context.Context, state, browserState, code, ip string) (OIDCResult, error) {
	if state == "" || browserState == "" || state != browserState || code == "" {
		return OIDCResult{}, ErrOIDCState
	}
	db := o.s.db.WithContext(ctx)
	var st oidcStateRow
	if err := db.Where("state_hash = ?", hashToken(state)).Take(&st).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return OIDCResult{}, ErrOIDCState
		}
		return OIDCResult{}, fmt.Errorf("oidc: load state: %w", err)
	}
	// Single use, whatever follows.
	if res := db.Where("state_hash = ?", st.StateHash).Delete(&oidcStateRow{}); res.Error != nil || res.RowsAffected != 1 {
		return OIDCResult{}, ErrOIDCState
	}
	if o.s.now().After(st.ExpiresAt) {
		return OIDCResult{}, ErrOIDCState
	}
	p, oc, err := o.client(ctx)
	if err != nil {
		return OIDCResult{}, err
	}
	tok, err := oc.Exchange(o.ctx(ctx), code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return OIDCResult{}, fmt.Errorf("%w: token endpoint refused the code", ErrOIDCToken)
		}
		return OIDCResult{}, fmt.Errorf("%w: token exchange: %v", ErrOIDCUnavailable, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return OIDCResult{}, fmt.Errorf("%w: no id_token", ErrOIDCToken)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID}).Verify(o.ctx(ctx), raw)
	if err != nil {
		return OIDCResult{}, fmt.Errorf("%w: %v", ErrOIDCToken, err)
	}
	if idt.Nonce != st.Nonce {
		return OIDCResult{}, fmt.Errorf("%w: nonce mismatch", ErrOIDCToken)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return OIDCResult{}, fmt.Errorf("%w: claims: %v", ErrOIDCToken, err)
	}
	return o.signIn(ctx, idt.Issuer, idt.Subject, claims, ip)
}

// claimStrings reads a claim that is a string or a list of strings.
func claimStrings(claims map[string]any, name string) []string {
	switch v := claims[name].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// mapClaims gives the organisation (name or id) and roles the claims map
// to.
func (o *OIDC) mapClaims(claims map[string]any) (string, []Role) {
	var org string
	for _, v := range claimStrings(claims, o.cfg.OrgClaim) {
		if m, ok := o.cfg.Orgs[v]; ok {
			if org != "" && org != m {
				return "", nil // claims naming two organisations: refuse, do not guess
			}
			org = m
		}
	}
	var roles []Role
	for _, v := range claimStrings(claims, o.cfg.RolesClaim) {
		roles = append(roles, o.cfg.Roles[v]...)
	}
	slices.Sort(roles)
	return org, slices.Compact(roles)
}

func (o *OIDC) trustedAMR(claims map[string]any) bool {
	for _, a := range claimStrings(claims, "amr") {
		if slices.Contains(o.cfg.TrustedAMR, a) {
			return true
		}
	}
	return false
}

// checkRoles applies CreateUser's rules to roles in org.
func (s *Service) checkRoles(roles []Role, org Org) error {
	if len(roles) == 0 {
		return invalid("roles", "roles_required", "at least one role")
	}
	if slices.Contains(roles, RoleSysadmin) && len(roles) > 1 {
		return invalid("roles", "sysadmin_exclusive", "sysadmin combines with no other role (separation of duties)")
	}
	for _, r := range roles {
		if want, ok := roleOrgKind[r]; ok && want != org.Kind {
			return invalid("roles", "role_org_mismatch", fmt.Sprintf("role %s needs an organisation of kind %s, not %s", r, want, org.Kind))
		}
	}
	return nil
}

// noPasswordHash is the stored hash of accounts that sign in only through
// the IdP: no password verifies against it.
const noPasswordHash = "!oidc"

// oidcCreator is what CreatedBy says of accounts made from IdP claims.
const oidcCreator = "oidc"

func (o *OIDC) signIn(ctx context.Context, issuer, subject string, claims map[string]any, ip string) (OIDCResult, error) {
	s := o.s
	orgRef, roles := o.mapClaims(claims)
	if orgRef == "" || len(roles) == 0 {
		return OIDCResult{}, fmt.Errorf("%w: subject %s", ErrOIDCNotMapped, subject)
	}
	org, err := s.OrgByRef(ctx, orgRef)
	if err != nil {
		return OIDCResult{}, fmt.Errorf("%w: organisation %q: %v", ErrOIDCNotMapped, orgRef, err)
	}
	if err := s.checkRoles(roles, org); err != nil {
		return OIDCResult{}, fmt.Errorf("%w: %v", ErrOIDCNotMapped, err)
	}
	now := s.now().UTC()
	db := s.db.WithContext(ctx)
	var res OIDCResult
	var link oidcIdentityRow
	err = db.Where("issuer = ? AND subject = ?", issuer, subject).Take(&link).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		row, err := o.createAccount(ctx, issuer, subject, claims, org, roles, now)
		if err != nil {
			return OIDCResult{}, err
		}
		res.Created = true
		link.UserID = row.ID
	case err != nil:
		return OIDCResult{}, fmt.Errorf("oidc: load identity: %w", err)
	case !s.tagOK(ctx, tagIdentities, link.UserID, link.RowTag, link.tagFields()...):
		// A link the database administrator made or moved to another
		// account signs nobody in.
		return OIDCResult{}, fmt.Errorf("%w: subject %s: its account link does not check", ErrOIDCNotMapped, subject)
	}
	row, err := s.userRow(ctx, "id = ?", link.UserID)
	if err != nil {
		return OIDCResult{}, fmt.Errorf("oidc: load account: %w", err)
	}
	if row.OrgID != org.ID {
		return OIDCResult{}, fmt.Errorf("%w: the claims name another organisation than the account's", ErrOIDCNotMapped)
	}
	if row, err = o.syncRoles(ctx, row, roles); err != nil {
		return OIDCResult{}, err
	}
	res.User = row.user()
	if row.Disabled {
		return res, ErrBadCredentials
	}
	if !row.active() {
		return res, ErrAccountPending
	}
	amr := o.trustedAMR(claims)
	if row.TOTPSecret != nil && !amr {
		ticket, err := randomString()
		if err != nil {
			return res, err
		}
		_ = db.Where("expires_at < ?", now).Delete(&oidcTicketRow{}).Error
		if err := db.Create(&oidcTicketRow{TicketHash: hashToken(ticket), UserID: row.ID, ExpiresAt: now.Add(oidcTicketTTL)}).Error; err != nil {
			return res, fmt.Errorf("oidc: store ticket: %w", err)
		}
		res.Ticket = ticket
		return res, ErrTOTPRequired
	}
	limited := row.TOTPSecret == nil && s.totpRequired(res.User.Roles) && !amr
	factor := ""
	if amr {
		factor = "amr"
	}
	res.Session, err = s.openSession(ctx, row, limited, factor, now)
	if err == nil {
		s.log.InfoContext(ctx, "login", "user", row.ID, "session", res.Session.ID, "ip", ip, "via", "oidc", "amr_trusted", amr,
			"totp_enrolment_required", limited)
	}
	return res, err
}

// syncRoles makes the account's roles those the claims give now: a role
// no longer given goes at once; a new one that reaches content puts the
// account back in pending_approval.
func (o *OIDC) syncRoles(ctx context.Context, row userRow, roles []Role) (userRow, error) {
	have := splitRoles(row.Roles)
	if slices.Equal(have, roles) {
		return row, nil
	}
	upd := map[string]any{"roles": joinRoles(roles)}
	for _, r := range roles {
		if !slices.Contains(have, r) && reachesContent(r) && row.Status == UserActive {
			upd["status"], upd["approved_by"], upd["approved_at"] = UserPendingApproval, "", nil
			row.Status = UserPendingApproval
		}
	}
	changed := row
	changed.Roles = joinRoles(roles)
	upd["row_tag"] = o.s.tag(tagUsers, changed.tagFields()...)
	err := o.s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&userRow{}).Where("id = ?", row.ID).Updates(upd).Error; err != nil {
			return err
		}
		if _, pending := upd["status"]; pending {
			// Sessions end, not merely pause: once approved, the account
			// signs in afresh rather than its old sessions waking up with
			// the new role.
			return revokeSessions(tx, row.ID, o.s.now().UTC())
		}
		return nil
	})
	if err != nil {
		return row, fmt.Errorf("oidc: update roles: %w", err)
	}
	row.Roles = joinRoles(roles)
	o.s.accounts.flushUser(row.ID)
	if err := o.s.Publish(ctx, noticeUser, row.ID); err != nil {
		o.s.log.WarnContext(ctx, "could not announce a role change", "user", row.ID, "err", err)
	}
	o.s.log.InfoContext(ctx, "roles changed by the identity provider", "user", row.ID, "roles", row.Roles, "status", row.Status)
	return row, nil
}

// createAccount makes the account of a first sign-in. Its username comes
// from the username claim, made unique if a local account has it; it has
// no usable password.
func (o *OIDC) createAccount(ctx context.Context, issuer, subject string, claims map[string]any, org Org, roles []Role, now time.Time) (userRow, error) {
	name := ""
	if v := claimStrings(claims, o.cfg.UsernameClaim); len(v) > 0 {
		name = sanitizeUsername(v[0])
	}
	display := ""
	if v := claimStrings(claims, "name"); len(v) > 0 {
		display = CleanDisplayName(v[0])
	}
	if name == "" {
		name = "sso-" + hashToken(issuer + "\x00" + subject)[:12]
	}
	if display == "" || len([]rune(display)) > 200 {
		display = name
	}
	status := UserActive
	if slices.ContainsFunc(roles, reachesContent) {
		status = UserPendingApproval
	}
	row := userRow{ID: newID(now), Username: name, DisplayName: display, OrgID: org.ID, Roles: joinRoles(roles),
		PasswordHash: noPasswordHash, CreatedAt: now, Status: status, CreatedBy: oidcCreator}
	err := o.s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&userRow{}).Where("username = ?", row.Username).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			row.Username = truncate(name, 51) + "-" + hashToken(issuer + "\x00" + subject)[:12]
		}
		row.RowTag = o.s.tag(tagUsers, row.tagFields()...)
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		link := oidcIdentityRow{Issuer: issuer, Subject: subject, UserID: row.ID, CreatedAt: now}
		link.RowTag = o.s.tag(tagIdentities, link.tagFields()...)
		return tx.Create(&link).Error
	})
	if err != nil {
		return row, fmt.Errorf("oidc: create account: %w", err)
	}
	o.s.log.InfoContext(ctx, "user created", "user", row.ID, "org", org.ID, "roles", row.Roles, "status", row.Status, "via", "oidc")
	return row, nil
}

// sanitizeUsername lowers a claimed name into [a-z0-9._-]{3,64}.
func sanitizeUsername(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if at := strings.IndexByte(v, '@'); at > 0 {
		v = v[:at]
	}
	var b strings.Builder
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := truncate(b.String(), 64)
	if !usernameRE.MatchString(s) {
		return ""
	}
	return s
}

// FinishTOTP redeems a ticket from Finish with the account's TOTP code (or
// a recovery code). The ticket is spent whatever the outcome; a wrong code
// counts as a failed sign-in for the throttle.
func (o *OIDC) FinishTOTP(ctx context.Context, ticket, code, ip string) (Session, error) {
	s := o.s
	if ticket == "" || len(ticket) > 128 {
		return Session{}, ErrOIDCState
	}
	db := s.db.WithContext(ctx)
	var t oidcTicketRow
	if err := db.Where("ticket_hash = ?", hashToken(ticket)).Take(&t).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return Session{}, ErrOIDCState
		}
		return Session{}, fmt.Errorf("oidc: load ticket: %w", err)
	}
	if res := db.Where("ticket_hash = ?", t.TicketHash).Delete(&oidcTicketRow{}); res.Error != nil || res.RowsAffected != 1 {
		return Session{}, ErrOIDCState
	}
	now := s.now().UTC()
	if now.After(t.ExpiresAt) {
		return Session{}, ErrOIDCState
	}
	row, err := s.userRow(ctx, "id = ?", t.UserID)
	if err != nil {
		return Session{}, fmt.Errorf("oidc: load account: %w", err)
	}
	if !row.active() || row.TOTPSecret == nil {
		return Session{}, ErrBadCredentials
	}
	keys := s.throttleKeys(row.Username, ip)
	release, err := s.attempts.take(ctx, keys.pair)
	if err != nil {
		return Session{}, err
	}
	defer release()
	st, err := s.loadThrottle(ctx, keys)
	if err != nil {
		return Session{}, err
	}
	if wait := st.pairWait(now); wait > 0 {
		return Session{}, &ThrottledError{RetryAfter: wait}
	}
	ok, err := s.secondFactor(ctx, row, code)
	if err != nil {
		return Session{}, err
	}
	if !ok {
		if err := s.recordFailure(ctx, keys, now); err != nil {
			return Session{}, err
		}
		return Session{}, ErrTOTPInvalid
	}
	if err := s.recordSuccess(ctx, keys, now); err != nil {
		return Session{}, err
	}
	return s.openSession(ctx, row, false, "", now)
}

// openSession stores a new session for row.
func (s *Service) openSession(ctx context.Context, row userRow, limited bool, factor string, now time.Time) (Session, error) {
	token, tokenHash, err := newToken()
	if err != nil {
		return Session{}, err
	}
	sess := sessionRow{ID: newID(now), TokenHash: tokenHash, UserID: row.ID, CreatedAt: now, LastSeenAt: now,
		AbsoluteEnd: microTime(now.Add(s.abs)), SecondFactor: factor}
	sess.RowTag = s.tag(tagSessions, sess.tagFields()...)
	if err := s.db.WithContext(ctx).Create(&sess).Error; err != nil {
		return Session{}, fmt.Errorf("store session: %w", err)
	}
	s.logins.WithLabelValues("ok").Inc()
	return Session{ID: sess.ID, Token: token, ExpiresAt: s.expiry(sess), User: row.user(), TOTPEnrolmentRequired: limited}, nil
}
