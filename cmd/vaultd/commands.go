package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/api"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
)

// parse sets up the shared configuration flags plus the command's own, and
// loads the configuration.
func parse(name string, args []string, stderr io.Writer, getenv func(string) string, extra func(*flag.FlagSet)) (config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet("vaultd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := registerConfigFlags(fs)
	if extra != nil {
		extra(fs)
	}
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return config{}, fs, errHelp
	}
	if err != nil {
		return config{}, fs, usageError{err.Error()}
	}
	// fs.Args() is then the positional arguments, wherever they stood.
	if err := fs.Parse(append([]string{"--"}, pos...)); err != nil {
		return config{}, fs, usageError{err.Error()}
	}
	cfg, err := cf.load(fs, getenv)
	if err != nil {
		return cfg, fs, usageError{err.Error()}
	}
	return cfg, fs, nil
}

// parseInterleaved parses flags wherever they stand among the arguments
// (the flag package stops at the first argument, so "calendar
// workdays-after 2025-09-26 10 --data DIR" would leave --data unread) and
// returns the arguments in order. After "--" everything is an argument.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// noArgs refuses positional arguments to a command that takes none, now
// that they can no longer hide flags after them.
func noArgs(name string, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s takes no arguments (got %q)", name, clipArg(fs.Arg(0)))}
	}
	return nil
}

// indexWait bounds how long a start waits for the grants index before it
// answers (issue 10: answering within 2 s of a start with a million
// assignments).
const indexWait = 1500 * time.Millisecond

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var demo bool
	cfg, fs, err := parse("serve", args, stderr, getenv, demoFlag(&demo))
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"serve takes no arguments"}
	}
	if err := cfg.checkListen(); err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	// Allocated first, while the heap's pages are fresh from the kernel and
	// need no zeroing, so that none of the ballast becomes resident.
	ballast := tuneGC(getenv("GOGC"), getenv("GOMEMLIMIT"))
	defer runtime.KeepAlive(ballast)
	// Libraries that log through slog's default (the migration runner)
	// should write the same structured lines as the rest of the server.
	slog.SetDefault(log)
	a, err := openApp(ctx, cfg, log, withVault)
	if err != nil {
		return err
	}
	warnWitnesses(cfg, log)
	if err := a.warnEscrow(ctx, log); err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := a.close(cctx); err != nil {
			log.Error("shutdown", "err", err)
		}
	}()
	denials := api.NewDenialLog(a.audit, log, nil)
	defer func() {
		// After the server stopped taking requests, before the audit log
		// closes: the last minute's counts of repeated denials.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := denials.Flush(fctx, true); err != nil {
			log.Error("denial counts not written at shutdown", "err", err)
		}
	}()
	go denials.Run(ctx)
	// Grants made on other instances sharing a PostgreSQL database.
	go a.access.Listen(ctx, cfg.DatabaseURL)
	if demo {
		// Once filled, later starts with --demo just serve what is there.
		if err := fillDemo(ctx, a, stdout); errors.Is(err, errNotEmpty) {
			log.Info("demo data not added: the data directory already has accounts")
		} else if err != nil {
			return err
		}
	}
	wd, err := a.webDeps(ctx)
	if err != nil {
		return err
	}
	// A verification started from the audit page stops, and is waited
	// for, before the audit log closes (deferred earlier, so run later).
	defer wd.Verifier.Close()
	var sso *access.OIDC
	if oc, err := cfg.oidcConfig(); err != nil {
		return err
	} else if oc != nil {
		if sso, err = a.access.NewOIDC(*oc); err != nil {
			return err
		}
	}
	h, err := api.New(api.Deps{Vault: a.vault, Supervision: a.super, Access: a.access, Audit: a.audit, Logger: log, Gatherer: a.reg, Registerer: a.reg,
		Ready: a.ready, TrustedProxies: cfg.TrustedProxies, Denials: denials, AnonymousPerMinute: cfg.AnonymousPerMinute, Web: wd,
		MetricsToken: cfg.MetricsToken, OIDC: sso})
	if err != nil {
		return fmt.Errorf("build API: %w", err)
	}
	// The listener opens once the grants are indexed (a million take about
	// a second), so the first requests are decided from memory, or after
	// indexWait at most: past that a start answers anyway, and decisions
	// read the tables until the index is complete.
	select {
	case <-a.access.Loaded():
	case <-time.After(indexWait):
		log.Info("access: assignments still being indexed; decisions read the database until then")
	case <-ctx.Done():
		return nil
	}
	// Every schema this binary uses is migrated by now (the services'
	// and the web's included): these versions are its own.
	schema, err := sqldb.SchemaVersions(ctx, a.db)
	if err != nil {
		return err
	}
	ln, err := listen(cfg, log, a.reg)
	if err != nil {
		return err
	}
	// No whole-request ReadTimeout or WriteTimeout: they would cut slow
	// uploads and downloads that are still moving. WithIOTimeouts cuts the
	// ones that stall instead, and the listener caps connections per client.
	srv := &http.Server{Handler: api.WithIOTimeouts(h, cfg.BodyIdleTimeout, cfg.WriteIdleTimeout),
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: nil}
	if cfg.MetricsAddr != "" {
		msrv, err := serveMetrics(cfg, a, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer msrv.Close()
	}
	a.startJobs(ctx)
	moved := make(chan sqldb.SchemaMove, 1)
	go watchSchema(ctx, a.db, schema, schemaWatchEvery, log, moved)
	errc := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			errc <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	log.Info("vaultd listening", "addr", ln.Addr().String(), "tls", cfg.TLSCert != "", "database", dbKind(cfg.DatabaseURL), "blobs", blobKind(cfg))
	announceSetup(a, wd, ln, cfg.TLSCert != "", stdout)
	var stopped error
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case mv := <-moved:
		log.Error("the database was migrated by a newer vaultd: this instance stops serving, so that it writes nothing the new schema refuses; run the new vaultd in its place",
			"component", mv.Component, "from", mv.From, "to", mv.To)
		stopped = mv
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return stopped
}

