package review

import (
	"fmt"
	"slices"

	"github.com/crvault/crvault/vault/calendar"
)

// Edition is one edition of the Cybersecurity Review Measures: everything
// the workflow takes from the text. Every duration, article number, member
// list and case type the code uses comes from here; nothing else in crvault
// spells them out. A case is governed by the edition fixed at its submission
// (EditionOn), recorded in its submit event.
type Edition struct {
	ID      string        // "2020" or "2021"
	Title   string        // as cited in notices
	TitleZh string        // the same in Chinese, as the notices cite it first
	InForce calendar.Date // the first day cases are filed under it

	DeterminationDays int // working days to decide whether to review
	PreliminaryDays   int // preliminary review
	ExtensionDays     int // one extension of the preliminary review, when complex
	OpinionDays       int // member units' answer to a recommendation
	SpecialDays       int // special review procedure, extendable when complex

	// CaseTypes are the kinds of case that may be filed.
	CaseTypes []string
	// ListingThreshold: a listing abroad by a party holding personal
	// information of more users than this must be filed (0: no such rule).
	ListingThreshold int64
	// CompleteMaterials: the determination clock runs only from materials
	// that satisfy the materials article (mark_incomplete).
	CompleteMaterials bool
	// ProposalSubjects are what a member unit may propose for review.
	ProposalSubjects []string
	// RiskMeasures: during a review a member unit proposed, the party takes
	// the risk prevention and mitigation measures the review requires.
	RiskMeasures bool

	// Members are the member units of the review mechanism.
	Members []Member
	// Factors are the factors a review weighs, in the article's order.
	Factors []Factor

	art map[Article]string
}

// Member is a member unit of the review mechanism named by an edition.
type Member struct {
	Code string `json:"code"` // stable, e.g. "miit"
	Name string `json:"name"` // English
	Zh   string `json:"zh"`   // Chinese
}

// Factor is one factor a review weighs.
type Factor struct {
	Key  string `json:"factor"`
	Item int    `json:"item"` // the item of the factors article
	Text string `json:"text"`
}

// Article names a provision the workflow cites.
type Article int

// The provisions cited in notices and error texts.
const (
	ArtCommitments     Article = iota // providers' commitments
	ArtListing                        // mandatory filing before listing abroad
	ArtMaterials                      // application materials
	ArtDetermination                  // whether to review, 10 working days
	ArtFactors                        // factors weighed
	ArtPreliminary                    // preliminary review, recommendation
	ArtOpinions                       // member units' opinions
	ArtSpecial                        // special review procedure
	ArtSpecialDuration                // its duration
	ArtSupplements                    // supplementary materials
	ArtProposal                       // review proposed by a member unit
	ArtConfidentiality                // confidentiality of materials
	ArtComplaints                     // complaints about reviewers
	ArtSupervision                    // supervision, reports
	ArtStateSecrets                   // state secrets
)

// Case types.
const (
	TypeProcurement    = "procurement"
	TypeDataProcessing = "data_processing"
	TypeListingAbroad  = "listing_abroad"
)

// DepartmentMember is the code of a member that is not on an edition's list:
// a CII protection department (2020) or relevant department (2021)
// registered by the office. Such members serve under every edition.
const DepartmentMember = "department"

var members2020 = []Member{
	{"cac", "Cyberspace Administration of China", "国家互联网信息办公室"},
	{"ndrc", "National Development and Reform Commission", "国家发展和改革委员会"},
	{"miit", "Ministry of Industry and Information Technology", "工业和信息化部"},
	{"mps", "Ministry of Public Security", "公安部"},
	{"mss", "Ministry of State Security", "国家安全部"},
	{"mof", "Ministry of Finance", "财政部"},
	{"mofcom", "Ministry of Commerce", "商务部"},
	{"pboc", "People's Bank of China", "中国人民银行"},
	{"samr", "State Administration for Market Regulation", "国家市场监督管理总局"},
	{"nrta", "National Radio and Television Administration", "国家广播电视总局"},
	{"nassp", "National Administration of State Secrets Protection", "国家保密局"},
	{"sca", "State Cryptography Administration", "国家密码管理局"},
}

