package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/crypt"
	"github.com/crvault/crvault/vault/review"
)

// config is every setting of vaultd, with its documented default. Precedence:
// flags, then environment variables, then the YAML file, then defaults.
type config struct {
	Addr           string        `yaml:"addr"`                  // VAULT_ADDR, default 127.0.0.1:8080
	DataDir        string        `yaml:"data"`                  // VAULT_DATA_DIR, default ./vault-data
	DatabaseURL    string        `yaml:"database_url"`          // VAULT_DATABASE_URL, default sqlite:<data>/vault.db
	S3Endpoint     string        `yaml:"s3_endpoint"`           // VAULT_S3_ENDPOINT; S3 is used when set
	S3Bucket       string        `yaml:"s3_bucket"`             // VAULT_S3_BUCKET, default crvault
	S3AccessKey    string        `yaml:"s3_access_key"`         // VAULT_S3_ACCESS_KEY
	S3SecretKey    string        `yaml:"s3_secret_key"`         // VAULT_S3_SECRET_KEY
	S3TLS          bool          `yaml:"s3_tls"`                // VAULT_S3_TLS
	S3Region       string        `yaml:"s3_region"`             // VAULT_S3_REGION
	S3ReadIdle     time.Duration `yaml:"s3_read_idle_timeout"`  // VAULT_S3_READ_IDLE_TIMEOUT, default 30s: bound on each wait for an object's bytes
	S3WriteIdle    time.Duration `yaml:"s3_write_idle_timeout"` // VAULT_S3_WRITE_IDLE_TIMEOUT, default 30s: bound on each wait of an upload on S3
	TLSCert        string        `yaml:"tls_cert"`              // VAULT_TLS_CERT
	TLSKey         string        `yaml:"tls_key"`               // VAULT_TLS_KEY
	InsecureHTTP   bool          `yaml:"insecure_http"`         // --insecure-http: plain HTTP on a non-loopback address, behind a TLS proxy
	MaxUpload      int64         `yaml:"max_upload_bytes"`
	SessionIdle    time.Duration `yaml:"session_idle"`          // VAULT_SESSION_IDLE, default 8h
	SessionMax     time.Duration `yaml:"session_absolute"`      // VAULT_SESSION_ABSOLUTE, default 24h
	MasterKey      string        `yaml:"-"`                     // VAULT_MASTER_KEY (environment only: never in a file that gets copied around)
	MasterKeyFile  string        `yaml:"master_key_file"`       // VAULT_MASTER_KEY_FILE: one or more files, comma separated
	MirrorDir      string        `yaml:"checkpoint_mirror_dir"` // VAULT_CHECKPOINT_MIRROR_DIR
	LogLevel       string        `yaml:"log_level"`             // VAULT_LOG_LEVEL: debug, info, warn, error
	TrustedProxies []string      `yaml:"trusted_proxies"`       // VAULT_TRUSTED_PROXIES, comma separated
	// TOTPRequiredRoles is VAULT_TOTP_REQUIRED_ROLES, comma separated; nil:
	// access.DefaultTOTPRequiredRoles; empty (or "none"): no requirement.
	TOTPRequiredRoles *string `yaml:"totp_required_roles"`
	// AnonymousPerMinute is VAULT_ANONYMOUS_RATE: requests without a session
	// per client per minute (default 120).
	AnonymousPerMinute int `yaml:"anonymous_rate"`
	// AuditSyncCommit is the synchronous_commit level of every audit
	// transaction on PostgreSQL: "on" (default) or "remote_apply" for a
	// primary with synchronous standbys. VAULT_AUDIT_SYNC_COMMIT.
	AuditSyncCommit string `yaml:"audit_sync_commit"`
	// The janitor: how often it runs, and how old an unfinished upload (S3
	// multipart upload, local temp file) must be before it is removed; the
	// grace must exceed the longest upload any instance may be making.
	JanitorInterval time.Duration `yaml:"janitor_interval"` // VAULT_JANITOR_INTERVAL, default 1h
	JanitorGrace    time.Duration `yaml:"janitor_grace"`    // VAULT_JANITOR_GRACE, default 24h

	// The audit trail's signing key and checkpoint witnesses (issue 8).
	AuditKeyFile        string        `yaml:"audit_key_file"`       // VAULT_AUDIT_KEY_FILE, default <data>/keys/audit-checkpoint.key
	AuditKeyIdentity    string        `yaml:"audit_key_identity"`   // VAULT_AUDIT_KEY_IDENTITY: age identities file when the key file is age-encrypted
	AuditVerifierKey    string        `yaml:"audit_verifier_key"`   // VAULT_AUDIT_VERIFIER_KEY: pins the checkpoint key (vaultd audit pubkey's line)
	CheckpointS3Bucket  string        `yaml:"checkpoint_s3_bucket"` // VAULT_CHECKPOINT_S3_BUCKET, default <s3 bucket>-audit; "off" for none
	CheckpointS3Prefix  string        `yaml:"checkpoint_s3_prefix"` // VAULT_CHECKPOINT_S3_PREFIX, default audit-checkpoints/
	CheckpointRetention time.Duration `yaml:"checkpoint_retention"` // VAULT_CHECKPOINT_RETENTION, default 2160h (90 days)
	// CheckpointInterval is how often the leading instance signs a
	// checkpoint while events arrive: how long a rewrite of the newest
	// events can go unwitnessed, against a witnessed object each time.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"` // VAULT_CHECKPOINT_INTERVAL, default 10s

	// HTTP hardening (issue 8).
	MetricsAddr       string        `yaml:"metrics_addr"`              // VAULT_METRICS_ADDR: a separate listener for /metrics
	MetricsToken      string        `yaml:"-"`                         // VAULT_METRICS_TOKEN (environment only): bearer token for /metrics
	BodyIdleTimeout   time.Duration `yaml:"http_body_idle_timeout"`    // VAULT_HTTP_BODY_IDLE_TIMEOUT, default 30s
	WriteIdleTimeout  time.Duration `yaml:"http_write_idle_timeout"`   // VAULT_HTTP_WRITE_IDLE_TIMEOUT, default 60s
	MaxConnsPerClient int           `yaml:"http_max_conns_per_client"` // VAULT_HTTP_MAX_CONNS_PER_CLIENT, default 100; 0 for no cap

	// CiphertextCache is VAULT_CIPHERTEXT_CACHE_BYTES: memory for the
	// ciphertext of small materials read more than once; 0 turns it off.
	CiphertextCache int64 `yaml:"ciphertext_cache_bytes"`

	// The review workflow's deadline watcher.
	WebhookURL       string        `yaml:"webhook_url"`       // VAULT_WEBHOOK_URL: POSTed {case_id, flag, due_on, phase} on each deadline flag
	DeadlineInterval time.Duration `yaml:"deadline_interval"` // VAULT_DEADLINE_INTERVAL, default 1h
	// RulesEdition pins the edition of the Measures new submissions follow
	// (VAULT_RULES_EDITION: 2020 or 2021); empty: by the filing date.
	RulesEdition string `yaml:"rules_edition"`
	// UploadExpiry is VAULT_UPLOAD_EXPIRY: how long a resumable upload
	// session lives after its last chunk before the janitor removes it
	// (default 24h).
	UploadExpiry time.Duration `yaml:"upload_expiry"`

	// Keys (docs/keys.md). MasterIdentityFile is VAULT_MASTER_IDENTITY_FILE:
	// identities (an age plugin's, e.g. AGE-PLUGIN-YUBIKEY-1...) that open
	// sealed master key files. MasterRecipients is VAULT_MASTER_RECIPIENTS:
	// recipients (age1yubikey1..., age1pq1...) new master key files are
	// sealed to. EscrowFile is VAULT_ESCROW_RECIPIENTS_FILE: hybrid
	// recipients (age1pq1...) every key is also wrapped to.
	MasterIdentityFile string `yaml:"master_identity_file"`
	MasterRecipients   string `yaml:"master_recipients"`
	EscrowFile         string `yaml:"escrow_recipients_file"`
	// Retention is VAULT_RETENTION: how long a case is kept after it ended
	// before retention apply shreds it: years ("10y", the default) or a
	// duration ("2160h").
	Retention string `yaml:"retention"`

	// Single sign-on (docs/sign-in.md): VAULT_OIDC_ISSUER,
	// VAULT_OIDC_CLIENT_ID, VAULT_OIDC_CLIENT_SECRET (environment only),
	// VAULT_OIDC_REDIRECT_URL, VAULT_OIDC_USERNAME_CLAIM,
	// VAULT_OIDC_ORG_CLAIM, VAULT_OIDC_ROLES_CLAIM, VAULT_OIDC_MAPPING_FILE
	// (YAML: orgs and roles maps), VAULT_OIDC_TRUSTED_AMR (comma
	// separated). Single sign-on is on when the issuer is set.
	OIDCIssuer        string `yaml:"oidc_issuer"`
	OIDCClientID      string `yaml:"oidc_client_id"`
	OIDCClientSecret  string `yaml:"-"`
	OIDCRedirectURL   string `yaml:"oidc_redirect_url"`
	OIDCUsernameClaim string `yaml:"oidc_username_claim"`
	OIDCOrgClaim      string `yaml:"oidc_org_claim"`
	OIDCRolesClaim    string `yaml:"oidc_roles_claim"`
	OIDCMappingFile   string `yaml:"oidc_mapping_file"`
	OIDCTrustedAMR    string `yaml:"oidc_trusted_amr"`

	// Set by commands, never by configuration: extra masters (an escrow
	// identity, for keys recover) and recovery mode (the active master may
	// be missing; only keys are opened).
	extraMasters []*crypt.Master
	recovery     bool
}