// listen opens the API listener, with the per-client connection cap.
func listen(cfg config, log *slog.Logger, reg prometheus.Registerer) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if cfg.MaxConnsPerClient <= 0 {
		return ln, nil
	}
	capped, err := newClientCap(ln, cfg.MaxConnsPerClient, cfg.TrustedProxies, log, reg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return capped, nil
}

// serveMetrics serves /metrics alone on VAULT_METRICS_ADDR (behind the
// token too when one is set), apart from the API.
func serveMetrics(cfg config, a *app, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", api.MetricsHandler(a.reg, cfg.MetricsToken))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String(), "token", cfg.MetricsToken != "")
	return srv, nil
}

func dbKind(url string) string {
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		return "postgres"
	}
	return "sqlite"
}

func blobKind(cfg config) string {
	if cfg.S3Endpoint != "" {
		return "s3"
	}
	return "local"
}

func cmdOrgAdd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var name, kind string
	cfg, fs, err := parse("org add", args, stderr, getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "organisation name")
		fs.StringVar(&kind, "kind", "", "operator, provider, office, member_unit or supervision")
	})
	if err != nil {
		return err
	}
	if err := noArgs("org add", fs); err != nil {
		return err
	}
	if name == "" || kind == "" {
		return usageError{"org add needs --name and --kind"}
	}
	// With the keys: the row it writes is tagged (access's row tags).
	a, err := openApp(ctx, cfg, newLogger(stderr, "warn"), withKeys)
	if err != nil {
		return err
	}
	defer a.close(context.WithoutCancel(ctx))
	org, err := a.access.CreateOrg(ctx, name, access.OrgKind(kind))
	if err != nil {
		return cliError("add organisation", err)
	}
	e := actorCLI()
	e.Action, e.Outcome, e.Resource = "org.create", audit.Allowed, "org/"+org.ID
	if _, err := a.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("record in audit log: %w", err)
	}
	fmt.Fprintln(stdout, org.ID)
	return nil
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func cmdUserAdd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	var username, org, display string
	var roles stringList
	var pwStdin bool
	cfg, fs, err := parse("user add", args, stderr, getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&username, "username", "", "login name")
		fs.StringVar(&org, "org", "", "organisation name or id")
		fs.StringVar(&display, "display-name", "", "display name (default: the username)")
		fs.Var(&roles, "role", "role (repeatable)")
		fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of standard input")
	})
	if err != nil {
		return err
	}
	if err := noArgs("user add", fs); err != nil {
		return err
	}
	if username == "" || org == "" || len(roles) == 0 || !pwStdin {
		return usageError{"user add needs --username, --org, at least one --role and --password-stdin"}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if display == "" {
		display = username
	}
	// With the keys: the row it writes is tagged (access's row tags).
	a, err := openApp(ctx, cfg, newLogger(stderr, "warn"), withKeys)
	if err != nil {
		return err
	}
	defer a.close(context.WithoutCancel(ctx))
	rs := make([]access.Role, len(roles))
	for i, r := range roles {
		rs[i] = access.Role(r)
	}
	u, err := a.access.CreateUser(ctx, access.NewUser{Username: username, DisplayName: display, Org: org, Roles: rs, Password: password})
	if err != nil {
		return cliError("add user", err)
	}
	e := actorCLI()
	e.Action, e.Outcome, e.Resource = "user.create", audit.Allowed, "user/"+u.ID
	if _, err := a.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("record in audit log: %w", err)
	}
	fmt.Fprintln(stdout, u.ID)
	return nil
}

