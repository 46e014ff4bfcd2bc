package audit

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestProofsProperty: for random tree sizes every inclusion and consistency
// proof verifies against the signed checkpoint's root, and flipping any bit
// of any hash in it makes it fail.
func TestProofsProperty(t *testing.T) {
	f := newFixture(t, sqldb.SQLite)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	size := int64(0)
	for range 12 {
		grow := 1 + rng.IntN(20)
		f.appendN(t, grow)
		size += int64(grow)
		ckText, err := f.log.makeCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ck, err := ParseCheckpoint(ckText, f.log.PublicKey())
		if err != nil || ck.Size != size {
			t.Fatalf("checkpoint %+v %v", ck, err)
		}
		seq := 1 + rng.Int64N(size)
		ip, err := f.log.InclusionProof(ctx, seq, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ip.Root != ck.Root || ip.TreeSize != size {
			t.Fatalf("inclusion proof root/size %v/%d, checkpoint %v/%d", ip.Root, ip.TreeSize, ck.Root, size)
		}
		if err := ip.Check(); err != nil {
			t.Fatalf("size %d seq %d: %v", size, seq, err)
		}
		for _, h := range inclusionHashes(&ip) {
			bit := rng.IntN(256)
			flip(h, bit)
			if ip.Check() == nil {
				t.Fatalf("size %d seq %d: proof with a flipped hash verified", size, seq)
			}
			flip(h, bit)
		}
		from := 1 + rng.Int64N(size)
		cp, err := f.log.ConsistencyProof(ctx, from, size)
		if err != nil {
			t.Fatal(err)
		}
		if cp.ToRoot != ck.Root {
			t.Fatal("consistency proof root differs from checkpoint")
		}
		if err := cp.Check(); err != nil {
			t.Fatalf("consistency %d..%d: %v", from, size, err)
		}
		for _, h := range consistencyHashes(&cp) {
			bit := rng.IntN(256)
			flip(h, bit)
			if cp.Check() == nil {
				t.Fatalf("consistency %d..%d with a flipped hash verified", from, size)
			}
			flip(h, bit)
		}
	}
	for _, tc := range []struct{ seq, size int64 }{{0, 1}, {5, size + 1}, {size + 1, 0}, {4, 3}} {
		if _, err := f.log.InclusionProof(ctx, tc.seq, tc.size); !errors.Is(err, ErrInvalid) {
			t.Errorf("inclusion %d in %d: %v, want ErrInvalid", tc.seq, tc.size, err)
		}
	}
	for _, tc := range []struct{ from, to int64 }{{0, 3}, {4, 3}, {1, size + 1}} {
		if _, err := f.log.ConsistencyProof(ctx, tc.from, tc.to); !errors.Is(err, ErrInvalid) {
			t.Errorf("consistency %d..%d: %v, want ErrInvalid", tc.from, tc.to, err)
		}
	}
}

func flip(h *tlog.Hash, bit int) { h[bit/8] ^= 1 << (bit % 8) }

func inclusionHashes(p *InclusionProof) []*tlog.Hash {
	hs := []*tlog.Hash{&p.LeafHash, &p.Root}
	for i := range p.Proof {
		hs = append(hs, &p.Proof[i])
	}
	return hs
}

func consistencyHashes(p *ConsistencyProof) []*tlog.Hash {
	hs := []*tlog.Hash{&p.FromRoot, &p.ToRoot}
	for i := range p.Proof {
		hs = append(hs, &p.Proof[i])
	}
	return hs
}

func TestExportVerifiesOffline(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			ctx := context.Background()
			f.appendN(t, 7)
			old, err := f.log.makeCheckpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			f.appendN(t, 2500) // more than one export page
			ck, err := f.log.makeCheckpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			export := func(from, to int64) []byte {
				var b bytes.Buffer
				if err := f.log.Export(ctx, &b, from, to); err != nil {
					t.Fatal(err)
				}
				return b.Bytes()
			}
			full := export(0, 0)
			lines := bytes.Split(bytes.TrimSpace(full), []byte("\n"))
			tests := []struct {
				name    string
				export  []byte
				ck, old []byte
				key     string
				wantSeq int64 // -1: valid
				want    string
			}{
				{"full with old checkpoint", full, ck, old, f.log.PublicKey(), -1, ""},
				{"partial from 5", export(5, 0), ck, old, f.log.PublicKey(), -1, ""},
				{"partial after old checkpoint", export(100, 0), ck, nil, f.log.PublicKey(), -1, ""},
				{"old checkpoint before partial export", export(100, 0), ck, old, f.log.PublicKey(), 100, "cannot check"},
				{"edited line", bytes.Replace(full, []byte(`"resource":"mat-3"`), []byte(`"resource":"mat-X"`), 1), ck, nil, f.log.PublicKey(), 4, "content does not match"},
				// What other readers of the file see must be what is hashed:
				// encoding/json alone would take the last of duplicates and
				// match keys regardless of case and Unicode folding.
				{"key twice", bytes.Replace(full, []byte(`"resource":"mat-3"`), []byte(`"resource":"forged","resource":"mat-3"`), 1), ck, nil, f.log.PublicKey(), 4, "appears twice"},
				{"key in upper case", bytes.Replace(full, []byte(`"resource":"mat-3"`), []byte(`"resource":"forged","RESOURCE":"mat-3"`), 1), ck, nil, f.log.PublicKey(), 4, "not one of the format's"},
				{"key folded", bytes.Replace(full, []byte(`"resource":"mat-3"`), []byte(`"re\u017fource":"mat-3"`), 1), ck, nil, f.log.PublicKey(), 4, "not one of the format's"},
				{"dropped line", join(append(append([][]byte{}, lines[:11]...), lines[12:]...)), ck, nil, f.log.PublicKey(), 11, "event missing"},
				{"truncated", join(lines[:2000]), ck, nil, f.log.PublicKey(), 2000, "truncated"},
				{"checkpoint beyond export", export(1, 7), ck, nil, f.log.PublicKey(), 8, "checkpoint covers 2507"},
				{"old newer than new", full, old, ck, f.log.PublicKey(), 0, "rolled back"},
				{"other key", full, ck, nil, otherKey(t), 0, "signature"},
				{"not an export", []byte("hello\n"), ck, nil, f.log.PublicKey(), 0, "header"},
			}
			for _, tc := range tests {
				rep, err := VerifyExport(bytes.NewReader(tc.export), tc.ck, tc.key, tc.old)
				if tc.wantSeq < 0 {
					if err != nil {
						t.Errorf("%s: %v", tc.name, err)
					} else if rep.TreeSize != 2507 || rep.Covered != 2507 {
						t.Errorf("%s: report %+v", tc.name, rep)
					}
					continue
				}
				var ve *VerifyError
				if !errors.As(err, &ve) || ve.Seq != tc.wantSeq || !strings.Contains(ve.Reason, tc.want) {
					t.Errorf("%s: got %v; want seq %d with %q", tc.name, err, tc.wantSeq, tc.want)
				}
			}
		})
	}
}

