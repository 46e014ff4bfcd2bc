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

	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
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
	// ed is the edition of the Measures the page is about (its case's),
	// nil on a page about no one case; current is the edition a case
	// submitted today follows. Messages cite articles from ed, else from
	// current (T's Art), never numbers of their own.
	ed, current *review.Edition
	arts        map[string]string // articles(), once per page
}

func (c *catalogue) locale(tag language.Tag) *Locale {
	return &Locale{tag: tag, loc: i18n.NewLocalizer(c.bundle, tag.String()), current: review.EditionOn(calendar.Today(time.Now()))}
}

// ForEdition is the locale citing the articles of edition id (a case's
// Edition); an unknown or empty id (a draft, not yet submitted) cites the
// edition a submission today follows.
func (l *Locale) ForEdition(id string) *Locale {
	out := *l
	out.ed, out.arts = nil, nil
	if ed, err := review.EditionByID(id); err == nil {
		out.ed = ed
	}
	return &out
}

// edition is the edition the page cites: its case's, else the current.
func (l *Locale) edition() *review.Edition {
	if l.ed != nil {
		return l.ed
	}
	return l.current
}

// articleNames name the provisions messages cite, as {{.Art.name}}.
var articleNames = map[string]review.Article{
	"commitments": review.ArtCommitments, "listing": review.ArtListing, "materials": review.ArtMaterials,
	"determination": review.ArtDetermination, "factors": review.ArtFactors, "preliminary": review.ArtPreliminary,
	"opinions": review.ArtOpinions, "special": review.ArtSpecial, "special_duration": review.ArtSpecialDuration,
	"supplements": review.ArtSupplements, "proposal": review.ArtProposal, "confidentiality": review.ArtConfidentiality,
	"complaints": review.ArtComplaints, "supervision": review.ArtSupervision, "state_secrets": review.ArtStateSecrets,
}

// Art cites provisions (articleNames) of the page's edition in this
// language: "第十三、十四条" or "Art. 13, 14".
func (l *Locale) Art(names ...string) string {
	ed := l.edition()
	var nos []string
	for _, n := range names {
		a, ok := articleNames[n]
		if !ok || ed.ArtNo(a) == 0 {
			continue
		}
		if l.tag == languages[0] {
			nos = append(nos, review.ZhNumber(ed.ArtNo(a)))
		} else {
			nos = append(nos, fmt.Sprint(ed.ArtNo(a)))
		}
	}
	switch {
	case len(nos) == 0:
		return ""
	case l.tag == languages[0]:
		return "第" + strings.Join(nos, "、") + "条"
	}
	return "Art. " + strings.Join(nos, ", ")
}

// Factors are the keys of the factors the page's edition weighs, in the
// article's order: the conclusion form asks a finding on each.
func (l *Locale) Factors() []string {
	fs := l.edition().Factors
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Key
	}
	return out
}

// Factor names a factor of the page's edition in words, with its item of
// the factors article: "（一）产品和服务使用后……" or "(1) risk of ...". An
// edition whose wording differs from the other's has a message of its own
// (factor.2020.other).
func (l *Locale) Factor(key string) string {
	f, ok := l.edition().Factor(key)
	if !ok {
		return key
	}
	text := l.T("factor." + l.edition().ID + "." + key)
	if text == "factor."+l.edition().ID+"."+key {
		text = l.T("factor." + key)
	}
	if l.tag == languages[0] {
		return "（" + review.ZhNumber(f.Item) + "）" + text
	}
	return fmt.Sprintf("(%d) %s", f.Item, text)
}

// EditionTitle names an edition of the Measures (its id) in this language.
func (l *Locale) EditionTitle(id string) string {
	ed, err := review.EditionByID(id)
	if err != nil {
		return id
	}
	if l.tag == languages[0] {
		return ed.TitleZh
	}
	return ed.Title
}

// CaseTypes are the types of case that may be filed today (the current
// edition's), for the new-case form.
func (l *Locale) CaseTypes() []string { return l.current.CaseTypes }

// ListingThreshold is the number of users above which a listing abroad
// must be filed, under the current edition.
func (l *Locale) ListingThreshold() int64 { return l.current.ListingThreshold }

// CurrentEdition is the id of the edition a case submitted today follows.
func (l *Locale) CurrentEdition() string { return l.current.ID }

// phaseArticles are the provisions each phase of the review runs under.
var phaseArticles = map[review.Phase][]string{
	review.PhaseDetermination: {"determination"},
	review.PhasePreliminary:   {"preliminary"},
	review.PhaseOpinions:      {"opinions"},
	review.PhaseSpecial:       {"special", "special_duration"},
}

