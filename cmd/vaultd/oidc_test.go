package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Single sign-on (issue 12, item 7) against a small OpenID Connect
// provider run by the test: discovery, JWKS, an authorization endpoint that
// signs in whoever the test says, and a token endpoint that checks the
// client secret and the PKCE verifier and issues RS256 ID tokens.

type testIdP struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	rogue  *rsa.PrivateKey // a key not in the JWKS
	secret string

	mu     sync.Mutex
	next   map[string]any // claims of the next sign-in
	evil   bool           // sign with the rogue key
	grants map[string]idpGrant
}

type idpGrant struct {
	claims    map[string]any
	nonce     string
	challenge string
}

func newTestIdP(t *testing.T) *testIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &testIdP{t: t, key: key, rogue: rogue, secret: "idp client secret", grants: map[string]idpGrant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		u := p.srv.URL
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token",
			"jwks_uri": u + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"}})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != "crvault" || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" {
			http.Error(w, "bad authorization request", http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		code := fmt.Sprintf("code-%d", len(p.grants)+1)
		p.grants[code] = idpGrant{claims: p.next, nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
		p.mu.Unlock()
		back, _ := url.Parse(q.Get("redirect_uri"))
		bq := back.Query()
		bq.Set("code", code)
		bq.Set("state", q.Get("state"))
		back.RawQuery = bq.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		id, sec, ok := r.BasicAuth()
		if !ok {
			id, sec = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		id, _ = url.QueryUnescape(id)
		sec, _ = url.QueryUnescape(sec)
		p.mu.Lock()
		g, found := p.grants[r.PostForm.Get("code")]
		delete(p.grants, r.PostForm.Get("code"))
		evil := p.evil
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if id != "crvault" || sec != p.secret || !found || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		claims := map[string]any{"iss": p.srv.URL, "aud": "crvault", "iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(),
			"nonce": g.nonce}
		for k, v := range g.claims {
			claims[k] = v
		}
		key := p.key
		if evil {
			key = p.rogue
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		if err != nil {
			t.Error(err)
			return
		}
		payload, _ := json.Marshal(claims)
		jws, err := signer.Sign(payload)
		if err != nil {
			t.Error(err)
			return
		}
		tok, _ := jws.CompactSerialize()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "opaque", "token_type": "Bearer", "expires_in": 300, "id_token": tok})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// as sets who the IdP signs in next.
func (p *testIdP) as(claims map[string]any) {
	p.mu.Lock()
	p.next = claims
	p.mu.Unlock()
}

func (p *testIdP) setEvil(v bool) {
	p.mu.Lock()
	p.evil = v
	p.mu.Unlock()
}

// ssoResult is the end of a browser's single sign-on.
type ssoResult struct {
	status int
	body   []byte
}

func (r ssoResult) problemCode(t *testing.T) (string, string) {
	t.Helper()
	var p struct {
		Code       string `json:"code"`
		OIDCTicket string `json:"oidc_ticket"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("not a problem (%d): %s", r.status, r.body)
	}
	return p.Code, p.OIDCTicket
}

// sso runs a browser through the sign-on: vaultd, the IdP, back to vaultd.
func sso(t *testing.T, s *server, p *testIdP, claims map[string]any) ssoResult {
	t.Helper()
	p.as(claims)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(s.base + "/api/v1/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return ssoResult{status: resp.StatusCode, body: []byte(b.String())}
}

func ssoSession(t *testing.T, s *server, r ssoResult) (*client, bool) {
	t.Helper()
	if r.status != 201 {
		t.Fatalf("single sign-on: %d %s", r.status, r.body)
	}
	var out struct {
		Token string `json:"token"`
		User  struct {
			ID string `json:"id"`
		} `json:"user"`
		TOTPEnrolmentRequired bool `json:"totp_enrolment_required"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	return &client{t: t, s: s, token: out.Token, id: out.User.ID}, out.TOTPEnrolmentRequired
}

// pendingUser finds the id of the pending account with that username.
func pendingUser(t *testing.T, admin *client, prefix string) string {
	t.Helper()
	var us struct {
		Items []struct{ ID, Username, Status string } `json:"items"`
	}
	admin.expect(200, "GET", "/users?status=pending_approval&limit=500", nil).json(t, &us)
	for _, u := range us.Items {
		if strings.HasPrefix(u.Username, prefix) {
			return u.ID
		}
	}
	t.Fatalf("no pending account %s*: %+v", prefix, us.Items)
	return ""
}

// TestSingleSignOnWithOIDC signs people in through the test IdP: accounts
// made from claims wait for an office admin's approval, need their own
// TOTP (through a one-time ticket) unless the IdP's amr is trusted, never
// take over a local account of the same name, lose roles the IdP drops and
// wait again for roles it adds; claims breaking separation of duties,
// unmapped organisations, forged tokens and a callback in another browser
// sign nobody in.
func TestSingleSignOnWithOIDC(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			idp := newTestIdP(t)
			mapping := filepath.Join(t.TempDir(), "oidc.yaml")
			if err := os.WriteFile(mapping, []byte(`orgs:
  review-office: Cybersecurity Review Office
  grid: Grid Co
roles:
  crv-office: office_admin
  crv-reviewer: reviewer
  crv-operator: operator
  crv-admin: [sysadmin]
`), 0o600); err != nil {
				t.Fatal(err)
			}
			s := newServer(t, be, "VAULT_OIDC_ISSUER="+idp.srv.URL, "VAULT_OIDC_CLIENT_ID=crvault", "VAULT_OIDC_CLIENT_SECRET="+idp.secret,
				"VAULT_OIDC_MAPPING_FILE="+mapping, "VAULT_OIDC_TRUSTED_AMR=hwk")
			s.env = append(s.env, "VAULT_OIDC_REDIRECT_URL="+s.base+"/api/v1/oidc/callback")
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)

			alice := map[string]any{"sub": "alice-1", "preferred_username": "alice", "name": "Alice", "org": "review-office", "roles": []string{"crv-reviewer"}}
			// First sign-in: the account exists, awaiting approval.
			if code, _ := sso(t, s, idp, alice).problemCode(t); code != "account_pending_approval" {
				t.Fatalf("first sign-in: %s", code)
			}
			aliceID := pendingUser(t, w.admin, "alice")
			w.office.expect(200, "POST", "/users/"+aliceID+"/approve", nil)
			// Reviewers need TOTP: a session limited to enrolment.
			c, limited := ssoSession(t, s, sso(t, s, idp, alice))
			if !limited {
				t.Fatal("a reviewer without TOTP got a full session")
			}
			c.expect(403, "GET", "/cases", nil)
			dev := c.enrolTOTP()
			// Now the account's TOTP is asked for, through a ticket.
			code, ticket := sso(t, s, idp, alice).problemCode(t)
			if code != "totp_required" || ticket == "" {
				t.Fatalf("sign-in with TOTP enrolled: %s %q", code, ticket)
			}
			bad := s.postJSON(t, "", "/oidc/totp", map[string]string{"oidc_ticket": ticket, "totp": "000000"})
			if bad.Status != 401 {
				t.Fatalf("wrong code: %d %s", bad.Status, bad.Body)
			}
			if r := s.postJSON(t, "", "/oidc/totp", map[string]string{"oidc_ticket": ticket, "totp": dev.next(t)}); r.Status != 400 {
				t.Fatalf("spent ticket: %d %s", r.Status, r.Body)
			}
			_, ticket = sso(t, s, idp, alice).problemCode(t)
			r := s.postJSON(t, "", "/oidc/totp", map[string]string{"oidc_ticket": ticket, "totp": dev.next(t)})
			if r.Status != 201 {
				t.Fatalf("ticket and code: %d %s", r.Status, r.Body)
			}
			c, limited = ssoSession(t, s, ssoResult{status: r.Status, body: r.Body})
			if limited {
				t.Fatal("full sign-in limited")
			}
			c.expect(200, "GET", "/cases", nil)
			// No password signs in to an account of the IdP.
			if r := s.postJSON(t, "", "/sessions", map[string]string{"username": "alice", "password": pw}); r.Status != 401 {
				t.Fatalf("password sign-in to an SSO account: %d", r.Status)
			}

			// A trusted amr stands in for TOTP.
			bob := map[string]any{"sub": "bob-1", "preferred_username": "bob", "org": "review-office", "roles": "crv-reviewer", "amr": []string{"hwk", "pwd"}}
			sso(t, s, idp, bob)
			w.office.expect(200, "POST", "/users/"+pendingUser(t, w.admin, "bob")+"/approve", nil)
			cb, limited := ssoSession(t, s, sso(t, s, idp, bob))
			if limited {
				t.Fatal("trusted amr did not count as the second factor")
			}
			cb.expect(200, "GET", "/cases", nil)
			// An untrusted amr does not.
			bob["amr"] = []string{"pwd"}
			if _, limited := ssoSession(t, s, sso(t, s, idp, bob)); !limited {
				t.Fatal("untrusted amr counted as the second factor")
			}

			// The IdP's "office" is not the local office admin.
			mallory := map[string]any{"sub": "m-1", "preferred_username": "office", "org": "review-office", "roles": []string{"crv-office"}}
			if code, _ := sso(t, s, idp, mallory).problemCode(t); code != "account_pending_approval" {
				t.Fatalf("name collision: %s", code)
			}
			if id := pendingUser(t, w.admin, "office-"); id == w.office.id {
				t.Fatal("an IdP user took over the local account of the same name")
			}

			// Separation of duties, unmapped organisations.
			for name, cl := range map[string]map[string]any{
				"sysadmin and reviewer":  {"sub": "x-1", "preferred_username": "x", "org": "review-office", "roles": []string{"crv-admin", "crv-reviewer"}},
				"operator in the office": {"sub": "x-2", "preferred_username": "y", "org": "review-office", "roles": []string{"crv-operator"}},
				"unknown org":            {"sub": "x-3", "preferred_username": "z", "org": "elsewhere", "roles": []string{"crv-reviewer"}},
				"no role":                {"sub": "x-4", "preferred_username": "v", "org": "grid"},
			} {
				if code, _ := sso(t, s, idp, cl).problemCode(t); code != "oidc_not_mapped" {
					t.Errorf("%s: %s", name, code)
				}
			}

			// The IdP drops alice's role: she is out at once; it gives her
			// a new role reaching content: she waits for approval again.
			alice["roles"] = []string{}
			if code, _ := sso(t, s, idp, alice).problemCode(t); code != "oidc_not_mapped" {
				t.Fatalf("deprovisioned: %s", code)
			}
			alice["roles"] = []string{"crv-reviewer", "crv-office"}
			if code, _ := sso(t, s, idp, alice).problemCode(t); code != "account_pending_approval" {
				t.Fatalf("new role: %s", code)
			}
			c.expect(401, "GET", "/cases", nil)
			// Her sessions ended, rather than paused: approved again, the
			// old one does not wake up with the new role.
			w.office.expect(200, "POST", "/users/"+aliceID+"/approve", nil)
			c.expect(401, "GET", "/cases", nil)

			// A token signed by a key the IdP does not publish.
			idp.setEvil(true)
			if code, _ := sso(t, s, idp, bob).problemCode(t); code != "oidc_failed" {
				t.Fatalf("forged token: %s", code)
			}
			idp.setEvil(false)

			// The callback in a browser that did not begin the sign-in.
			idp.as(bob)
			jar, _ := cookiejar.New(nil)
			var callback string
			stop := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
				if strings.Contains(req.URL.Path, "/oidc/callback") {
					callback = req.URL.String()
					return http.ErrUseLastResponse
				}
				return nil
			}}
			if resp, err := stop.Get(s.base + "/api/v1/oidc/login"); err != nil {
				t.Fatal(err)
			} else {
				resp.Body.Close()
			}
			resp, err := http.Get(callback)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Fatalf("callback without the state cookie: %d", resp.StatusCode)
			}

			var ev struct {
				Items []struct{ Detail string } `json:"items"`
			}
			w.insp.expect(200, "GET", "/audit/events?action=session.oidc&outcome=denied&limit=500", nil).json(t, &ev)
			if len(ev.Items) < 8 {
				t.Fatalf("refused sign-ons audited: %d", len(ev.Items))
			}
		})
	}
}
