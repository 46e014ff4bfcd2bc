// Command vaultd is the crvault server and its administration commands:
//
//	vaultd serve [--demo]
//	vaultd demo
//	vaultd org add --name NAME --kind KIND
//	vaultd user add --username U --org NAME --role ROLE [--role ROLE2] --password-stdin
//	vaultd audit verify | audit pubkey
//	vaultd calendar workdays-after DATE N | is-workday DATE | import FILE.json | status
//	vaultd keys rotate | rewrap | retire | status | recover
//	vaultd retention apply [--dry-run]
//	vaultd backup --out DIR | restore --from DIR
//
// Every subcommand takes the same configuration (flags, VAULT_* environment,
// --config FILE). main wires every piece by hand and closes them in reverse.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

func main() {
	if err := hardenProcess(); err != nil {
		// Defence in depth, not a precondition: say so, and go on.
		fmt.Fprintln(os.Stderr, "vaultd: warning: cannot keep memory out of core dumps:", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, getenv)
	stop()
	os.Exit(code)
}

// usageError is a mistake on the command line: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// errHelp: the user asked for a command's flags (-h, --help), which the
// flag package printed; exit 0.
var errHelp = errors.New("help requested")

// exitError carries a specific exit code with a message.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	err := dispatch(ctx, args, stdin, stdout, stderr, getenv)
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "vaultd:", err)
	var ue usageError
	var ee exitError
	switch {
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

const usage = `usage: vaultd <command> [flags]
  serve [--demo]                         run the server (--demo: fill an empty data directory first)
  demo                                   fill an empty data directory with sample accounts and a case
  org add --name NAME --kind KIND        create an organisation, print its id
  user add --username U --org NAME --role ROLE [--role R2] --password-stdin
  audit verify                           check the whole audit log
  audit pubkey                           print the checkpoint verifier key
  calendar workdays-after DATE N         date on which N working days after DATE are used up
  calendar is-workday DATE               exit 0 for a working day, 1 otherwise
  calendar import FILE.json              add a year to the working-day calendar
  calendar status                        official years, first provisional date, days covered ahead
  keys rotate [--limit N] [--key FILE]   new master key, rewrap every key to it (run again to continue)
  keys new [--out FILE]                  write a master key file to give every instance before keys rotate --key
  keys rewrap                            rewrap every key to the active master and escrow recipients
  keys retire [FINGERPRINT]              retire old masters no key is wrapped to any more
  keys status                            masters, their states and how many keys each wraps
  keys recover --escrow-identity FILE    disaster recovery: new master, every key rewrapped via escrow
  retention apply [--dry-run]            destroy the keys and blobs of cases past their retention
  backup --out DIR [--keys-out DIR]      consistent copy of database, blobs, keys and checkpoints
  restore --from DIR [--keys-from DIR]   restore a backup into an empty environment`

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return usageError{usage}
	}
	cmd := args[0]
	if isGroup(cmd) {
		if len(args) == 1 {
			return usageError{fmt.Sprintf("%s needs a command\n%s", cmd, groupUsage(cmd))}
		}
		if isHelp(args[1]) {
			fmt.Fprintln(stdout, groupUsage(cmd))
			return nil
		}
		cmd += " " + args[1]
		args = args[1:]
	}
	rest := args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, stdout, stderr, getenv)
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr, getenv)
	case "org add":
		return cmdOrgAdd(ctx, rest, stdout, stderr, getenv)
	case "user add":
		return cmdUserAdd(ctx, rest, stdin, stdout, stderr, getenv)
	case "audit verify":
		return cmdAuditVerify(ctx, rest, stdout, stderr, getenv)
	case "audit pubkey":
		return cmdAuditPubkey(ctx, rest, stdout, stderr, getenv)
	case "calendar workdays-after", "calendar is-workday", "calendar import", "calendar status":
		return cmdCalendar(ctx, cmd, rest, stdout, stderr, getenv)
	case "keys rotate", "keys rewrap", "keys retire", "keys status", "keys recover", "keys new":
		return cmdKeys(ctx, cmd, rest, stdout, stderr, getenv)
	case "backup":
		return cmdBackup(ctx, rest, stdout, stderr, getenv)
	case "restore":
		return cmdRestore(ctx, rest, stdout, stderr, getenv)
	case "retention apply":
		return cmdRetentionApply(ctx, rest, stdout, stderr, getenv)
	}
	if isHelp(cmd) {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	if group, _, ok := strings.Cut(cmd, " "); ok && isGroup(group) {
		return usageError{fmt.Sprintf("unknown command %q\n%s", cmd, groupUsage(group))}
	}
	return usageError{fmt.Sprintf("unknown command %q\n%s", cmd, usage)}
}

// groups are the commands that take a subcommand ("keys rotate").
var groups = []string{"org", "user", "audit", "calendar", "keys", "retention"}

func isGroup(cmd string) bool { return slices.Contains(groups, cmd) }

// isHelp: every way of asking for help the flag package accepts, and "help".
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// groupUsage is the part of usage about one group's commands: "vaultd keys
// -h" lists the keys commands, as "vaultd keys rotate -h" lists its flags.
func groupUsage(group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: vaultd %s <command> [flags]", group)
	for _, line := range strings.Split(usage, "\n")[1:] {
		if strings.HasPrefix(strings.TrimSpace(line), group+" ") {
			b.WriteString("\n" + line)
		}
	}
	fmt.Fprintf(&b, "\nvaultd %s <command> -h lists a command's flags", group)
	return b.String()
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// getenv is os.Getenv, except that VAULT_TOTP_REQUIRED_ROLES set to the empty
// string (which turns the TOTP requirement off) reads as "none", since the
// configuration cannot tell an empty variable from an unset one.
func getenv(key string) string {
	v, ok := os.LookupEnv(key)
	if ok && v == "" && key == "VAULT_TOTP_REQUIRED_ROLES" {
		return totpNone
	}
	return v
}