func defaults() config {
	return config{Addr: "127.0.0.1:8080", DataDir: "./vault-data", S3Bucket: "crvault", MaxUpload: 10 << 30,
		SessionIdle: 8 * time.Hour, SessionMax: 24 * time.Hour, LogLevel: "info",
		DeadlineInterval: time.Hour, UploadExpiry: vault.DefaultUploadExpiry, AuditSyncCommit: "on",
		JanitorInterval: time.Hour, JanitorGrace: 24 * time.Hour, CheckpointS3Prefix: "audit-checkpoints/",
		CheckpointRetention: 90 * 24 * time.Hour, CheckpointInterval: 10 * time.Second, BodyIdleTimeout: 30 * time.Second, WriteIdleTimeout: 60 * time.Second,
		S3ReadIdle: 30 * time.Second, S3WriteIdle: 30 * time.Second,
		MaxConnsPerClient: 100, Retention: "10y", CiphertextCache: vault.DefaultCiphertextCache}
}

// flags registers the shared configuration flags on fs; apply must be called
// after fs.Parse.
type configFlags struct {
	file                        string
	addr, data, dbURL, logLevel string
	insecure                    bool
	maxUpload                   int64
}

func registerConfigFlags(fs *flag.FlagSet) *configFlags {
	f := &configFlags{}
	fs.StringVar(&f.file, "config", "", "YAML configuration file")
	fs.StringVar(&f.addr, "addr", "", "listen address (VAULT_ADDR, default 127.0.0.1:8080)")
	fs.StringVar(&f.data, "data", "", "data directory (VAULT_DATA_DIR, default ./vault-data)")
	fs.StringVar(&f.dbURL, "database-url", "", "sqlite:PATH or postgres://... (VAULT_DATABASE_URL)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (VAULT_LOG_LEVEL)")
	fs.BoolVar(&f.insecure, "insecure-http", false, "allow plain HTTP on a non-loopback address (behind a TLS-terminating proxy)")
	fs.Int64Var(&f.maxUpload, "max-upload-bytes", 0, "largest document accepted, in bytes (VAULT_MAX_UPLOAD_BYTES, default 10 GiB)")
	return f
}

