package access

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/crvault/crvault/configs"
)

// MinPasswordLen is the shortest password accepted (in characters).
const MinPasswordLen = 12

// maxPasswordLen bounds the work a single login can cause.
const maxPasswordLen = 1024

// commonPasswords is the embedded list of common and breached passwords
// (configs/passwords), lower-cased, read once on first use.
var commonPasswords = sync.OnceValues(func() (map[string]struct{}, error) {
	f, err := configs.Passwords.Open("passwords/common.txt.gz")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	set := make(map[string]struct{}, 32768)
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" {
			set[strings.ToLower(w)] = struct{}{}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return set, nil
})

// CommonPasswordCount is how many entries the embedded list has (for tests
// and the README's claim); 0 if it cannot be read.
func CommonPasswordCount() int {
	set, _ := commonPasswords()
	return len(set)
}

// CheckPassword applies the password policy: MinPasswordLen to 1024
// characters, not one character (or a short group of up to four) repeated,
// whitespace alone included, and not on the embedded list of common and
// breached passwords, nor such a password with up to six digits or symbols
// added after it (a year and a "!") or four before it, nor one with the usual letter-for-digit
// substitutions (p4ssw0rd). The error is a *FieldError on field (code
// weak_password) whose detail says which rule failed, never the password.
func CheckPassword(field, pw string) error {
	n := utf8.RuneCountInString(pw)
	if n < MinPasswordLen || len(pw) > maxPasswordLen || !utf8.ValidString(pw) {
		return invalid(field, "weak_password", fmt.Sprintf("must be %d to %d characters", MinPasswordLen, maxPasswordLen))
	}
	if strings.TrimSpace(pw) == "" || repeatsShortGroup(pw) {
		return invalid(field, "weak_password", "must not be one character or a short group repeated")
	}
	set, err := commonPasswords()
	if err != nil {
		// The list is embedded; failing to read it is a build defect, and
		// accepting every password would be failing open.
		return fmt.Errorf("password list: %w", err)
	}
	for _, c := range passwordVariants(pw) {
		if _, ok := set[c]; ok {
			return invalid(field, "weak_password", "is a common or breached password (or one with a few characters added)")
		}
	}
	return nil
}

// repeatsShortGroup reports whether pw is a group of one to four characters
// repeated ("aaaaaaaaaaaa", "abababababab", "123412341234").
func repeatsShortGroup(pw string) bool {
	rs := []rune(pw)
	for period := 1; period <= 4 && period < len(rs); period++ {
		if len(rs)%period != 0 {
			continue
		}
		same := true
		for i := period; i < len(rs) && same; i++ {
			same = rs[i] == rs[i-period]
		}
		if same {
			return true
		}
	}
	return false
}

// leet undoes the letter-for-digit substitutions people use to dress up a
// dictionary word.
var leet = strings.NewReplacer("0", "o", "1", "i", "3", "e", "4", "a", "5", "s", "7", "t", "@", "a", "$", "s", "!", "i")

// passwordVariants lists the lower-cased forms checked against the list: the
// password itself, the password without up to six trailing and four leading
// digits, symbols or spaces, the same with substitutions undone, and a listed
// word typed twice.
func passwordVariants(pw string) []string {
	low := strings.ToLower(pw)
	out := []string{low}
	isPad := func(r rune) bool {
		return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r)
	}
	core := low
	for range 6 {
		r, size := utf8.DecodeLastRuneInString(core)
		if size == 0 || !isPad(r) {
			break
		}
		core = core[:len(core)-size]
	}
	for range 4 {
		r, size := utf8.DecodeRuneInString(core)
		if size == 0 || !isPad(r) {
			break
		}
		core = core[size:]
	}
	if core != low && core != "" {
		out = append(out, core)
	}
	for _, s := range out[:len(out):len(out)] {
		if l := leet.Replace(s); l != s {
			out = append(out, l)
		}
	}
	if h := len(low) / 2; len(low)%2 == 0 && low[:h] == low[h:] {
		out = append(out, low[:h])
	}
	return out
}
