package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/crvault/crvault/vault"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// pathID refuses what cannot be an id before it goes into a URL path.
func pathID(what, id string) (string, error) {
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "/?#% \t\n") {
		return "", usagef("%s %q is not an id", what, id)
	}
	return url.PathEscape(id), nil
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func casesListCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	status := fs.String("status", "", "only cases in this status (draft, submitted, under_review, ...)")
	asJSON := fs.Bool("json", false, "print the cases as JSON")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 0 {
			return usagef("cases list takes no arguments")
		}
		c, _, err := newClient(ctx, e, true)
		if err != nil {
			return err
		}
		var all []vault.Case
		cursor := ""
		for {
			q := url.Values{"limit": {"500"}}
			if *status != "" {
				q.Set("status", *status)
			}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			var p page[vault.Case]
			if _, err := c.do(ctx, "GET", "/cases?"+q.Encode(), nil, &p); err != nil {
				return err
			}
			all = append(all, p.Items...)
			if p.NextCursor == "" || len(p.Items) == 0 {
				break
			}
			cursor = p.NextCursor
		}
		if *asJSON {
			if all == nil {
				all = []vault.Case{}
			}
			return printJSON(e.stdout, all)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tTYPE\tCREATED\tTITLE")
		for _, cs := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", oneLine(cs.ID), oneLine(cs.Status), oneLine(cs.Type), cs.CreatedAt.Format(time.DateOnly), oneLine(cs.Title))
		}
		return tw.Flush()
	}
}

// oneLine keeps a server's text on one line of a table, and keeps it
// text, whatever the server sent: control characters (C0, DEL and C1, some
// of which a terminal obeys as escape sequences) and bidirectional
// formatting characters (which can make one name display as another) are
// dropped, and bytes that are not UTF-8 become U+FFFD.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case terminalControl(r):
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// terminalControl reports a character that is not text on a terminal: a
// control (C0, DEL, C1) or a bidirectional formatting character.
func terminalControl(r rune) bool {
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Bidi_Control, r)
}

func casesShowCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	asJSON := fs.Bool("json", false, "print the case and its materials as JSON")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usagef("cases show takes one CASE id")
		}
		id, err := pathID("case", args[0])
		if err != nil {
			return err
		}
		c, _, err := newClient(ctx, e, true)
		if err != nil {
			return err
		}
		var cs vault.Case
		if _, err := c.do(ctx, "GET", "/cases/"+id, nil, &cs); err != nil {
			return err
		}
		var mats page[vault.Material]
		if _, err := c.do(ctx, "GET", "/cases/"+id+"/materials", nil, &mats); err != nil {
			return err
		}
		if mats.Items == nil {
			mats.Items = []vault.Material{}
		}
		if *asJSON {
			return printJSON(e.stdout, map[string]any{"case": cs, "materials": mats.Items})
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "case\t%s\n", oneLine(cs.ID))
		fmt.Fprintf(tw, "title\t%s\n", oneLine(cs.Title))
		fmt.Fprintf(tw, "product\t%s\n", oneLine(cs.Product))
		fmt.Fprintf(tw, "status\t%s\n", oneLine(cs.Status))
		fmt.Fprintf(tw, "type\t%s\n", oneLine(cs.Type))
		if cs.Edition != "" {
			fmt.Fprintf(tw, "edition\t%s\n", oneLine(cs.Edition))
		}
		fmt.Fprintf(tw, "operator\t%s\n", oneLine(cs.OperatorOrg))
		fmt.Fprintf(tw, "providers\t%s\n", oneLine(strings.Join(cs.Providers, ", ")))
		fmt.Fprintf(tw, "created\t%s\n", cs.CreatedAt.Format(time.RFC3339))
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "\nmaterials (%d):\n", len(mats.Items))
		tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tVERSION\tSIZE\tUPLOADED\tFILENAME")
		for _, m := range mats.Items {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", oneLine(m.ID), oneLine(m.Kind), m.Version, m.Size, m.UploadedAt.Format(time.RFC3339), oneLine(m.Filename))
		}
		return tw.Flush()
	}
}

func casesCreateCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	title := fs.String("title", "", "what the review application is for")
	product := fs.String("product", "", "the network product or service procured")
	var providers stringList
	fs.Var(&providers, "provider", "id of a provider organisation (repeatable)")
	typ := fs.String("type", "", "procurement (default), or from the 2021 edition data_processing or listing_abroad")
	asJSON := fs.Bool("json", false, "print the new case as JSON instead of its id")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 0 {
			return usagef("cases create takes no arguments (use --title and --product)")
		}
		if *title == "" || *product == "" {
			return usagef("cases create needs --title and --product")
		}
		c, _, err := newClient(ctx, e, true)
		if err != nil {
			return err
		}
		req := vault.NewCase{Title: *title, Product: *product, Providers: providers, Type: *typ}
		if req.Providers == nil {
			req.Providers = []string{}
		}
		var cs vault.Case
		if _, err := c.do(ctx, "POST", "/cases", req, &cs); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, cs)
		}
		fmt.Fprintln(e.stdout, oneLine(cs.ID))
		return nil
	}
}

func casesSubmitCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	asJSON := fs.Bool("json", false, "print the submitted case as JSON")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usagef("cases submit takes one CASE id")
		}
		id, err := pathID("case", args[0])
		if err != nil {
			return err
		}
		c, _, err := newClient(ctx, e, true)
		if err != nil {
			return err
		}
		var cs vault.Case
		if _, err := c.do(ctx, "POST", "/cases/"+id+"/submit", nil, &cs); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, cs)
		}
		fmt.Fprintf(e.stdout, "%s %s (edition %s)\n", oneLine(cs.ID), oneLine(cs.Status), oneLine(cs.Edition))
		return nil
	}
}
