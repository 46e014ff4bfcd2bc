package audit

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// frontierIndexes lists the stored-hash indexes of the roots of the complete
// subtrees of a tree of size n: exactly what tlog needs to add record n and
// to compute TreeHash(n).
func frontierIndexes(n int64) []int64 {
	var idx []int64
	for l := 63; l >= 0; l-- {
		if n&(1<<uint(l)) != 0 {
			idx = append(idx, tlog.StoredHashIndex(l, (n>>uint(l))-1))
		}
	}
	return idx
}

// builder grows a Merkle tree one leaf at a time keeping only its frontier
// (O(log n) hashes) in memory.
type builder struct {
	size     int64
	frontier map[int64]tlog.Hash
	// spare is the frontier before the last add, cleared and refilled by
	// the next: a map per leaf was most of an append's allocations.
	spare map[int64]tlog.Hash
	// fallback reads frontier hashes not in memory (the database), or nil.
	fallback tlog.HashReader
}

func newBuilder(size int64, fallback tlog.HashReader) *builder {
	return &builder{size: size, frontier: map[int64]tlog.Hash{}, fallback: fallback}
}

func (b *builder) clone() *builder {
	return &builder{size: b.size, frontier: maps.Clone(b.frontier), fallback: b.fallback}
}

// cloneInto is clone into dst's maps, for a writer that alternates two
// builders (the committed one and the next batch's) instead of allocating
// two maps per batch. dst must not be b, nor in use.
func (b *builder) cloneInto(dst *builder) *builder {
	if dst == nil || dst == b {
		return b.clone()
	}
	if dst.frontier == nil {
		dst.frontier = make(map[int64]tlog.Hash, len(b.frontier))
	}
	clear(dst.frontier)
	maps.Copy(dst.frontier, b.frontier)
	dst.size, dst.fallback = b.size, b.fallback
	return dst
}

// ReadHashes implements tlog.HashReader over the frontier and the fallback.
func (b *builder) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	for i, x := range indexes {
		h, ok := b.frontier[x]
		if !ok {
			missing = append(missing, x)
			continue
		}
		out[i] = h
	}
	if len(missing) == 0 {
		return out, nil
	}
	if b.fallback == nil {
		return nil, fmt.Errorf("tree hash %d not available", missing[0])
	}
	got, err := b.fallback.ReadHashes(missing)
	if err != nil {
		return nil, err
	}
	j := 0
	for i, x := range indexes {
		if _, ok := b.frontier[x]; !ok {
			out[i] = got[j]
			b.frontier[x] = got[j]
			j++
		}
	}
	return out, nil
}

// add appends a leaf and returns the stored hashes it creates, whose indexes
// run from tlog.StoredHashCount(size before) upward.
func (b *builder) add(leaf tlog.Hash) ([]tlog.Hash, error) {
	hs, err := tlog.StoredHashesForRecordHash(b.size, leaf, b)
	if err != nil {
		return nil, err
	}
	first := tlog.StoredHashCount(b.size)
	next := b.spare
	if next == nil {
		next = make(map[int64]tlog.Hash, 64)
	}
	clear(next)
	b.size++
	for _, x := range frontierIndexes(b.size) {
		if x >= first {
			next[x] = hs[x-first]
		} else if h, ok := b.frontier[x]; ok {
			next[x] = h
		}
		// else: left for the fallback to supply when needed.
	}
	b.spare, b.frontier = b.frontier, next
	return hs, nil
}

func (b *builder) root() (tlog.Hash, error) { return tlog.TreeHash(b.size, b) }

// dbHashes reads stored hashes from the database: a handful of primary-key
// lookups per proof, never a scan.
type dbHashes struct {
	ctx context.Context
	q   querier
	ph  func(int) string
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (r dbHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	var sb strings.Builder
	sb.WriteString("SELECT idx, hash FROM audit_hashes WHERE idx IN (")
	args := make([]any, len(indexes))
	for i, x := range indexes {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(r.ph(i + 1))
		args[i] = x
	}
	sb.WriteByte(')')
	rows, err := r.q.QueryContext(r.ctx, sb.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("read tree hashes: %w", err)
	}
	defer rows.Close()
	got := make(map[int64]tlog.Hash, len(indexes))
	for rows.Next() {
		var x int64
		var raw []byte
		if err := rows.Scan(&x, &raw); err != nil {
			return nil, fmt.Errorf("read tree hashes: %w", err)
		}
		if len(raw) != tlog.HashSize {
			return nil, fmt.Errorf("tree hash %d has %d bytes", x, len(raw))
		}
		got[x] = tlog.Hash(raw)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read tree hashes: %w", err)
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("%w: %d", errHashMissing, x)
		}
		out[i] = h
	}
	return out, nil
}

// InclusionProof shows that event Seq is in the tree of size TreeSize with
// root Root. Leaf is the event's canonical encoding, so a verifier can check
// SHA-256(Leaf) against the event's hash and the proof against a checkpoint.
type InclusionProof struct {
	Seq      int64       `json:"seq"`
	TreeSize int64       `json:"tree_size"`
	Leaf     string      `json:"leaf"`
	LeafHash tlog.Hash   `json:"leaf_hash"`
	Root     tlog.Hash   `json:"root"`
	Proof    []tlog.Hash `json:"proof"`
}

// ConsistencyProof shows that the tree of size From (root FromRoot) is a
// prefix of the tree of size To (root ToRoot).
type ConsistencyProof struct {
	From     int64       `json:"from"`
	To       int64       `json:"to"`
	FromRoot tlog.Hash   `json:"from_root"`
	ToRoot   tlog.Hash   `json:"to_root"`
	Proof    []tlog.Hash `json:"proof"`
}

// Check verifies the proof on its own terms (leaf, path, root). Compare
// p.Root with a checkpoint of size p.TreeSize to anchor it.
func (p InclusionProof) Check() error {
	if tlog.RecordHash([]byte(p.Leaf)) != p.LeafHash {
		return fmt.Errorf("inclusion proof for seq %d: leaf does not match leaf hash", p.Seq)
	}
	if err := tlog.CheckRecord(tlog.RecordProof(p.Proof), p.TreeSize, p.Root, p.Seq-1, p.LeafHash); err != nil {
		return fmt.Errorf("inclusion proof for seq %d in size %d: %w", p.Seq, p.TreeSize, err)
	}
	return nil
}

// Check verifies that FromRoot is a prefix of ToRoot.
func (p ConsistencyProof) Check() error {
	if err := tlog.CheckTree(tlog.TreeProof(p.Proof), p.To, p.ToRoot, p.From, p.FromRoot); err != nil {
		return fmt.Errorf("consistency proof %d..%d: %w", p.From, p.To, err)
	}
	return nil
}
