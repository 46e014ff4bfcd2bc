package audit

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// checkHistory checks every checkpoint the witnesses hold above floor
// against the log that verifyFrom has just checked up to size: each must
// verify with the checkpoint key, be kept under its own size, and be a
// prefix of the log. The newest alone is not enough: whoever holds the
// signing key and can add to a witness (the vault's S3 credentials add
// objects to the object-locked bucket) can rewrite the log, sign a larger
// checkpoint over it and make that the newest; the older checkpoints, which
// nobody can remove, still commit to the original.
//
// A checkpoint whose name carries its root (Held.NamedRoot) and that the
// witness did not read is checked by that root alone, without its
// signature: nobody can remove or rename a locked genuine object, and the
// vault names each genuine object after its own content, so a genuine
// object's name still commits to the original root; a name forged by
// someone who can add objects can only raise an alarm here, never hide the
// genuine ones. So the check is as strong as reading each object, at the
// cost of a listing instead of one read per checkpoint ever witnessed. The
// newest each witness passes is always read and its signature checked (as
// is every one named without a root: written by an earlier release), and a
// note that was read must match the root its name carries.
//
// The roots are read from the stored tree hashes, which verifyFrom checked
// against the events for every size above floor (and, in an incremental
// run, tied to the verified checkpoint at floor), so each check is a few
// primary-key lookups, and one checkpoint at a time is held in memory
// however many a witness keeps. A failure is a *VerifyError naming the
// witness and the size.
func (l *Log) checkHistory(ctx context.Context, floor, size int64, rep *Report) error {
	hr := dbHashes{ctx: ctx, q: l.sqlDB, ph: l.ph}
	for _, w := range l.opts.Witnesses {
		where := "witnessed (" + w.String() + ")"
		first := true
		err := w.History(ctx, floor, func(h Held) error {
			newest := first
			first = false
			if err := l.checkHeld(ctx, hr, w, where, h, newest, size); err != nil {
				return err
			}
			rep.Witnessed++
			return nil
		})
		if err == nil {
			// Evidence is checked whatever floor is: it may have been kept
			// after an incremental run verified the rewritten log past it.
			// It is rare (one per halt) and always read.
			where := "kept as evidence (" + w.String() + ")"
			err = w.Evidence(ctx, func(h Held) error {
				if h.Signed == nil {
					return fmt.Errorf("verify: witness %s passed evidence at size %d without reading it", w, h.Size)
				}
				if err := l.checkHeld(ctx, hr, w, where, h, false, size); err != nil {
					return err
				}
				rep.Evidence++
				return nil
			})
		}
		if err != nil {
			var verr *VerifyError
			if errors.As(err, &verr) {
				return verr
			}
			return fmt.Errorf("verify: read the checkpoints witness %s holds: %w", w, err)
		}
	}
	return nil
}

// checkHeld checks one checkpoint a witness holds against the log checked
// up to size (see checkHistory).
func (l *Log) checkHeld(ctx context.Context, hr tlog.HashReader, w Witness, where string, h Held, newest bool, size int64) error {
	ck := Checkpoint{Size: h.Size, Root: h.Root}
	switch {
	case h.Signed != nil:
		var err error
		ck, err = ParseCheckpoint(h.Signed, l.vkey)
		if err != nil {
			return bad(0, "%s holds a checkpoint at size %d that does not verify with this vault's checkpoint key "+
				"(written by someone who can write the witness, or the key was changed): %v", w, h.Size, err)
		}
		if ck.Size != h.Size {
			return bad(0, "%s holds a checkpoint of size %d under the name of size %d (written by someone who can write the witness)",
				w, ck.Size, h.Size)
		}
		if h.NamedRoot && ck.Root != h.Root {
			return bad(0, "%s holds a checkpoint of size %d under the name of another root (written by someone who can write the witness)",
				w, h.Size)
		}
	case !h.NamedRoot:
		return fmt.Errorf("verify: witness %s passed a checkpoint at size %d with neither its note nor its root", w, h.Size)
	case newest:
		// The newest is the one a forger would most want taken on its
		// name: its note is always checked.
		return fmt.Errorf("verify: witness %s passed its newest checkpoint (size %d) without reading it", w, h.Size)
	}
	if ck.Size == 0 {
		return nil
	}
	if ck.Size > size {
		// Signed after the walk ended (the server runs on), or the log
		// was cut back below it.
		now, _, err := head(ctx, l.sqlDB)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if now < ck.Size {
			return bad(now+1, "log ends at seq %d but the %s checkpoint covers %d events (tail truncated or database rolled back)",
				now, where, ck.Size)
		}
	}
	root, err := tlog.TreeHash(ck.Size, hr)
	if errors.Is(err, errHashMissing) {
		return bad(ck.Size, "the log's tree hashes up to the %s checkpoint (size %d) are missing (log rewritten)", where, ck.Size)
	}
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if root != ck.Root {
		return bad(ck.Size, "%s checkpoint at size %d does not match the log's tree root (log rewritten or rolled back and regrown)",
			where, ck.Size)
	}
	return nil
}
