package access

import (
	"strings"
	"testing"
)

func TestArgon2idPHC(t *testing.T) {
	h, err := DefaultArgon2id.Hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(h, want) {
		t.Fatalf("hash %q lacks OWASP-minimum PHC prefix %q", h, want)
	}
	h2, _ := DefaultArgon2id.Hash("correct horse battery")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"correct horse battery", true}, {"correct horse batterx", false}, {"", false}} {
		ok, err := Argon2id{}.Verify(tc.pw, h)
		if err != nil || ok != tc.want {
			t.Errorf("Verify(%q) = %v, %v; want %v", tc.pw, ok, err, tc.want)
		}
	}
	// A hash made with other parameters still verifies: they come from the string.
	cheap, _ := cheapArgon2id.Hash("pw")
	if ok, err := DefaultArgon2id.Verify("pw", cheap); !ok || err != nil {
		t.Errorf("verify with stored parameters: %v, %v", ok, err)
	}
}

func TestParsePHCRejects(t *testing.T) {
	good, _ := cheapArgon2id.Hash("pw")
	parts := strings.Split(good, "$")
	for name, s := range map[string]string{
		"empty":         "",
		"bcrypt":        "$2a$10$abcdefghijklmnopqrstuv",
		"argon2i":       strings.Replace(good, "argon2id", "argon2i", 1),
		"version":       strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":   strings.Join([]string{"", "argon2id", "v=19", "m=99999999,t=1,p=1", parts[4], parts[5]}, "$"),
		"huge time":     strings.Join([]string{"", "argon2id", "v=19", "m=64,t=1000,p=1", parts[4], parts[5]}, "$"),
		"zero threads":  strings.Join([]string{"", "argon2id", "v=19", "m=64,t=1,p=0", parts[4], parts[5]}, "$"),
		"trailing junk": strings.Join([]string{"", "argon2id", "v=19", "m=64,t=1,p=1x", parts[4], parts[5]}, "$"),
		"bad salt":      strings.Join([]string{"", "argon2id", "v=19", parts[3], "!!", parts[5]}, "$"),
		"short key":     strings.Join([]string{"", "argon2id", "v=19", parts[3], parts[4], "AAAA"}, "$"),
	} {
		if _, err := parsePHC(s); err == nil {
			t.Errorf("%s: parsePHC(%q) accepted", name, s)
		}
	}
	if _, err := parsePHC(good); err != nil {
		t.Errorf("parsePHC(good) = %v", err)
	}
}

// FuzzParsePHC: stored hashes are outside input if the database is tampered with.
func FuzzParsePHC(f *testing.F) {
	good, _ := cheapArgon2id.Hash("pw")
	f.Add(good)
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			return
		}
		if p.memory > 1<<21 || p.time > 64 || p.threads == 0 || len(p.key) > 64 {
			t.Fatalf("accepted out-of-bounds parameters from %q", s)
		}
	})
}