func (f *configFlags) load(fs *flag.FlagSet, getenv func(string) string) (config, error) {
	c := defaults()
	if f.file != "" {
		b, err := os.ReadFile(f.file)
		if err != nil {
			return c, fmt.Errorf("read config file: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("parse config file %s: %w", f.file, err)
		}
	}
	var errs []error
	str := func(dst *string, key string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	boolean := func(dst *bool, key string) {
		if v := getenv(key); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not true or false", key, v))
			}
			*dst = b
		}
	}
	dur := func(dst *time.Duration, key string) {
		if v := getenv(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive duration", key, v))
			}
			*dst = d
		}
	}
	str(&c.Addr, "VAULT_ADDR")
	str(&c.DataDir, "VAULT_DATA_DIR")
	str(&c.DatabaseURL, "VAULT_DATABASE_URL")
	str(&c.S3Endpoint, "VAULT_S3_ENDPOINT")
	str(&c.S3Bucket, "VAULT_S3_BUCKET")
	str(&c.S3AccessKey, "VAULT_S3_ACCESS_KEY")
	str(&c.S3SecretKey, "VAULT_S3_SECRET_KEY")
	str(&c.S3Region, "VAULT_S3_REGION")
	boolean(&c.S3TLS, "VAULT_S3_TLS")
	dur(&c.S3ReadIdle, "VAULT_S3_READ_IDLE_TIMEOUT")
	dur(&c.S3WriteIdle, "VAULT_S3_WRITE_IDLE_TIMEOUT")
	str(&c.TLSCert, "VAULT_TLS_CERT")
	str(&c.TLSKey, "VAULT_TLS_KEY")
	boolean(&c.InsecureHTTP, "VAULT_INSECURE_HTTP")
	dur(&c.SessionIdle, "VAULT_SESSION_IDLE")
	dur(&c.SessionMax, "VAULT_SESSION_ABSOLUTE")
	str(&c.MasterKey, "VAULT_MASTER_KEY")
	str(&c.MasterKeyFile, "VAULT_MASTER_KEY_FILE")
	str(&c.MirrorDir, "VAULT_CHECKPOINT_MIRROR_DIR")
	str(&c.LogLevel, "VAULT_LOG_LEVEL")
	str(&c.WebhookURL, "VAULT_WEBHOOK_URL")
	dur(&c.DeadlineInterval, "VAULT_DEADLINE_INTERVAL")
	str(&c.RulesEdition, "VAULT_RULES_EDITION")
	dur(&c.UploadExpiry, "VAULT_UPLOAD_EXPIRY")
	str(&c.MasterIdentityFile, "VAULT_MASTER_IDENTITY_FILE")
	str(&c.MasterRecipients, "VAULT_MASTER_RECIPIENTS")
	str(&c.EscrowFile, "VAULT_ESCROW_RECIPIENTS_FILE")
	str(&c.Retention, "VAULT_RETENTION")
	str(&c.OIDCIssuer, "VAULT_OIDC_ISSUER")
	str(&c.OIDCClientID, "VAULT_OIDC_CLIENT_ID")
	str(&c.OIDCClientSecret, "VAULT_OIDC_CLIENT_SECRET")
	str(&c.OIDCRedirectURL, "VAULT_OIDC_REDIRECT_URL")
	str(&c.OIDCUsernameClaim, "VAULT_OIDC_USERNAME_CLAIM")
	str(&c.OIDCOrgClaim, "VAULT_OIDC_ORG_CLAIM")
	str(&c.OIDCRolesClaim, "VAULT_OIDC_ROLES_CLAIM")
	str(&c.OIDCMappingFile, "VAULT_OIDC_MAPPING_FILE")
	str(&c.OIDCTrustedAMR, "VAULT_OIDC_TRUSTED_AMR")
	if c.OIDCIssuer != "" && (c.OIDCClientID == "" || c.OIDCRedirectURL == "" || c.OIDCMappingFile == "") {
		errs = append(errs, errors.New("VAULT_OIDC_ISSUER needs VAULT_OIDC_CLIENT_ID, VAULT_OIDC_REDIRECT_URL and VAULT_OIDC_MAPPING_FILE"))
	}
	if _, err := vault.ParsePeriod(c.Retention); err != nil {
		errs = append(errs, fmt.Errorf("VAULT_RETENTION: %w", err))
	}
	if _, err := review.EditionByID(c.RulesEdition); c.RulesEdition != "" && err != nil {
		errs = append(errs, fmt.Errorf("VAULT_RULES_EDITION: %w", err))
	}
	str(&c.AuditSyncCommit, "VAULT_AUDIT_SYNC_COMMIT")
	dur(&c.JanitorInterval, "VAULT_JANITOR_INTERVAL")
	dur(&c.JanitorGrace, "VAULT_JANITOR_GRACE")
	if v := getenv("VAULT_MAX_UPLOAD_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("VAULT_MAX_UPLOAD_BYTES: %q is not a positive integer", v))
		}
		c.MaxUpload = n
	}
	str(&c.AuditKeyFile, "VAULT_AUDIT_KEY_FILE")
	str(&c.AuditKeyIdentity, "VAULT_AUDIT_KEY_IDENTITY")
	str(&c.AuditVerifierKey, "VAULT_AUDIT_VERIFIER_KEY")
	str(&c.CheckpointS3Bucket, "VAULT_CHECKPOINT_S3_BUCKET")
	str(&c.CheckpointS3Prefix, "VAULT_CHECKPOINT_S3_PREFIX")
	dur(&c.CheckpointRetention, "VAULT_CHECKPOINT_RETENTION")
	dur(&c.CheckpointInterval, "VAULT_CHECKPOINT_INTERVAL")
	str(&c.MetricsAddr, "VAULT_METRICS_ADDR")
	str(&c.MetricsToken, "VAULT_METRICS_TOKEN")
	dur(&c.BodyIdleTimeout, "VAULT_HTTP_BODY_IDLE_TIMEOUT")
	dur(&c.WriteIdleTimeout, "VAULT_HTTP_WRITE_IDLE_TIMEOUT")
	if v := getenv("VAULT_HTTP_MAX_CONNS_PER_CLIENT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("VAULT_HTTP_MAX_CONNS_PER_CLIENT: %q is not a count", v))
		}
		c.MaxConnsPerClient = n
	}
	if v := getenv("VAULT_CIPHERTEXT_CACHE_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("VAULT_CIPHERTEXT_CACHE_BYTES: %q is not a size in bytes", v))
		}
		c.CiphertextCache = n
	}
	if v := getenv("VAULT_TRUSTED_PROXIES"); v != "" {
		c.TrustedProxies = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.TrustedProxies = append(c.TrustedProxies, p)
			}
		}
	}
	if v := getenv("VAULT_TOTP_REQUIRED_ROLES"); v != "" {
		c.TOTPRequiredRoles = &v
	}
	if v := getenv("VAULT_ANONYMOUS_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("VAULT_ANONYMOUS_RATE: %q is not a positive integer", v))
		}
		c.AnonymousPerMinute = n
	}
	if err := c.checkTOTPRoles(); err != nil {
		errs = append(errs, err)
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["addr"] {
		c.Addr = f.addr
	}
	if set["data"] {
		c.DataDir = f.data
	}
	if set["database-url"] {
		c.DatabaseURL = f.dbURL
	}
	if set["log-level"] {
		c.LogLevel = f.logLevel
	}
	if set["insecure-http"] {
		c.InsecureHTTP = f.insecure
	}
	if set["max-upload-bytes"] {
		c.MaxUpload = f.maxUpload
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite:" + filepath.Join(c.DataDir, "vault.db")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(c.LogLevel)) {
		// A typo must not quietly log at another level: an operator who
		// asked for debug to chase a fault would see nothing of it.
		errs = append(errs, fmt.Errorf("log level %q: want debug, info, warn or error (VAULT_LOG_LEVEL, --log-level)", c.LogLevel))
	}
	if c.MaxUpload <= 0 {
		errs = append(errs, errors.New("max upload size must be positive"))
	}
	if c.S3ReadIdle <= 0 {
		// Zero would read as "no bound" to some and as the default to
		// others; a stalled store must always be cut.
		errs = append(errs, errors.New("s3_read_idle_timeout must be positive"))
	}
	if c.S3WriteIdle <= 0 {
		errs = append(errs, errors.New("s3_write_idle_timeout must be positive"))
	}
	if c.CiphertextCache < 0 {
		errs = append(errs, errors.New("the ciphertext cache size cannot be negative"))
	}
	if c.AuditSyncCommit != "on" && c.AuditSyncCommit != "remote_apply" {
		errs = append(errs, fmt.Errorf("VAULT_AUDIT_SYNC_COMMIT: %q is neither on nor remote_apply", c.AuditSyncCommit))
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < 16 {
		errs = append(errs, errors.New("VAULT_METRICS_TOKEN must be at least 16 characters"))
	}
	if c.CheckpointS3Bucket == "" && c.S3Bucket != "" {
		c.CheckpointS3Bucket = c.S3Bucket + "-audit"
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("VAULT_TLS_CERT and VAULT_TLS_KEY must be set together"))
	}
	return c, errors.Join(errs...)
}

