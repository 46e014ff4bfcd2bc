package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

type sessionAnswer struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      struct {
		ID       string   `json:"id"`
		Username string   `json:"username"`
		Org      string   `json:"org"`
		Roles    []string `json:"roles"`
	} `json:"user"`
	TOTPEnrolmentRequired bool `json:"totp_enrolment_required"`
}

// lineReader reads answers to prompts, and --password-stdin's lines, from
// one buffer so that no input is lost between them.
type lineReader struct{ r *bufio.Reader }

func (l *lineReader) line() (string, error) {
	s, err := l.r.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || s == "") {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

func loginCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	username := fs.String("username", "", "account name (asked for when missing and standard input is a terminal)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input (the TOTP code, if needed, from the second)")
	totp := fs.String("totp", "", "TOTP code or recovery code, for accounts that need one (asked for when needed and standard input is a terminal)")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 0 {
			return usagef("login takes no arguments")
		}
		c, _, err := newClient(ctx, e, false)
		if err != nil {
			return err
		}
		in := &lineReader{r: bufio.NewReader(e.stdin)}
		interactive := e.isTerminal(e.stdin)
		ask := func(prompt string) (string, error) {
			if !interactive {
				return "", usagef("%s: standard input is not a terminal", strings.TrimSuffix(prompt, ": "))
			}
			fmt.Fprint(e.stderr, prompt)
			s, err := in.line()
			if err != nil {
				return "", localError{fmt.Errorf("read %s: %w", strings.TrimSuffix(prompt, ": "), err)}
			}
			return strings.TrimSpace(s), nil
		}
		if *username == "" {
			if *username, err = ask("Username: "); err != nil {
				return err
			}
		}
		var password string
		switch {
		case *pwStdin:
			if password, err = in.line(); err != nil {
				return localError{fmt.Errorf("read the password from standard input: %w", err)}
			}
		case interactive:
			fmt.Fprint(e.stderr, "Password: ")
			password, err = e.readPassword()
			fmt.Fprintln(e.stderr)
			if err != nil {
				return localError{fmt.Errorf("read the password: %w", err)}
			}
		default:
			return usagef("give the password with --password-stdin, or run login in a terminal")
		}
		req := map[string]string{"username": *username, "password": password}
		if *totp != "" {
			req["totp"] = *totp
		}
		var ans sessionAnswer
		_, err = c.do(ctx, "POST", "/sessions", req, &ans)
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == "totp_required" && *totp == "" {
			// The account needs a second factor: ask for it, once.
			code := ""
			if *pwStdin {
				code, err = in.line()
				if err != nil {
					return usagef("this account needs a TOTP code: give --totp CODE or a second line on standard input")
				}
			} else if code, err = ask("TOTP code (or a recovery code): "); err != nil {
				return err
			}
			req["totp"] = strings.TrimSpace(code)
			_, err = c.do(ctx, "POST", "/sessions", req, &ans)
		}
		if err != nil {
			return err
		}
		path, err := saveCredentials(e, credentials{Server: strings.TrimSuffix(c.api, "/api/v1"), Token: ans.Token, Username: ans.User.Username, ExpiresAt: ans.ExpiresAt})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "signed in as %s (%s) until %s; session kept in %s\n", oneLine(ans.User.Username), oneLine(strings.Join(ans.User.Roles, ", ")),
			ans.ExpiresAt.Local().Format(time.RFC3339), path)
		if ans.TOTPEnrolmentRequired {
			fmt.Fprintln(e.stderr, "note: this account must set up TOTP before it can do anything else; sign in to the web application to do so")
		}
		return nil
	}
}

func logoutCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 0 {
			return usagef("logout takes no arguments")
		}
		c, creds, err := newClient(ctx, e, true)
		if err != nil {
			return err
		}
		_, err = c.do(ctx, "DELETE", "/sessions/current", nil, nil)
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == 401 {
			err = nil // already over
		}
		if creds.Token != "" && c.token == creds.Token {
			p, perr := credentialsPath(e)
			if perr == nil {
				if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
					return localError{rerr}
				}
			}
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "signed out")
		return nil
	}
}

func whoamiCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	asJSON := fs.Bool("json", false, "print the account as JSON")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 0 {
			return usagef("whoami takes no arguments")
		}
		c, _, err := newClient(ctx, e, true)
		if err != nil {
			return err
		}
		var me map[string]any
		if _, err := c.do(ctx, "GET", "/me", nil, &me); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, me)
		}
		fmt.Fprintf(e.stdout, "%s (%s) of organisation %s, roles %s\n", oneLine(fmt.Sprint(me["username"])), oneLine(fmt.Sprint(me["id"])),
			oneLine(fmt.Sprint(me["org"])), oneLine(fmt.Sprint(me["roles"])))
		return nil
	}
}