// cliError words a service error for the terminal.
func cliError(what string, err error) error {
	var fe *access.FieldError
	switch {
	case errors.As(err, &fe):
		return fmt.Errorf("%s: %s: %s", what, fe.Field, fe.Detail)
	case errors.Is(err, access.ErrConflict):
		return fmt.Errorf("%s: it already exists", what)
	case errors.Is(err, access.ErrNotFound):
		return fmt.Errorf("%s: organisation not found", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func cmdAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var incremental bool
	var state string
	cfg, fs, err := parse("audit verify", args, stderr, getenv, func(fs *flag.FlagSet) {
		fs.BoolVar(&incremental, "incremental", false, "check only the events after the checkpoint the last incremental run vouched for (kept in --state)")
		fs.StringVar(&state, "state", "", "file keeping the last verified checkpoint (default <data>/audit-verified)")
	})
	if err != nil {
		return err
	}
	if err := noArgs("audit verify", fs); err != nil {
		return err
	}
	// Read-only: no migration, no writer, and above all no checkpoint signed
	// over a database that may have been tampered with.
	db, err := sqldb.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer sqldb.Close(db)
	aopts, err := auditOptions(ctx, cfg, newLogger(stderr, "warn"), true)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	log, err := audit.Open(ctx, db, aopts)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	defer log.Close(context.WithoutCancel(ctx))
	if incremental {
		path := cfg.verifiedStateFile(state)
		if insideDir(cfg.DataDir, path) {
			fmt.Fprintf(stderr, "vaultd: warning: the verification state %s is in the data directory: whoever can write it and holds the "+
				"checkpoint key can make --incremental skip what it should check; keep it elsewhere with --state FILE, and run the full "+
				"verify now and then\n", path)
		}
		return auditVerifyIncremental(ctx, log, path, stdout)
	}
	rep, err := log.Verify(ctx)
	if err != nil {
		var ve *audit.VerifyError
		if errors.As(err, &ve) {
			return exitError{1, fmt.Sprintf("audit log damaged at seq %d: %s", ve.Seq, ve.Reason)}
		}
		return fmt.Errorf("verify audit log: %w", err)
	}
	fmt.Fprintf(stdout, "audit log OK: %s\n", rep)
	return nil
}

func cmdAuditPubkey(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, fs, err := parse("audit pubkey", args, stderr, getenv, nil)
	if err != nil {
		return err
	}
	if err := noArgs("audit pubkey", fs); err != nil {
		return err
	}
	key, err := audit.LoadPublicKey(cfg.auditKeyFile(), keyUnwrapper(cfg.AuditKeyIdentity, newLogger(stderr, "warn")))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, key)
	return nil
}