func (c config) keyDir() string { return filepath.Join(c.DataDir, "keys") }

// totpNone is what main passes for VAULT_TOTP_REQUIRED_ROLES set to the
// empty string, which turns the requirement off (getenv cannot tell set and
// empty from unset).
const totpNone = "none"

// totpRoles is the access option: nil for the default, empty for none.
func (c config) totpRoles() []access.Role {
	if c.TOTPRequiredRoles == nil {
		return nil
	}
	roles := []access.Role{}
	for _, r := range strings.Split(*c.TOTPRequiredRoles, ",") {
		if r = strings.TrimSpace(r); r != "" && r != totpNone {
			roles = append(roles, access.Role(r))
		}
	}
	return roles
}

func (c config) checkTOTPRoles() error {
	for _, r := range c.totpRoles() {
		if !r.Valid() {
			return fmt.Errorf("VAULT_TOTP_REQUIRED_ROLES: unknown role %q", r)
		}
	}
	return nil
}

// checkListen refuses plain HTTP on a non-loopback address unless the
// operator said a TLS proxy sits in front.
func (c config) checkListen() error {
	if c.TLSCert != "" || c.InsecureHTTP {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", c.Addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to listen on %s without TLS: set VAULT_TLS_CERT and VAULT_TLS_KEY, or pass --insecure-http behind a TLS-terminating proxy", c.Addr)
}

