// Command vaultctl is crvault's command-line client: it signs in to a vaultd
// server, lists and files cases, uploads materials (streamed, resumable
// after a network error) and downloads them (verified against the SHA-256
// the server reports, never leaving a partial file under the final name),
// exports the audit log, and checks exports and evidence bundles offline,
// with no server at all.
//
// Commands are "noun verb"; flags may come before or after arguments; every
// command answers --help. Errors are one line on standard error, carrying
// the server's problem code, and the exit status says what kind of failure
// it was (see exitHelp).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio())
	stop()
	os.Exit(code)
}

// Exit statuses: a script can tell every kind of failure apart.
const (
	exitOK       = 0
	exitFail     = 1 // a verification failed: audit log, evidence, a download's checksum
	exitUsage    = 2 // the command line is wrong, or a local file cannot be used
	exitAuth     = 3 // not signed in, session expired, or sign-in refused (401)
	exitDenied   = 4 // signed in, but not allowed to do this (403)
	exitNotFound = 5 // no such case, material or upload, or none visible to you (404)
	exitRefused  = 6 // the server refused the request as it stands (400, 409, 413, 422, 429...)
	exitServer   = 7 // the server failed or could not be reached (5xx, network, timeout)
)

const exitHelp = `Exit status:
  0  success
  1  verification failed (audit log, evidence bundle, a download's SHA-256)
  2  usage error, or a local file that cannot be read or written
  3  authentication: not signed in, session expired, sign-in refused
  4  permission: signed in but not allowed (HTTP 403)
  5  not found, or not visible to you (HTTP 404)
  6  refused: the request conflicts with the current state or is invalid
     (HTTP 400, 409, 413, 422, 429); the message carries the server's code
  7  server error or network failure (HTTP 5xx, unreachable, timeout)
`

// env is what a command may touch besides its arguments; tests fill it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// isTerminal says whether a stream is an interactive terminal (for
	// prompts and the progress bar).
	isTerminal func(any) bool
	// readPassword reads a line from the terminal without echo.
	readPassword func() (string, error)
}

// command is one "noun verb" of the CLI.
type command struct {
	name     string
	synopsis string
	summary  string
	// network commands take --server, --ca-cert and --idle-timeout.
	network bool
	// flags registers the command's own flags and returns the function the
	// command runs with once they are parsed.
	setup func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

// commands is the dispatch table; a new command is one more row.
func commands() []command {
	return []command{
		{name: "login", synopsis: "[--username U] [--password-stdin] [--totp CODE]", summary: "sign in and keep the session token (0600) for the other commands", network: true, setup: loginCmd},
		{name: "logout", synopsis: "", summary: "end the session and forget the token", network: true, setup: logoutCmd},
		{name: "whoami", synopsis: "", summary: "show who the kept session belongs to", network: true, setup: whoamiCmd},
		{name: "cases list", synopsis: "[--status S] [--json]", summary: "the cases you may see", network: true, setup: casesListCmd},
		{name: "cases show", synopsis: "CASE [--json]", summary: "a case and its materials", network: true, setup: casesShowCmd},
		{name: "cases create", synopsis: "--title T --product P [--provider ORG]... [--type T]", summary: "file a new case (operators); prints its id", network: true, setup: casesCreateCmd},
		{name: "cases submit", synopsis: "CASE", summary: "submit a draft case for review", network: true, setup: casesSubmitCmd},
		{name: "upload", synopsis: "CASE FILE|- --kind K [--filename NAME] [--content-type T]  |  upload --resume ID FILE|-", summary: "upload a material, resumable after a network error; prints the material id", network: true, setup: uploadCmd},
		{name: "download", synopsis: "MATERIAL [-o FILE|-] [--force]", summary: "download a material, verified against its SHA-256", network: true, setup: downloadCmd},
		{name: "audit export", synopsis: "[--from SEQ] [--to SEQ] [-o FILE|-]", summary: "export the audit log as NDJSON (inspectors)", network: true, setup: auditExportCmd},
		{name: "audit watch", synopsis: "--key KEY --state FILE [--once] [--interval 5m]", summary: "an outside witness: keep the newest checkpoint seen, prove each new one extends it", network: true, setup: auditWatchCmd},
		{name: "audit verify", synopsis: "--export FILE --checkpoint FILE --key KEY [--old-checkpoint FILE]", summary: "check an exported audit log offline, with no server", setup: auditVerifyCmd},
		{name: "evidence verify", synopsis: "--file FILE --key KEY", summary: "check a complaint's evidence bundle offline", setup: evidenceVerifyCmd},
	}
}

func usage() string {
	var b strings.Builder
	b.WriteString("usage: vaultctl COMMAND [flags] [arguments]   (flags may come before or after arguments)\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-16s %s\n", c.name, c.summary)
	}
	b.WriteString(`
"vaultctl COMMAND --help" describes a command and its flags.

The server is --server URL or VAULTCTL_SERVER (else the one "login" used);
the session token is VAULTCTL_TOKEN, else the one "login" kept in
` + "`" + `<config dir>/crvault/credentials.json` + "`" + ` (mode 0600).

`)
	b.WriteString(exitHelp)
	return b.String()
}

