package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/crvault/crvault/audit"
)

// memTree is a Merkle tree in memory, the same RFC 6962 tree as the log's.
type memTree struct{ hashes []tlog.Hash }

func (m *memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("hash %d missing", x)
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

func treeOf(leaves ...string) *memTree {
	m := &memTree{}
	for i, l := range leaves {
		hs, err := tlog.StoredHashes(int64(i), []byte(l), m)
		if err != nil {
			panic(err)
		}
		m.hashes = append(m.hashes, hs...)
	}
	return m
}

func leaves(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// fakeServer serves GET /api/v1/audit/checkpoint and the consistency proofs
// of whatever tree the test sets, signed with its key, as a vault would
// (or a vault whose log was rolled back by someone holding its key).
type fakeServer struct {
	t      *testing.T
	signer note.Signer
	mu     sync.Mutex
	tree   *memTree
	size   int64
	token  string
}

func newFakeServer(t *testing.T) (*fakeServer, string, *httptest.Server) {
	skey, vkey, err := note.GenerateKey(rand.Reader, audit.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{t: t, signer: s, token: "tok-123"}
	hs := httptest.NewServer(f)
	t.Cleanup(hs.Close)
	return f, vkey, hs
}

func (f *fakeServer) set(tree *memTree, size int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tree, f.size = tree, int64(size)
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/api/v1/audit/checkpoint":
		root, err := tlog.TreeHash(f.size, f.tree)
		if err != nil {
			f.t.Error(err)
		}
		b, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n%s\n", audit.DefaultOrigin, f.size, base64.StdEncoding.EncodeToString(root[:]))}, f.signer)
		if err != nil {
			f.t.Error(err)
		}
		w.Write(b)
	case "/api/v1/audit/proofs/consistency":
		from, _ := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
		to, _ := strconv.ParseInt(r.URL.Query().Get("to"), 10, 64)
		if from < 1 || to > f.size || from > to {
			http.Error(w, `{"code":"invalid_tree_size"}`, http.StatusUnprocessableEntity)
			return
		}
		p, err := tlog.ProveTree(to, from, f.tree)
		if err != nil {
			f.t.Error(err)
		}
		fr, _ := tlog.TreeHash(from, f.tree)
		tr, _ := tlog.TreeHash(to, f.tree)
		json.NewEncoder(w).Encode(audit.ConsistencyProof{From: from, To: to, FromRoot: fr, ToRoot: tr, Proof: p})
	default:
		http.NotFound(w, r)
	}
}

func TestAuditWatch(t *testing.T) {
	f, vkey, hs := newFakeServer(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	env := map[string]string{"VAULTCTL_SERVER": hs.URL, "VAULTCTL_TOKEN": f.token, "XDG_CONFIG_HOME": t.TempDir()}
	watch := func(key string) (int, string) {
		t.Helper()
		// Flags in any order, as for every command.
		code, out, errs := runCtl(t, env, "", "audit", "watch", "--once", "--key", key, "--state", state)
		return code, out + errs
	}
	good := treeOf(leaves("a", 20)...)
	regrown := treeOf(append(leaves("a", 6), leaves("b", 10)...)...)
	steps := []struct {
		name string
		tree *memTree
		size int
		code int
		want string
	}{
		{"first sight is trusted and kept", good, 5, exitOK, "first checkpoint seen: size 5"},
		{"growth is proven", good, 8, exitOK, "size 8 extends size 5"},
		{"unchanged", good, 8, exitOK, "size 8, unchanged"},
		{"tail truncated", good, 6, exitFail, "covers 6 events, but a checkpoint of size 8 was seen before: events 7..8 are gone"},
		{"rolled back and regrown past", regrown, 12, exitFail, "size 12 is not an extension of the checkpoint of size 8"},
		{"same size, other root", regrown, 8, exitFail, "two different checkpoints of size 8"},
		{"the genuine log goes on", good, 20, exitOK, "size 20 extends size 8"},
	}
	for _, st := range steps {
		f.set(st.tree, st.size)
		code, out := watch(vkey)
		if code != st.code || !strings.Contains(out, st.want) {
			t.Fatalf("%s: exit %d %q; want exit %d containing %q", st.name, code, out, st.code, st.want)
		}
	}

	// A checkpoint under another key is a failed check too.
	_, otherKey, _ := newFakeServer(t)
	if code, out := watch(otherKey); code != exitFail || !strings.Contains(out, "does not verify") {
		t.Fatalf("other key: exit %d %q", code, out)
	}
	// A server that is down, or a refused session, is an error of its own
	// kind, not evidence.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	env["VAULTCTL_SERVER"] = down.URL
	if code, _ := watch(vkey); code != exitServer {
		t.Fatalf("server down: exit %d, want %d", code, exitServer)
	}
	env["VAULTCTL_SERVER"], env["VAULTCTL_TOKEN"] = hs.URL, "wrong"
	if code, out := watch(vkey); code != exitAuth {
		t.Fatalf("bad token: exit %d %q", code, out)
	}
	if code, _ := watch(""); code != exitUsage {
		t.Fatalf("no key: exit %d", code)
	}
}
