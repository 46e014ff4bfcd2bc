package access

import (
	"errors"
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

// TestPasswordPolicy is the password list: short, repeated and
// listed passwords (and listed ones dressed up) are refused; passphrases pass.
func TestPasswordPolicy(t *testing.T) {
	if n := CommonPasswordCount(); n < 20000 {
		t.Fatalf("embedded list has %d entries, want tens of thousands", n)
	}
	for _, pw := range []string{
		"elevenchars",              // too short
		"aaaaaaaaaaaa",             // one character repeated
		"            ",             // twelve spaces
		"\t\t\t\t\t\t\t\t\t\t\t\t", // whitespace only
		"ababababababab",           // a short group repeated
		"123412341234",             // likewise
		"password1234",             // on the list as it is
		"qwertyasdfgh",             // likewise
		"1qaz2wsx3edc",             // likewise
		"PASSWORD1234",             // in capitals
		"baseball2024!",            // a listed word plus a year and a symbol
		"!!football12",             // padding before and after
		"p4ssw0rd2024",             // substitutions undone
		"sunshinesunshine",         // a listed word typed twice
		strings.Repeat("é", 12),    // repeated non-ASCII
		strings.Repeat("x", 1025),  // too long
	} {
		err := CheckPassword("password", pw)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Code != "weak_password" || fe.Field != "password" {
			t.Errorf("%q accepted or wrongly refused: %v", pw, err)
		} else if strings.Contains(fe.Detail, pw) {
			t.Errorf("refusal of %q quotes the password", pw)
		}
	}
	for _, pw := range []string{
		"correct horse battery staple",
		"operator passphrase 1",
		"office admin passphrase",
		"Tr0ub4dor&3-but-longer",
		"密码要足够长才能通过检查啊",
	} {
		if err := CheckPassword("password", pw); err != nil {
			t.Errorf("%q refused: %v", pw, err)
		}
	}
}

// TestDecoyHash: the decoy an unknown username is checked against has the
// hasher's own parameters and lengths, so that checking it is the work of
// checking a real hash; it is random, matches no password, and making it
// runs no argon2id. A hasher that cannot make decoys still gets one, by
// hashing.
func TestDecoyHash(t *testing.T) {
	d1, err := DefaultArgon2id.Decoy()
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := DefaultArgon2id.Decoy()
	if d1 == d2 {
		t.Fatal("two decoys are equal")
	}
	p, err := parsePHC(d1)
	if err != nil {
		t.Fatalf("decoy %q does not parse: %v", d1, err)
	}
	a := DefaultArgon2id
	if p.memory != a.MemoryKiB || p.time != a.Time || p.threads != a.Threads || len(p.salt) != a.SaltLen || len(p.key) != int(a.KeyLen) {
		t.Fatalf("decoy %+v does not carry the hasher's parameters %+v", p, a)
	}
	cheap, _ := cheapArgon2id.Decoy()
	for _, pw := range []string{"", "correct horse battery"} {
		if ok, err := cheapArgon2id.Verify(pw, cheap); ok || err != nil {
			t.Errorf("Verify(%q, decoy) = %v, %v; want false, nil", pw, ok, err)
		}
	}

	withDecoys := &countingHasher{PasswordHasher: cheapArgon2id}
	if _, err := newBoundedHasher(withDecoys, 1).decoy("x"); err != nil || withDecoys.hashes.Load() != 0 {
		t.Fatalf("decoy from an argon2id hasher: %v, %d hashes, want none", err, withDecoys.hashes.Load())
	}
	without := &hashOnly{PasswordHasher: cheapArgon2id}
	h, err := newBoundedHasher(without, 1).decoy("x")
	if err != nil || without.hashes != 1 {
		t.Fatalf("decoy from another hasher: %v, %d hashes, want 1", err, without.hashes)
	}
	if ok, err := cheapArgon2id.Verify("correct horse battery", h); ok || err != nil {
		t.Errorf("Verify against the hashed decoy = %v, %v; want false, nil", ok, err)
	}
}

// hashOnly is a hasher that cannot make decoys, counting its hashes.
type hashOnly struct {
	PasswordHasher
	hashes int
}

func (c *hashOnly) Hash(p string) (string, error) {
	c.hashes++
	return c.PasswordHasher.Hash(p)
}
