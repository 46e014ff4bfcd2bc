package supervision

import (
	"strings"
	"testing"
	"time"
)

func TestParseReceipt(t *testing.T) {
	id := newID()
	secret := newSecret()
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"issued", id + "." + secret, true},
		{"surrounding space", " " + id + "." + secret + "\n", true},
		{"no dot", id + secret, true},
		{"no dot, a character short", id + secret[1:], false},
		{"short secret", id + "." + secret[:25], false},
		{"long secret", id + "." + secret + "a", false},
		{"upper case", strings.ToUpper(id + "." + secret), true},
		{"copied by hand", byHand(id) + " . " + byHand(secret), true},
		{"letter outside alphabet", id + "." + "u" + secret[1:], false},
		{"bad id", "U" + id[1:] + "." + secret, false},
		{"two dots", id + "." + secret[:12] + "." + secret[13:], false},
		{"empty", "", false},
	}
	// Every 0 and 1 written as a letter, for certain.
	const fixedID, fixedSecret = "0123456789abcdefghjkmnpqrs", "tvwxyz0123456789abcdefghjk"
	if gotID, gotSecret, err := ParseReceipt(byHand(fixedID) + "." + byHand(fixedSecret)); err != nil || gotID != fixedID || gotSecret != fixedSecret {
		t.Fatalf("ParseReceipt(%q) = %q, %q, %v", byHand(fixedID)+"."+byHand(fixedSecret), gotID, gotSecret, err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gotID, gotSecret, err := ParseReceipt(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseReceipt(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if tc.ok && (gotID != id || gotSecret != secret) {
				t.Fatalf("ParseReceipt(%q) = %q, %q", tc.in, gotID, gotSecret)
			}
		})
	}
}

// byHand writes a receipt part as someone copying it might: in groups of
// four, upper case, with O for 0 and l for 1.
func byHand(s string) string {
	var b strings.Builder
	for i, r := range strings.ToUpper(s) {
		if i > 0 && i%4 == 0 {
			b.WriteString("- ")
		}
		switch r {
		case '0':
			r = 'O'
		case '1':
			r = 'l'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func TestSecretsAreDistinctAndLong(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		s := newSecret()
		if len(s)*5 < 128 || seen[s] {
			t.Fatalf("secret %q: too short or repeated", s)
		}
		seen[s] = true
	}
}

func FuzzParseReceipt(f *testing.F) {
	f.Add(newID() + "." + newSecret())
	f.Add("")
	f.Add("..")
	f.Add(strings.Repeat("z", 26) + "." + strings.Repeat("0", 26))
	f.Add(byHand(newID()) + " . " + byHand(newSecret()))
	f.Fuzz(func(t *testing.T, in string) {
		id, secret, err := ParseReceipt(in)
		if err != nil {
			return
		}
		canon := id + "." + secret
		if !validID(id) || len(secret) != secretLen {
			t.Fatalf("accepted %q as %q.%q", in, id, secret)
		}
		if id2, secret2, err := ParseReceipt(canon); err != nil || id2 != id || secret2 != secret {
			t.Fatalf("%q reads as %q.%q, %v", canon, id2, secret2, err)
		}
		// Every character typed is the receipt's, written another way, or
		// grouping.
		typed := strings.NewReplacer(" ", "", "-", "", "\t", "", "\n", "", "\r", "").Replace(in)
		if !strings.Contains(typed, ".") && len(typed) == len(canon)-1 {
			typed = typed[:idLen] + "." + typed[idLen:]
		}
		if len(typed) != len(canon) {
			t.Fatalf("accepted %q as %q", in, canon)
		}
		for i := range len(typed) {
			c, want := typed[i], canon[i]
			if c != want && !('A' <= c && c <= 'Z' && c+'a'-'A' == want) && !(want == '0' && (c == 'o' || c == 'O')) &&
				!(want == '1' && strings.IndexByte("iIlL", c) >= 0) {
				t.Fatalf("accepted %q as %q: %q read as %q", in, canon, c, want)
			}
		}
	})
}

func TestThrottle(t *testing.T) {
	now := time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tests := []struct {
		name    string
		advance time.Duration
		client  string
		wantOn  bool
	}{
		{"limit reached", 0, "198.51.100.7", true},
		{"other client unaffected", 0, "198.51.100.8", false},
		{"still within the window", 30 * time.Minute, "198.51.100.7", true},
		{"new window and new day clear it", 31 * time.Minute, "198.51.100.7", false},
	}
	th := newThrottle(clock, time.Hour)
	for i := 0; i < 3; i++ {
		th.take("receipt", "198.51.100.7", 3)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now = now.Add(tc.advance)
			if ok, _ := th.take("receipt", tc.client, 3); !ok != tc.wantOn {
				t.Fatalf("refused = %v, want %v", !ok, tc.wantOn)
			}
		})
	}
	// The counters never hold the address itself.
	for _, m := range th.counts {
		for tag := range m {
			if strings.Contains(string(tag[:]), "198.51.100") {
				t.Fatal("throttle keeps the address")
			}
		}
	}
}

func FuzzVerifyEvidence(f *testing.F) {
	f.Add(`{"format":"crvault-complaint-evidence","checkpoint":"x","events":[]}`)
	f.Add(`{}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, in string) {
		// Any outside input is refused or verified without panicking; with
		// no valid signature nothing can verify.
		if _, err := VerifyEvidence(strings.NewReader(in), "crvault.audit+00000000+AQ=="); err == nil {
			t.Fatalf("unsigned bundle verified: %q", in)
		}
	})
}
