package vault

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// The written notices go to Chinese parties: each is written in Chinese
// first, citing the edition's Chinese title and articles (第十五条), and in
// English after it for the record. These tables hold the Chinese wording;
// the pages' catalogues name the same things for the screen.

// noticeKinds are the kinds of written notice, by the key that names them
// (a notice's action, special_review for the disagreement that starts the
// special review, proposal for a member unit's proposal), with the Chinese
// title that names their files.
var noticeKinds = map[string]string{
	string(review.RequireReview):      "启动审查通知",
	string(review.NotRequiredAction):  "无需审查通知",
	string(review.MarkIncomplete):     "材料补正通知",
	string(review.Extend):             "延长初步审查通知",
	string(review.RequestSupplement):  "要求补充材料通知",
	string(review.SupplementReceived): "补充材料收齐通知",
	"special_review":                  "进入特别审查程序通知",
	string(review.ExtendSpecial):      "延长特别审查通知",
	string(review.RecordMeasures):     "风险防范和化解措施通知",
	string(review.Recommend):          "审查结论建议通知",
	string(review.Conclude):           "审查结论通知",
	"proposal":                        "成员单位提议审查通知",
}

// NoticeKinds are the keys of every kind of written notice, for the pages'
// catalogues to name each.
func NoticeKinds() []string {
	out := make([]string, 0, len(noticeKinds))
	for k := range noticeKinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// NoticeKind tells, from a notice's file name, which kind of written notice
// it is (a key of the pages' notice titles) and the day it was decided
// (YYYY-MM-DD, "" when the name carries none): for the notices list to name
// each in the reader's language. It reads the Chinese names written now and
// the English ones (notice-<key>-<date>.txt) written before.
func NoticeKind(filename string) (key, on string, ok bool) {
	name := strings.TrimSuffix(path.Base(filename), ".txt")
	if rest, found := strings.CutPrefix(name, "notice-"); found {
		if rest, found := strings.CutPrefix(rest, "proposal-"); found && rest != "" {
			return "proposal", "", true
		}
		if len(rest) > 11 && rest[len(rest)-11] == '-' {
			if _, err := calendar.ParseDate(rest[len(rest)-10:]); err == nil {
				key = rest[:len(rest)-11]
				if _, known := noticeKinds[key]; known {
					return key, rest[len(rest)-10:], true
				}
			}
		}
		return "", "", false
	}
	for k, title := range noticeKinds {
		rest, found := strings.CutPrefix(name, title)
		if !found {
			continue
		}
		if rest == "" {
			return k, "", true
		}
		if len(rest) == 11 && rest[0] == '-' {
			if _, err := calendar.ParseDate(rest[1:]); err == nil {
				return k, rest[1:], true
			}
		}
		if strings.HasPrefix(rest, "-") && k == "proposal" {
			return k, "", true
		}
	}
	return "", "", false
}

// noticeFilename names the notice of action a decided on day on, in
// Chinese: 要求补充材料通知-2026-12-02.txt.
func noticeFilename(a review.Action, on calendar.Date) string {
	return fmt.Sprintf("%s-%s.txt", noticeKinds[noticeKey(a)], on)
}

// noticeKey is the kind of notice action a gives.
func noticeKey(a review.Action) string {
	if a == review.Opinion || a == review.RecordOpinion {
		return "special_review"
	}
	return string(a)
}

// zhDecision is what the notice of ev says, in Chinese; "" when the event
// gives no notice (as noticeOf).
func zhDecision(ev review.Event) string {
	switch {
	case ev.Action == review.Conclude:
		return "网络安全审查已经结束。"
	case ev.Action == review.Recommend && ev.From == review.UnderReview:
		return "初步审查已形成审查结论建议，现送成员单位征求意见。"
	case ev.Action == review.SupplementReceived && ev.Role != review.RoleOfficeAdmin:
		return "所要求的补充材料已全部收到，审查期限自次日起恢复计算。"
	}
	return map[review.Action]string{
		review.RequireReview:      "该申报需要进行网络安全审查，初步审查已经开始。",
		review.NotRequiredAction:  "该申报无需进行网络安全审查。",
		review.MarkIncomplete:     "申报材料不齐全。决定是否需要审查的期限，自下列材料补齐之日起计算。",
		review.Extend:             "因情况复杂，初步审查期限予以延长。",
		review.RequestSupplement:  "请补充提供下列材料。补充材料的时间不计入审查时间：审查期限自本通知次日起暂停计算，至收到最后一项材料时止。",
		review.SupplementReceived: "补充材料要求已结束，审查期限自次日起恢复计算。",
		review.Opinion:            "成员单位对审查结论建议的意见不一致，本案进入特别审查程序。",
		review.RecordOpinion:      "成员单位对审查结论建议的意见不一致，本案进入特别审查程序。",
		review.ExtendSpecial:      "因情况复杂，特别审查程序期限予以延长。",
		review.RecordMeasures:     "审查期间，当事人应当采取下列风险防范和化解措施，并报告落实情况。",
	}[ev.Action]
}

var zhStatus = map[review.Status]string{
	review.Draft: "草稿", review.Submitted: "已提交", review.NotRequired: "无需审查", review.UnderReview: "审查中",
	review.AwaitingSupplement: "待补充材料", review.SolicitingOpinions: "征求意见中", review.SpecialReview: "特别审查",
	review.Concluded: "已结束",
}

var zhPhase = map[review.Phase]string{
	review.PhaseDetermination: "决定是否审查", review.PhasePreliminary: "初步审查", review.PhaseOpinions: "成员单位意见",
	review.PhaseSpecial: "特别审查",
}

var zhOutcome = map[string]string{
	review.OutcomePassed: "通过", review.OutcomeNotPassed: "不通过", review.OutcomePassedWithConditions: "附条件通过",
}

var zhSubject = map[string]string{"product": "产品", "service": "服务", "data_processing": "数据处理活动"}

// zhDate writes a day as Chinese texts do: 2026年12月2日.
func zhDate(d calendar.Date) string { return fmt.Sprintf("%d年%d月%d日", d.Y, int(d.M), d.D) }

// zhArts cites provisions of ed in Chinese: 第十二条、第十三条.
func zhArts(ed *review.Edition, basis []review.Article) string {
	arts := make([]string, 0, len(basis))
	for _, a := range basis {
		if s := ed.ArtZh(a); s != "" {
			arts = append(arts, s)
		}
	}
	return strings.Join(arts, "、")
}

// englishFollows separates a notice's Chinese text from its English one.
const englishFollows = "\n——————————\nEnglish version (for reference)\n\n"
