package audit

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/mod/sumdb/tlog"
)

// VerifySince checks only what was appended after a checkpoint that an
// earlier verification vouched for (its signed note, kept by the caller;
// nil verifies the whole log like Verify). The old part is not re-read: it
// is tied to the new part by proofs over the stored tree hashes, in
// O(log n) lookups:
//
//   - the log is at least as long as the verified checkpoint, and the
//     stored tree at its size still has its root (a log shorter than it, or
//     rewritten under it, is refused);
//   - the last verified event still hashes to the leaf the checkpoint's
//     tree holds (inclusion proof), so the chain goes on from a genuine
//     hash;
//   - every event after it is checked as Verify checks them, against the
//     stored checkpoints after it and each witness's newest; a checkpoint
//     at or below the verified size must be a prefix of it (consistency
//     proof). A log shorter than any visible checkpoint is refused.
//   - every checkpoint a witness holds above the verified size, older ones
//     than its newest included, verifies and is a prefix of the log. Those
//     at or below it were checked by the run that vouched for it; a
//     verified note forged with the signing key skips them, so keep it
//     (--state) where whoever holds the data directory cannot write, and
//     run the full Verify, which checks them all, now and then.
//
// What an incremental run cannot see is a change to the rows of events
// before the verified checkpoint: it reads only the last of them, and the
// tree hashes it checks are stored apart from the events, so an edited or
// deleted older event goes unnoticed until a full Verify (or an offline
// VerifyExport), which reads everything. Run one now and then (the README
// says so); the incremental run is for the nightly check of what is new.
//
// It returns the report (From is the first event checked) and the signed
// note of the newest checkpoint the run vouched for, to keep for the next
// run (the given one when no newer checkpoint was covered).
func (l *Log) VerifySince(ctx context.Context, verified []byte) (Report, []byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if verified == nil {
		cks, err := l.allCheckpoints(ctx)
		if err != nil {
			return Report{}, nil, err
		}
		c := &chain{tree: newBuilder(0, nil), prev: zeroHash, next: 1, horizon: l.now().Add(futureSkew)}
		rep := Report{From: 1}
		if err := l.verifyFrom(ctx, c, cks, &rep); err != nil {
			return rep, nil, err
		}
		if err := l.checkHistory(ctx, 0, rep.TreeSize, &rep); err != nil {
			return rep, nil, err
		}
		return rep, coveredNote(cks, rep.Covered, nil), nil
	}
	base, err := ParseCheckpoint(verified, l.vkey)
	if err != nil {
		return Report{}, nil, bad(0, "the last verified checkpoint does not verify: %v", err)
	}
	m := base.Size
	rep := Report{From: m + 1, Covered: m}
	size, _, err := head(ctx, l.sqlDB)
	if err != nil {
		return rep, nil, fmt.Errorf("verify: %w", err)
	}
	if size < m {
		return rep, nil, bad(size+1, "log ends at seq %d but the last verified checkpoint covers %d events (tail truncated or database rolled back)", size, m)
	}
	hr := dbHashes{ctx: ctx, q: l.sqlDB, ph: l.ph}
	c := &chain{tree: newBuilder(m, nil), prev: zeroHash, next: m + 1, horizon: l.now().Add(futureSkew)}
	if m > 0 {
		idx := frontierIndexes(m)
		hs, err := hr.ReadHashes(idx)
		if errors.Is(err, errHashMissing) {
			return rep, nil, bad(m, "tree hashes under the last verified checkpoint (size %d) are missing (log rewritten)", m)
		}
		if err != nil {
			return rep, nil, fmt.Errorf("verify: %w", err)
		}
		for i, x := range idx {
			c.tree.frontier[x] = hs[i]
		}
		if root, err := c.tree.root(); err != nil || root != base.Root {
			return rep, nil, bad(m, "the stored tree at size %d no longer has the root of the last verified checkpoint (log rewritten, or rolled back and regrown)", m)
		}
		evs, prevs, err := l.readEvents(ctx, m, m)
		if err != nil {
			return rep, nil, err
		}
		if len(evs) != 1 || evs[0].Seq != m {
			return rep, nil, bad(m, "event %d, the last one verified, is missing (row deleted)", m)
		}
		canon := Canonical(evs[0], prevs[0])
		if hashHex(canon) != evs[0].Hash {
			return rep, nil, bad(m, "content does not match its hash (a field was changed or rows were swapped)")
		}
		proof, err := tlog.ProveRecord(m, m-1, hr)
		if err != nil {
			return rep, nil, bad(m, "tree hashes needed to prove event %d are missing (log rewritten): %v", m, err)
		}
		if err := tlog.CheckRecord(proof, m, base.Root, m-1, tlog.RecordHash(canon)); err != nil {
			return rep, nil, bad(m, "event %d is not the one the last verified checkpoint holds (log rewritten)", m)
		}
		c.prev, c.last = evs[0].Hash, evs[0].Time
	}
	cks, err := l.checkpointsAfter(ctx, m)
	if err != nil {
		return rep, nil, err
	}
	var newer []knownCheckpoint
	for _, k := range cks {
		if k.ck.Size > m {
			newer = append(newer, k)
			continue
		}
		// A witness's checkpoint at or below the verified size must be a
		// prefix of the verified tree.
		if k.ck.Size == m && k.ck.Root != base.Root {
			return rep, nil, bad(m, "the %s checkpoint at size %d does not match the last verified one", k.where, m)
		}
		if k.ck.Size > 0 && k.ck.Size < m {
			p, err := tlog.ProveTree(m, k.ck.Size, hr)
			if err != nil || tlog.CheckTree(p, m, base.Root, k.ck.Size, k.ck.Root) != nil {
				return rep, nil, bad(k.ck.Size, "the %s checkpoint at size %d is not a prefix of the last verified checkpoint (log rewritten)", k.where, k.ck.Size)
			}
		}
	}
	if err := l.verifyFrom(ctx, c, newer, &rep); err != nil {
		return rep, nil, err
	}
	// The witnesses' checkpoints at or below m were checked by the run
	// that vouched for the verified one; those since, newest first, are
	// checked now, so a nightly run lists only what is new.
	if err := l.checkHistory(ctx, m, rep.TreeSize, &rep); err != nil {
		return rep, nil, err
	}
	return rep, coveredNote(newer, rep.Covered, verified), nil
}