func join(lines [][]byte) []byte { return append(bytes.Join(lines, []byte("\n")), '\n') }

func otherKey(t *testing.T) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(nil, DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

var update = flag.Bool("update", false, "rewrite golden files")

// fixedReader is a deterministic key source for the golden files.
type fixedReader struct{}

func (fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

// TestGoldenExport pins the export format, canonical encoding, hashes and
// checkpoint text. The files also feed cmd/vaultctl's offline test.
func TestGoldenExport(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.SQLite)
	ctx := context.Background()
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	keyDir := t.TempDir()
	skey, vkey, err := note.GenerateKey(fixedReader{}, DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keyDir, signerKeyFile), []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 3, 1, 8, 0, 0, 123456000, time.UTC)
	l := openLog(t, db, Options{KeyDir: keyDir, CheckpointEvery: time.Hour, now: func() time.Time {
		clock = clock.Add(1500 * time.Millisecond)
		return clock
	}})
	evs := []Event{
		{Actor: "u-alice", ActorOrg: "o-office", Action: "case.create", Outcome: Allowed, CaseID: "c-1", Resource: "case/c-1", IP: "10.0.0.1", RequestID: "r-1"},
		{Actor: "u-bob", ActorOrg: "o-member", Action: "material.read", Outcome: Denied, CaseID: "c-1", Resource: "material/m-1", Purpose: "review <security> & \"supply\"", IP: "10.0.0.2", RequestID: "r-2", Detail: "declaration_required"},
		{Actor: "u-bob", ActorOrg: "o-member", Action: "material.read", Outcome: Allowed, CaseID: "c-1", Resource: "material/m-1", Purpose: "网络安全审查", IP: "10.0.0.2", RequestID: "r-3"},
		{Actor: "u-carol", ActorOrg: "o-insp", Action: "audit.export", Outcome: Errored, Resource: "audit", IP: "::1", RequestID: "r-4", Detail: "internal"},
	}
	for _, e := range evs {
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	ck, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var exp bytes.Buffer
	if err := l.Export(ctx, &exp, 0, 0); err != nil {
		t.Fatal(err)
	}
	golden := map[string][]byte{"golden-export.ndjson": exp.Bytes(), "golden-checkpoint.txt": ck, "golden-key.pub": []byte(vkey + "\n")}
	for name, got := range golden {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from golden:\n got: %s\nwant: %s", name, got, want)
		}
	}
	if _, err := VerifyExport(bytes.NewReader(exp.Bytes()), ck, vkey, nil); err != nil {
		t.Fatal(err)
	}
}

func FuzzVerifyExport(f *testing.F) {
	exp, err1 := os.ReadFile("testdata/golden-export.ndjson")
	ck, err2 := os.ReadFile("testdata/golden-checkpoint.txt")
	key, err3 := os.ReadFile("testdata/golden-key.pub")
	if err := errors.Join(err1, err2, err3); err != nil {
		f.Fatal(err)
	}
	f.Add(exp, ck)
	f.Add([]byte(`{"format":"crvault-audit-export","version":1,"from":3,"to":2,"prev_hash":"","prefix":[]}`), ck)
	f.Fuzz(func(t *testing.T, export, checkpoint []byte) {
		rep, err := VerifyExport(bytes.NewReader(export), checkpoint, string(key), nil)
		if err == nil && rep.Covered > rep.TreeSize {
			t.Fatalf("covered %d > tree size %d", rep.Covered, rep.TreeSize)
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	ck, err := os.ReadFile("testdata/golden-checkpoint.txt")
	if err != nil {
		f.Fatal(err)
	}
	key, err := os.ReadFile("testdata/golden-key.pub")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ck, string(key))
	f.Fuzz(func(t *testing.T, signed []byte, vkey string) {
		c, err := ParseCheckpoint(signed, vkey)
		if err == nil && !bytes.HasPrefix(signed, formatCheckpoint(c.Origin, c.Size, c.Root)) {
			t.Fatalf("accepted checkpoint whose body is not canonical: %q", signed)
		}
	})
}
