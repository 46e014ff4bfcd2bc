package main

import (
	htmlstd "html"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestWebSpeaksTheCasesEdition: what a Chinese-speaking party and office
// read on the pages. A case page names the edition and type of its case and
// cites that edition's articles (a case filed today follows the 2021
// edition); the written notices are listed by their Chinese titles; a
// listing abroad is filed from the new-case form without scripts, and its
// refused submission names the materials it lacks.
func TestWebSpeaksTheCasesEdition(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	zh := map[string]string{"Accept-Language": "zh-CN"}
	get := func(tok, path string) string {
		t.Helper()
		st, page, _ := cookieClient{t: t, base: s.base, token: tok}.do("GET", path, "", "", zh)
		if st != 200 {
			t.Fatalf("GET %s: %d %s", path, st, tail(page, 1500))
		}
		return htmlstd.UnescapeString(page)
	}
	post := func(tok, path string, v url.Values) (int, string, string) {
		t.Helper()
		c := cookieClient{t: t, base: s.base, token: tok}
		v.Set("csrf", pageCSRF(t, c))
		st, page, hd := c.do("POST", path, v.Encode(), "application/x-www-form-urlencoded", zh)
		return st, htmlstd.UnescapeString(page), hd.Get("Location")
	}
	has := func(what, page string, want ...string) {
		t.Helper()
		for _, s := range want {
			if !strings.Contains(page, s) {
				t.Errorf("%s lacks %q: %s", what, s, tail(page, 4000))
			}
		}
	}

	t.Run("case page and notices", func(t *testing.T) {
		caseID, _ := w.newCase(t, "words")
		w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
		w.office.expect(200, "POST", "/cases/"+caseID+"/transitions", map[string]any{"action": "require_review"})
		page := get(w.op.token, "/cases/"+caseID)
		has("the case page", page, "《网络安全审查办法》（2021年", `<dd id="case-type">采购网络产品和服务</dd>`, "初步审查（第十一条）", ">启动审查通知（")
		if strings.Contains(page, "第十条") {
			t.Errorf("the case page of a 2021 case cites the 2020 edition's article: %s", tail(page, 4000))
		}
	})

	t.Run("listing abroad", func(t *testing.T) {
		form := get(w.op.token, "/cases/new")
		has("the new-case form", form, `name="type" value="listing_abroad"`, `name="listing_venue"`, `name="users_with_personal_info"`, "100万")
		st, page, loc := post(w.op.token, "/cases", url.Values{"title": {"境外上市"}, "product": {"App"}, "type": {"listing_abroad"},
			"listing_venue": {"纽约证券交易所"}, "users_with_personal_info": {"x"}})
		if st != 422 || !strings.Contains(page, msg(t, "zh-CN", "case.bad_users")) || !strings.Contains(page, `value="纽约证券交易所"`) {
			t.Fatalf("a user count that is no number: %d %s", st, tail(page, 2000))
		}
		st, page, loc = post(w.op.token, "/cases", url.Values{"title": {"境外上市"}, "product": {"App"}, "type": {"listing_abroad"},
			"listing_venue": {"纽约证券交易所"}, "users_with_personal_info": {"1200000"}})
		m := regexp.MustCompile(`^/cases/([0-9a-z]+)\?`).FindStringSubmatch(loc)
		if st != 303 || m == nil {
			t.Fatalf("filing a listing abroad: %d %s %s", st, loc, tail(page, 2000))
		}
		caseID := m[1]
		page = get(w.op.token, "/cases/"+caseID)
		has("the listing case's page", page, `<dd id="case-type">赴国外上市</dd>`, "纽约证券交易所", "120万", "提交时确定",
			"上市申请文件（或采购文件、协议、合同）（第八条）")
		if r := w.op.uploadRaw(caseID, "declaration", "申报书.txt", "text/plain", []byte("申报")); r.Status != 201 {
			t.Fatalf("upload: %d %s", r.Status, r.Body)
		}
		st, page, _ = post(w.op.token, "/cases/"+caseID+"/submit", url.Values{})
		if st != 422 {
			t.Fatalf("submit without materials: %d %s", st, tail(page, 2000))
		}
		has("the refused submission", page, "还需上传国家安全影响分析报告和上市申请文件（或采购文件、协议、合同）（第八条）")
		if strings.Contains(page, "申报书、") || strings.Contains(page, "第七条") {
			t.Errorf("the refused submission names what is there, or the 2020 article: %s", tail(page, 2000))
		}
	})

	t.Run("member units", func(t *testing.T) {
		caseID, _ := w.newCase(t, "members")
		w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
		w.office.expect(200, "POST", "/cases/"+caseID+"/transitions", map[string]any{"action": "require_review"})
		for _, a := range []struct {
			c    *client
			role string
		}{{w.rev1, "reviewer"}, {w.mu, "member_unit"}} {
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": a.c.id, "role": a.role, "purpose": "审查"})
			a.c.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "无"})
		}
		if r := w.rev1.uploadRaw(caseID, "recommendation", "建议.txt", "text/plain", []byte("建议通过")); r.Status != 201 {
			t.Fatalf("recommendation: %d %s", r.Status, r.Body)
		}
		st, page, _ := post(w.office.token, "/cases/"+caseID+"/transitions", url.Values{"action": {"recommend"}})
		if st < 400 {
			t.Fatalf("recommend to an unregistered unit: %d", st)
		}
		has("the refused recommendation", page, "尚未登记为本案适用的2021年版", "（第十二条）", "Ministry Unit", `<a href="/member-units" id="error-fix">`)
		var org struct {
			Org string `json:"org"`
		}
		w.mu.expect(200, "GET", "/me", nil).json(t, &org)
		w.office.expect(201, "POST", "/member-units", map[string]any{"org": org.Org, "unit": "miit"})
		page = get(w.office.token, "/member-units")
		has("the member units page", page, "工业和信息化部 <code>miit</code>")
		if strings.Contains(page, "Ministry of Industry") {
			t.Errorf("the Chinese member units page names units in English: %s", tail(page, 3000))
		}
	})
}

// msgPrefix is a message's text up to its first placeholder: what a page
// shows of it whatever the placeholders become.
func msgPrefix(t *testing.T, lang, id string) string {
	t.Helper()
	return strings.SplitN(msg(t, lang, id), "{{", 2)[0]
}