var factors2020 = []Factor{
	{"illegal_control", 1, "risk of the CII being illegally controlled, interfered with or damaged, and of important data being stolen, leaked or damaged, after the products and services are used"},
	{"supply_interruption", 2, "harm to the CII's business continuity from an interruption of the supply of the products and services"},
	{"supply_chain_security", 3, "security, openness, transparency and diversity of sources of the products and services, reliability of supply channels, and risk of supply interruption for political, diplomatic or trade reasons"},
	{"provider_compliance", 4, "the provider's compliance with Chinese laws, administrative regulations and departmental rules"},
	{"other", 5, "other factors that may endanger the security of CII and national security"},
}

var factors2021 = []Factor{
	{"illegal_control", 1, "risk of the CII being illegally controlled, interfered with or damaged after the products and services are used"},
	{"supply_interruption", 2, "harm to the CII's business continuity from an interruption of the supply of the products and services"},
	{"supply_chain_security", 3, "security, openness, transparency and diversity of sources of the products and services, reliability of supply channels, and risk of supply interruption for political, diplomatic or trade reasons"},
	{"provider_compliance", 4, "the provider's compliance with Chinese laws, administrative regulations and departmental rules"},
	{"data_security", 5, "risk of core data, important data or large amounts of personal information being stolen, leaked, destroyed, illegally used or illegally transferred abroad"},
	{"listing_foreign_influence", 6, "risk of CII, core data, important data or large amounts of personal information being influenced, controlled or maliciously used by a foreign government after a listing, and network information security risk"},
	{"other", 7, "other factors that may endanger the security of CII, cybersecurity and data security"},
}

// Edition2020 is CAC Order No. 6 (2020-04-13), in force 2020-06-01 to
// 2022-02-14.
var Edition2020 = &Edition{
	ID: "2020", Title: "Cybersecurity Review Measures (2020, CAC and 11 departments, Order No. 6)",
	TitleZh:           "《网络安全审查办法》（2020年，国家互联网信息办公室等12部门令第6号）",
	InForce:           calendar.Date{Y: 2020, M: 6, D: 1},
	DeterminationDays: 10, PreliminaryDays: 30, ExtensionDays: 15, OpinionDays: 15, SpecialDays: 45,
	CaseTypes:        []string{TypeProcurement},
	ProposalSubjects: []string{"product", "service"},
	Members:          members2020,
	Factors:          factors2020,
	art: map[Article]string{
		ArtCommitments: "Art. 6", ArtMaterials: "Art. 7", ArtDetermination: "Art. 8", ArtFactors: "Art. 9",
		ArtPreliminary: "Art. 10", ArtOpinions: "Art. 11", ArtSpecial: "Art. 12", ArtSpecialDuration: "Art. 13",
		ArtSupplements: "Art. 14", ArtProposal: "Art. 15", ArtConfidentiality: "Art. 16", ArtComplaints: "Art. 17",
		ArtSupervision: "Art. 18", ArtStateSecrets: "Art. 21",
	},
}

// Edition2021 is CAC Order No. 8 (2021-12-28), in force from 2022-02-15.
var Edition2021 = &Edition{
	ID: "2021", Title: "Cybersecurity Review Measures (2021, CAC and 12 departments, Order No. 8)",
	TitleZh:           "《网络安全审查办法》（2021年，国家互联网信息办公室等13部门令第8号）",
	InForce:           calendar.Date{Y: 2022, M: 2, D: 15},
	DeterminationDays: 10, PreliminaryDays: 30, ExtensionDays: 15, OpinionDays: 15, SpecialDays: 90,
	CaseTypes:         []string{TypeProcurement, TypeDataProcessing, TypeListingAbroad},
	ListingThreshold:  1_000_000,
	CompleteMaterials: true,
	ProposalSubjects:  []string{"product", "service", "data_processing"},
	RiskMeasures:      true,
	Members: append(slices.Clone(members2020[:10]),
		Member{"csrc", "China Securities Regulatory Commission", "中国证券监督管理委员会"},
		members2020[10], members2020[11]),
	Factors: factors2021,
	art: map[Article]string{
		ArtCommitments: "Art. 6", ArtListing: "Art. 7", ArtMaterials: "Art. 8", ArtDetermination: "Art. 9",
		ArtFactors: "Art. 10", ArtPreliminary: "Art. 11", ArtOpinions: "Art. 12", ArtSpecial: "Art. 13",
		ArtSpecialDuration: "Art. 14", ArtSupplements: "Art. 15", ArtProposal: "Art. 16", ArtConfidentiality: "Art. 17",
		ArtComplaints: "Art. 18", ArtSupervision: "Art. 19", ArtStateSecrets: "Art. 22",
	},
}