// Phase names a phase of the review; on a case's page (ForEdition), with
// the article of the case's edition it runs under.
func (l *Locale) Phase(p review.Phase) string {
	name := l.Enum("phase", p)
	if l.ed == nil || len(phaseArticles[p]) == 0 {
		return name
	}
	return l.T("phase.with_article", "Phase", name, "Art", l.Art(phaseArticles[p]...))
}

// Lang is the BCP 47 code of the page (for <html lang>).
func (l *Locale) Lang() string { return l.tag.String() }

// T translates a message id. Arguments come in name, value pairs for the
// message's template ({{.Name}}). A missing id shows itself, so it is seen;
// TestCataloguesComplete keeps that from shipping. Every message may cite
// the page's edition: {{.Art.materials}} is its materials article, and
// {{.Edition}} its year.
func (l *Locale) T(id string, args ...any) string {
	data := make(map[string]any, len(args)/2+2)
	for i := 0; i+1 < len(args); i += 2 {
		data[fmt.Sprint(args[i])] = args[i+1]
	}
	if _, ok := data["Art"]; !ok {
		data["Art"] = l.articles()
	}
	if _, ok := data["Edition"]; !ok {
		data["Edition"] = l.edition().ID
	}
	s, err := l.loc.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data})
	if err != nil {
		return id
	}
	return s
}

// articles is every provision of articleNames, cited in the page's
// edition, for messages to pick from.
func (l *Locale) articles() map[string]string {
	if l.arts != nil {
		return l.arts
	}
	out := make(map[string]string, len(articleNames))
	for n := range articleNames {
		out[n] = l.Art(n)
	}
	l.arts = out
	return out
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

// SystemActor names in words an audit actor that is no account (the
// vault's own jobs "system", the server's command line "cli"), "" for
// any other: those are named from the accounts, or shown by their id.
func (l *Locale) SystemActor(actor string) string {
	id := "actor." + actor
	if s := l.T(id); s != id && actor != "" {
		return s
	}
	return ""
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

// NoticeTitle names a written notice by its file name (vault.NoticeKind)
// in this language, with the day it was decided: 要求补充材料通知（2026年12月2日）.
// A name it cannot read is shown as it is.
func (l *Locale) NoticeTitle(filename string) string {
	key, on, ok := vault.NoticeKind(filename)
	if !ok {
		return filename
	}
	title := l.T("notice_title." + key)
	if on == "" {
		return title
	}
	return l.T("notice_title.dated", "Title", title, "On", l.Date(on))
}

// MaterialsNeeded names, in this language, the materials the page's
// edition requires before a case of type caseType is submitted (the
// materials article): 申报书、国家安全影响分析报告和采购文件、协议、合同.
func (l *Locale) MaterialsNeeded(caseType string) string {
	kinds := []string{review.MaterialDeclaration, review.MaterialImpactAnalysis}
	return l.kindList(append(kinds, l.edition().Item3Kinds(caseType)[0]))
}

// MaterialsMissing names the kinds a refused submission still lacks (the
// problem's missing list). The listing application documents stand for
// the third item, which procurement documents satisfy as well.
func (l *Locale) MaterialsMissing(missing []string) string { return l.kindList(missing) }

// kindList names material kinds as a list in this language.
func (l *Locale) kindList(kinds []string) string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = l.Enum("kind", k)
		if k == review.MaterialListingApplication {
			names[i] = l.T("materials.either", "A", names[i], "B", l.Enum("kind", review.MaterialProcurement))
		}
	}
	return l.list(names)
}

// list joins names as a list in this language: A、B和C, or A, B and C.
func (l *Locale) list(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return l.T("list.and", "Items", strings.Join(names[:len(names)-1], l.T("list.sep")), "Last", names[len(names)-1])
}

// MemberName names a member unit of an edition's list (its code) in this
// language; name, as the service gave it, for any other.
func (l *Locale) MemberName(code, name string) string {
	for _, ed := range review.Editions() {
		if m, ok := ed.Member(code); ok {
			if l.tag == languages[0] {
				return m.Zh
			}
			return m.Name
		}
	}
	return name
}

// Count shows a count for people, in groups of digits (1,200,000) and,
// in Chinese, in 万 (120万) when it is a whole number of them.
func (l *Locale) Count(v any) string {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case *int64:
		if x == nil {
			return ""
		}
		n = *x
	case int:
		n = int64(x)
	default:
		return fmt.Sprint(v)
	}
	if l.tag == languages[0] && n >= 10000 && n%10000 == 0 {
		return fmt.Sprintf("%d万", n/10000)
	}
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
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
