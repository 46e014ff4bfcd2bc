package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

//go:embed locales/*.json
var localeFS embed.FS

// Languages the application speaks, Chinese first: it is the default for a
// browser that asks for neither.
var languages = []language.Tag{language.MustParse("zh-CN"), language.English}

var matcher = language.NewMatcher(languages)

// shanghai is where every date and time is shown (API.md: deadlines are
// dates in Asia/Shanghai). A fixed zone when tzdata is missing keeps the
// display right: China has had no daylight saving time since 1991.
var shanghai = func() *time.Location {
	if l, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return l
	}
	return time.FixedZone("CST", 8*3600)
}()

// catalogue holds the messages of every language, parsed once.
type catalogue struct {
	bundle *i18n.Bundle
	keys   map[string]map[string]bool // language -> message ids
}

func loadCatalogue() (*catalogue, error) {
	b := i18n.NewBundle(languages[0])
	b.RegisterUnmarshalFunc("json", json.Unmarshal)
	c := &catalogue{bundle: b, keys: map[string]map[string]bool{}}
	for _, tag := range languages {
		name := "locales/" + tag.String() + ".json"
		data, err := fs.ReadFile(localeFS, name)
		if err != nil {
			return nil, err
		}
		mf, err := b.ParseMessageFileBytes(data, name)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		ids := map[string]bool{}
		for _, m := range mf.Messages {
			ids[m.ID] = true
		}
		c.keys[tag.String()] = ids
	}
	return c, nil
}

// pick chooses the language: an explicit choice (the account's, else the
// cookie's) wins over Accept-Language.
func pick(chosen string, r *http.Request) language.Tag {
	if t, ok := supported(chosen); ok {
		return t
	}
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if len(tags) == 0 {
		return languages[0]
	}
	_, i, conf := matcher.Match(tags...)
	if conf == language.No {
		return languages[0]
	}
	return languages[i]
}

// supported maps a stored or submitted language code to one we speak.
func supported(code string) (language.Tag, bool) {
	for _, t := range languages {
		if strings.EqualFold(code, t.String()) {
			return t, true
		}
	}
	return language.Tag{}, false
}

// Locale speaks one language for one request: messages, dates and numbers.
type Locale struct {
	tag language.Tag
	loc *i18n.Localizer
}

func (c *catalogue) locale(tag language.Tag) *Locale {
	return &Locale{tag: tag, loc: i18n.NewLocalizer(c.bundle, tag.String())}
}

// Lang is the BCP 47 code of the page (for <html lang>).
func (l *Locale) Lang() string { return l.tag.String() }

// T translates a message id. Arguments come in name, value pairs for the
// message's template ({{.Name}}). A missing id shows itself, so it is seen;
// TestCataloguesComplete keeps that from shipping.
func (l *Locale) T(id string, args ...any) string {
	var data map[string]any
	if len(args) > 0 {
		data = make(map[string]any, len(args)/2)
		for i := 0; i+1 < len(args); i += 2 {
			data[fmt.Sprint(args[i])] = args[i+1]
		}
	}
	s, err := l.loc.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data})
	if err != nil {
		return id
	}
	return s
}

// N translates a message with plural forms, chosen by n (also {{.Count}}).
func (l *Locale) N(id string, n int, args ...any) string {
	data := map[string]any{"Count": n}
	for i := 0; i+1 < len(args); i += 2 {
		data[fmt.Sprint(args[i])] = args[i+1]
	}
	s, err := l.loc.Localize(&i18n.LocalizeConfig{MessageID: id, PluralCount: n, TemplateData: data})
	if err != nil {
		return id
	}
	return s
}

// Enum translates a domain value (a status, kind or role) under its group:
// Enum "status" "draft" is the message "status.draft".
func (l *Locale) Enum(group string, v any) string {
	s := fmt.Sprint(v)
	if s == "" {
		return ""
	}
	return l.T(group + "." + s)
}

// AuditAction names an audit action in words when the catalogue has it
// (audit_action.material.read), else by its code: actions of the account
// and system families are shown as they are.
func (l *Locale) AuditAction(code string) string {
	id := "audit_action." + code
	if s := l.T(id); s != id {
		return s
	}
	return code
}

// Time shows an instant in Asia/Shanghai, to the minute.
func (l *Locale) Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(shanghai)
	if l.tag == languages[0] {
		return t.Format("2006年1月2日 15:04")
	}
	return t.Format("2 Jan 2006 15:04")
}

// ISOTime is the machine-readable form for <time datetime>.
func (l *Locale) ISOTime(t time.Time) string { return t.In(shanghai).Format(time.RFC3339) }

// Date shows a calendar date (already a day in Asia/Shanghai), given as
// YYYY-MM-DD or anything with a String method giving that.
func (l *Locale) Date(v any) string {
	s := fmt.Sprint(v)
	d, err := time.Parse("2006-01-02", s)
	if err != nil {
		return s
	}
	if l.tag == languages[0] {
		return d.Format("2006年1月2日")
	}
	return d.Format("2 Jan 2006")
}

// Ends shows when something that ends at a moment (an assignment's
// access) ends: as a day, with "by 24:00", when it ends with a day in
// Beijing time (as the assignment form sets it), else to the minute.
func (l *Locale) Ends(t time.Time) string {
	if s := t.In(shanghai); s.Hour() == 23 && s.Minute() == 59 && s.Second() == 59 {
		return l.Date(s.Format("2006-01-02")) + " " + l.T("time.due_end")
	}
	return l.Time(t)
}

// Size shows a byte count for people.
func (l *Locale) Size(n int64) string {
	const unit = 1024
	if n < unit {
		return l.T("size.bytes", "N", n)
	}
	f, u := float64(n), 0
	for f >= unit && u < 4 {
		f /= unit
		u++
	}
	return fmt.Sprintf("%.1f %s", f, []string{"B", "KiB", "MiB", "GiB", "TiB"}[u])
}

// has reports whether every language has message id.
func (c *catalogue) has(id string) bool {
	for _, ids := range c.keys {
		if !ids[id] {
			return false
		}
	}
	return true
}