// Editions lists every edition, oldest first.
func Editions() []*Edition { return []*Edition{Edition2020, Edition2021} }

// EditionByID returns the edition with that id ("2020", "2021").
func EditionByID(id string) (*Edition, error) {
	for _, e := range Editions() {
		if e.ID == id {
			return e, nil
		}
	}
	return nil, fmt.Errorf("%w: %q (want 2020 or 2021)", ErrUnknownEdition, clip(id))
}

// EditionOn is the edition in force on day d: the newest whose InForce is
// not after d. Before 2020-06-01 the 2020 edition is the closest rule set.
func EditionOn(d calendar.Date) *Edition {
	out := Edition2020
	for _, e := range Editions() {
		if !d.Before(e.InForce) {
			out = e
		}
	}
	return out
}

// Art is the article that provision a has in this edition, e.g. "Art. 9".
// A provision the edition does not have (ArtListing in 2020) is "".
func (e *Edition) Art(a Article) string { return e.art[a] }

// ArtNo is the number of the article that provision a has in this edition,
// 0 when it has none.
func (e *Edition) ArtNo(a Article) int {
	var n int
	if _, err := fmt.Sscanf(e.art[a], "Art. %d", &n); err != nil {
		return 0
	}
	return n
}

// ArtZh is the article that provision a has in this edition as Chinese
// texts cite it, e.g. "第九条"; "" when it has none.
func (e *Edition) ArtZh(a Article) string {
	n := e.ArtNo(a)
	if n == 0 {
		return ""
	}
	return "第" + ZhNumber(n) + "条"
}

// ZhNumber writes 1 to 99 in Chinese numerals as article and item numbers
// are written (十五, 二十二); other numbers in digits.
func ZhNumber(n int) string {
	digits := []string{"", "一", "二", "三", "四", "五", "六", "七", "八", "九"}
	switch {
	case n >= 1 && n <= 9:
		return digits[n]
	case n >= 10 && n <= 19:
		return "十" + digits[n%10]
	case n >= 20 && n <= 99:
		return digits[n/10] + "十" + digits[n%10]
	}
	return fmt.Sprint(n)
}

// Cite is "Art. N of the Cybersecurity Review Measures (YEAR)".
func (e *Edition) Cite(a Article) string {
	return fmt.Sprintf("%s of the Cybersecurity Review Measures (%s)", e.Art(a), e.ID)
}

// HasCaseType reports whether cases of type t may be filed under e.
func (e *Edition) HasCaseType(t string) bool { return slices.Contains(e.CaseTypes, t) }

// Member returns the member with that code, if the edition lists it.
func (e *Edition) Member(code string) (Member, bool) {
	for _, m := range e.Members {
		if m.Code == code {
			return m, true
		}
	}
	return Member{}, false
}

// Factor returns the factor with that key, if the edition weighs it.
func (e *Edition) Factor(key string) (Factor, bool) {
	for _, f := range e.Factors {
		if f.Key == key {
			return f, true
		}
	}
	return Factor{}, false
}

// MandatoryFiling reports whether a case must be reviewed whatever the
// office thinks: a listing abroad by a party holding personal information of
// more than ListingThreshold users (2021 Art. 7).
func (e *Edition) MandatoryFiling(c CaseInfo) bool {
	return e.ListingThreshold > 0 && c.Type == TypeListingAbroad && c.UsersWithPersonalInfo > e.ListingThreshold
}

// Item3Kinds are the material kinds that satisfy the third item of the
// materials article for a case of type t: procurement documents, and for a
// listing abroad also the listing application documents (2021 Art. 8(3)).
func (e *Edition) Item3Kinds(t string) []string {
	if t == TypeListingAbroad && e.HasCaseType(TypeListingAbroad) {
		return []string{MaterialListingApplication, MaterialProcurement}
	}
	return []string{MaterialProcurement}
}