// run returns the exit status, so tests drive the real code path.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage())
		return exitUsage
	}
	if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(e.stdout, usage())
		return exitOK
	}
	var cmd *command
	rest := args
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			if cmd == nil || len(strings.Fields(cmd.name)) < len(words) {
				c := c
				cmd, rest = &c, args[len(words):]
			}
		}
	}
	if cmd == nil {
		fmt.Fprintf(e.stderr, "vaultctl: unknown command %q\n\n%s", strings.Join(args[:min(2, len(args))], " "), usage())
		return exitUsage
	}
	fs := flag.NewFlagSet("vaultctl "+cmd.name, flag.ContinueOnError)
	// A bad flag is reported in one line like any error; the usage is
	// for --help.
	fs.SetOutput(io.Discard)
	var net *netFlags
	if cmd.network {
		net = registerNetFlags(fs, e)
	}
	runFn := cmd.setup(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vaultctl %s %s\n\n%s.\n\nflags (before or after the arguments):\n", cmd.name, cmd.synopsis, capitalise(cmd.summary))
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\n%s", exitHelp)
	}
	pos, err := parseFlags(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(e.stdout)
		fs.Usage()
		return exitOK
	}
	if err != nil {
		return report(e, cmd.name, usageError{err.Error()})
	}
	if net != nil {
		ctx = withNet(ctx, net)
	}
	return report(e, cmd.name, runFn(ctx, e, pos))
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// parseFlags parses flags wherever they appear among the arguments (Go's
// flag package stops at the first argument) and returns the arguments in
// order. After "--" everything is an argument. A lone "-" (standard input)
// is an argument.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
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

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// localError is a local file or terminal that cannot be used.
type localError struct{ err error }

func (l localError) Error() string { return l.err.Error() }
func (l localError) Unwrap() error { return l.err }

// verifyError is a verification that did not hold.
type verifyError struct{ msg string }

func (v verifyError) Error() string { return v.msg }

// report prints err as one line and turns it into the exit status.
func report(e *env, name string, err error) int {
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	msg := oneLine(err.Error())
	switch code {
	case exitFail:
		fmt.Fprintf(e.stdout, "FAIL: %s\n", msg)
	case exitUsage:
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(e.stderr, "vaultctl %s: %s (see \"vaultctl %s --help\")\n", name, msg, name)
			break
		}
		fmt.Fprintf(e.stderr, "vaultctl %s: %s\n", name, msg)
	default:
		fmt.Fprintf(e.stderr, "vaultctl %s: %s\n", name, msg)
	}
	return code
}

func exitCode(err error) int {
	var ue usageError
	var le localError
	var ve verifyError
	var ae *apiError
	switch {
	case errors.As(err, &ve):
		return exitFail
	case errors.As(err, &ae):
		return ae.exitCode()
	case errors.As(err, &ue), errors.As(err, &le):
		return exitUsage
	case errors.Is(err, errNotSignedIn):
		return exitAuth
	}
	// Anything else failed on the way to or from the server.
	return exitServer
}
