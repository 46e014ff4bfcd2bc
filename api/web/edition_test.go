package web

import (
	"encoding/json"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/review"
)

// TestCataloguesCiteNoArticle: no message spells an article number of its
// own; the numbers differ between the editions, so they come from the
// edition tables ({{.Art.name}}, Locale.Art).
func TestCataloguesCiteNoArticle(t *testing.T) {
	fixed := regexp.MustCompile(`第[一二三四五六七八九十]+[条、]|Art\. ?\d`)
	for _, tag := range languages {
		data, err := fs.ReadFile(localeFS, "locales/"+tag.String()+".json")
		if err != nil {
			t.Fatal(err)
		}
		var msgs map[string]json.RawMessage // plural messages are objects
		if err := json.Unmarshal(data, &msgs); err != nil {
			t.Fatal(err)
		}
		for id, raw := range msgs {
			if text := string(raw); fixed.MatchString(text) {
				t.Errorf("%s: %s cites a fixed article: %q", tag, id, text)
			}
		}
	}
}

// TestCasePageCitesItsEdition: a case page names the edition and type of
// its case and cites that edition's articles; a page about no case cites
// the edition in force.
func TestCasePageCitesItsEdition(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	users := int64(1_200_000)
	for _, tc := range []struct {
		cs            vault.Case
		phase         review.Phase
		want, wantNot []string
	}{
		{vault.Case{ID: "c1", Title: "T", Status: "under_review", Edition: "2021", Type: review.TypeListingAbroad, ListingVenue: "纽约证券交易所", UsersWithPersonalInfo: &users},
			review.PhasePreliminary, []string{"初步审查（第十一条）", "2021年", "第8号", "赴国外上市", "纽约证券交易所", "120万"}, []string{"第十条"}},
		{vault.Case{ID: "c2", Title: "T", Status: "special_review", Edition: "2020", Type: review.TypeProcurement},
			review.PhaseSpecial, []string{"特别审查（第十二、十三条）", "2020年", "第6号", "采购网络产品和服务"}, []string{"第十三、十四条"}},
		{vault.Case{ID: "c3", Title: "T", Status: "draft", Type: review.TypeProcurement},
			review.PhaseNone, []string{"提交时确定", "国家安全影响分析报告和采购文件、协议、合同（第八条）"}, []string{"第七条"}},
	} {
		L := cat.locale(languages[0])
		L.current = review.Edition2021
		p := &page{L: L.ForEdition(tc.cs.Edition), User: &access.User{DisplayName: "x"}, Roles: []string{"operator", "reviewer"},
			Data: caseView{Case: tc.cs, Clock: &review.Clock{Phase: tc.phase, AllowedWorkingDays: 30}, Kinds: vault.Kinds}}
		var b strings.Builder
		if err := e.views["case"].Execute(&b, p); err != nil {
			t.Fatalf("%s: %v", tc.cs.ID, err)
		}
		for _, want := range tc.want {
			if !strings.Contains(b.String(), want) {
				t.Errorf("%s: case page lacks %q", tc.cs.ID, want)
			}
		}
		for _, not := range tc.wantNot {
			if strings.Contains(b.String(), not) {
				t.Errorf("%s: case page cites %q", tc.cs.ID, not)
			}
		}
	}
	for ed, want := range map[*review.Edition]string{review.Edition2020: "2020年版《网络安全审查办法》第八条", review.Edition2021: "2021年版《网络安全审查办法》第九条"} {
		L := cat.locale(languages[0])
		L.current = ed
		if got := L.T("dashboard.intake"); !strings.Contains(got, want) {
			t.Errorf("intake under %s: %q, want %q", ed.ID, got, want)
		}
	}
	en := cat.locale(languages[1]).ForEdition("2021")
	if got := en.Phase(review.PhaseSpecial); got != "Special review (Art. 13, 14)" {
		t.Errorf("en special review: %q", got)
	}
}

// TestNewCaseFormOffersTheEditionsTypes: the new-case form offers the case
// types of the edition a submission today follows, with the listing
// details, and under the 2020 edition (procurement only) no choice at all.
func TestNewCaseFormOffersTheEditionsTypes(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	for ed, want := range map[*review.Edition]bool{review.Edition2020: false, review.Edition2021: true} {
		L := cat.locale(languages[0])
		L.current = ed
		p := &page{L: L, User: &access.User{DisplayName: "x"}, Roles: []string{"operator"}, Data: newCaseForm{}}
		var b strings.Builder
		if err := e.views["case_new"].Execute(&b, p); err != nil {
			t.Fatal(err)
		}
		html := b.String()
		if got := strings.Contains(html, `value="listing_abroad"`) && strings.Contains(html, `name="users_with_personal_info"`) &&
			strings.Contains(html, "100万") && strings.Contains(html, "第七条"); got != want {
			t.Errorf("%s: listing abroad offered %v, want %v", ed.ID, got, want)
		}
	}
	L := cat.locale(languages[0])
	if got := L.MaterialsMissing([]string{"impact_analysis", "listing_application"}); got != "国家安全影响分析报告和上市申请文件（或采购文件、协议、合同）" {
		t.Errorf("missing: %q", got)
	}
}
