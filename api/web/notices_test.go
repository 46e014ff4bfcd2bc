package web

import (
	"strings"
	"testing"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault"
)

// TestNoticesListedByTitle: the case page lists the office's written
// notices by what they are and when, in the reader's language, whether
// their files carry the Chinese names written now or the English ones
// written before; every kind of notice has a title in both catalogues.
func TestNoticesListedByTitle(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	for _, k := range vault.NoticeKinds() {
		if !cat.has("notice_title." + k) {
			t.Errorf("notice kind %s has no title in a catalogue", k)
		}
	}
	notices := []vault.Material{{ID: "m1", Kind: "notice", Filename: "notice-request_supplement-2026-12-02.txt"},
		{ID: "m2", Kind: "notice", Filename: "审查结论通知-2027-01-04.txt"}}
	for tag, want := range map[string][]string{
		"zh-CN": {">要求补充材料通知（2026年12月2日）</a>", ">审查结论通知（2027年1月4日）</a>"},
		"en":    {">Notice: supplementary materials requested (2 Dec 2026)</a>", ">Notice: review conclusion (4 Jan 2027)</a>"},
	} {
		lt, _ := supported(tag)
		p := &page{L: cat.locale(lt), User: &access.User{DisplayName: "x"}, Roles: []string{"operator"},
			Data: caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "concluded", Edition: "2021"}, Notices: notices, Materials: notices}}
		var b strings.Builder
		if err := e.views["case"].Execute(&b, p); err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		for _, w := range want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: notices list lacks %q", tag, w)
			}
		}
	}
}