// checkpointsAfter returns the stored checkpoints larger than size and each
// witness's newest, signature-checked, in size order.
func (l *Log) checkpointsAfter(ctx context.Context, size int64) ([]knownCheckpoint, error) {
	rows, err := l.sqlDB.QueryContext(ctx, "SELECT size, note FROM audit_checkpoints WHERE size > "+l.ph(1)+" ORDER BY size", size)
	if err != nil {
		return nil, fmt.Errorf("verify: read checkpoints: %w", err)
	}
	defer rows.Close()
	var out []knownCheckpoint
	for rows.Next() {
		var n int64
		var signed []byte
		if err := rows.Scan(&n, &signed); err != nil {
			return nil, fmt.Errorf("verify: read checkpoints: %w", err)
		}
		ck, err := ParseCheckpoint(signed, l.vkey)
		if err != nil {
			return nil, bad(n, "stored checkpoint at size %d: %v", n, err)
		}
		if ck.Size != n {
			return nil, bad(n, "stored checkpoint row %d holds a checkpoint of size %d", n, ck.Size)
		}
		out = append(out, knownCheckpoint{where: "stored", ck: ck, note: signed})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("verify: read checkpoints: %w", err)
	}
	ws, err := l.witnessed(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	out = append(out, ws...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].ck.Size < out[j].ck.Size })
	return out, nil
}

// coveredNote is the note of the checkpoint of the given size among cks, or
// def when none is that size.
func coveredNote(cks []knownCheckpoint, size int64, def []byte) []byte {
	for i := len(cks) - 1; i >= 0; i-- {
		if cks[i].ck.Size == size && cks[i].note != nil {
			return cks[i].note
		}
	}
	return def
}