// retention is the parsed VAULT_RETENTION (checked by load).
func (c config) retention() vault.Period {
	p, err := vault.ParsePeriod(c.Retention)
	if err != nil {
		return vault.DefaultRetention
	}
	return p
}

// oidcMapping is the YAML of VAULT_OIDC_MAPPING_FILE.
type oidcMapping struct {
	// Orgs: org claim value -> organisation name or id.
	Orgs map[string]string `yaml:"orgs"`
	// Roles: roles claim value -> a role, or a list of roles.
	Roles map[string]yaml.Node `yaml:"roles"`
}

// oidcConfig reads the single sign-on settings; nil when off.
func (c config) oidcConfig() (*access.OIDCConfig, error) {
	if c.OIDCIssuer == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.OIDCMappingFile)
	if err != nil {
		return nil, fmt.Errorf("VAULT_OIDC_MAPPING_FILE: %w", err)
	}
	var m oidcMapping
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("VAULT_OIDC_MAPPING_FILE: %w", err)
	}
	oc := &access.OIDCConfig{Issuer: c.OIDCIssuer, ClientID: c.OIDCClientID, ClientSecret: c.OIDCClientSecret,
		RedirectURL: c.OIDCRedirectURL, UsernameClaim: c.OIDCUsernameClaim, OrgClaim: c.OIDCOrgClaim, RolesClaim: c.OIDCRolesClaim,
		Orgs: m.Orgs, Roles: map[string][]access.Role{}}
	for k, n := range m.Roles {
		var list []string
		if n.Kind == yaml.ScalarNode {
			list = []string{n.Value}
		} else if err := n.Decode(&list); err != nil {
			return nil, fmt.Errorf("VAULT_OIDC_MAPPING_FILE: roles.%s: a role or a list of roles", k)
		}
		for _, r := range list {
			if !access.Role(r).Valid() {
				return nil, fmt.Errorf("VAULT_OIDC_MAPPING_FILE: roles.%s: unknown role %q", k, r)
			}
			oc.Roles[k] = append(oc.Roles[k], access.Role(r))
		}
	}
	for _, a := range strings.Split(c.OIDCTrustedAMR, ",") {
		if a = strings.TrimSpace(a); a != "" {
			oc.TrustedAMR = append(oc.TrustedAMR, a)
		}
	}
	return oc, nil
}

// ciphertextCache is the vault's cache budget: vault.Config takes 0 as its
// default and a negative size as off, where the setting's 0 means off.
func (c config) ciphertextCache() int64 {
	if c.CiphertextCache == 0 {
		return -1
	}
	return c.CiphertextCache
}
