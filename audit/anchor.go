package audit

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/mod/sumdb/tlog"
)

// A Witness keeps the newest signed checkpoint somewhere the database
// administrator cannot rewrite: an object-locked S3 bucket, a directory on
// another machine or mount (see package audit/witness). The log hands every
// checkpoint it signs to its witnesses, and at start-up, in Verify and
// before each signature it refuses a log that is shorter than, or not an
// extension of, what they hold. Verify and VerifySince also check every
// older checkpoint a witness still holds (History): whoever holds the
// signing key and can add to the witness can rewrite the log and sign a
// newer checkpoint over it, but not take back the older ones that commit to
// the original. Implementations must be safe for concurrent use by several
// processes.
type Witness interface {
	// Latest returns the newest checkpoint the witness holds that accept
	// takes (accept checks the signature), or nil when it holds none.
	Latest(ctx context.Context, accept func(signed []byte) error) ([]byte, error)
	// Store keeps signed, a checkpoint of the given size, as the newest. A
	// witness never goes backwards: when it already holds a larger
	// checkpoint (one that accept takes: planted junk does not count) it
	// keeps it and returns an error wrapping ErrStale. Storing the
	// checkpoint it already holds again succeeds (and may refresh its
	// retention).
	Store(ctx context.Context, size int64, signed []byte, accept func(signed []byte) error) error
	// History calls fn with every checkpoint the witness holds whose size
	// is above after, newest first, as a Held: the size (and root) it is
	// kept under, and the note itself where the witness read it. It does
	// not check them, nor pass over any that look wrong: the caller does,
	// and a witness that holds a checkpoint the log does not match is
	// exactly what it looks for. It stops at, and returns, the first error
	// fn returns. A witness that keeps only its newest checkpoint passes
	// what it has.
	History(ctx context.Context, after int64, fn func(Held) error) error
	// Keep keeps signed, a checkpoint of the given size, as evidence
	// beside the newest, whatever its size, and never removes it: the
	// tree a writer committed before it found the log rewritten under it
	// (Log.preserveOwn). Store refuses that tree once another writer
	// sharing the database has signed the rewrite, larger or of the same
	// size, and nothing else would then outlive the process (review h29i).
	Keep(ctx context.Context, size int64, signed []byte) error
	// Evidence calls fn with every checkpoint kept by Keep, each read
	// (Signed set), in no particular order. Planted junk is passed too:
	// the caller checks.
	Evidence(ctx context.Context, fn func(Held) error) error
	// String names the witness in messages.
	String() string
}

// Held is one checkpoint a witness holds, as its History hands it over.
//
// A witness names what it keeps after the checkpoint's size and, since this
// release, its tree root (NamedRoot); a name written by an earlier release
// carries only the size. History reads the note (Signed) of the newest
// checkpoint it passes and of every one whose name carries no root; for the
// others it may pass the name alone, which spares a read per checkpoint (a
// busy log leaves thousands a day). The name is as good as the note for
// what verification looks for: nobody, the holder of the vault's S3
// credentials included, can remove or rename a locked genuine object, and
// the vault names each one after its own content, so the name of a genuine
// checkpoint still commits to the original root however the log is
// rewritten later. A name forged by someone who can add objects can only
// raise an alarm (its root does not match the log), never hide the genuine
// ones beside it.
type Held struct {
	Size int64 // the size the checkpoint is kept under
	// Root is the tree root the name commits to, when NamedRoot.
	Root      tlog.Hash
	NamedRoot bool
	// Signed is the checkpoint note, nil when the witness did not read it
	// (only ever with NamedRoot).
	Signed []byte
}

// ErrStale is wrapped by Witness.Store when the witness already holds a
// newer checkpoint than the one offered.
var ErrStale = errors.New("audit: the witness holds a newer checkpoint")

// ErrRolledBack is wrapped (with ErrUnavailable and a *VerifyError naming the
// first missing or inconsistent event) by every append and checkpoint after
// the running log noticed that the database no longer extends the newest
// checkpoint it knows: events were removed or rewritten under it.
var ErrRolledBack = errors.New("audit log truncated or rewritten under the running server")

// CheckpointSize reads the tree size of a checkpoint note without checking
// its signature, for witnesses that order what they keep.
func CheckpointSize(signed []byte) (int64, error) {
	lines := strings.SplitN(string(signed), "\n", 3)
	if len(lines) < 3 {
		return 0, fmt.Errorf("%w: not a checkpoint", ErrInvalid)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return 0, fmt.Errorf("%w: checkpoint size %q", ErrInvalid, lines[1])
	}
	return n, nil
}

// CheckpointSizeRoot reads the tree size and root of a checkpoint note
// without checking its signature, for witnesses that name what they keep
// after both.
func CheckpointSizeRoot(signed []byte) (int64, tlog.Hash, error) {
	n, err := CheckpointSize(signed)
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	lines := strings.SplitN(string(signed), "\n", 4)
	if len(lines) < 4 {
		return 0, tlog.Hash{}, fmt.Errorf("%w: not a checkpoint", ErrInvalid)
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		return 0, tlog.Hash{}, fmt.Errorf("%w: checkpoint root %q", ErrInvalid, lines[2])
	}
	return n, tlog.Hash(raw), nil
}

// anchor is the newest checkpoint the running log knows to be genuine: the
// larger of what it found at start-up (database, witnesses) and what it
// signed since. Every later tree must extend it.
type anchor struct {
	mu    sync.Mutex
	ck    Checkpoint
	where string
	// own is the tree as this process last committed it (size and root,
	// from its in-memory frontier): the events it wrote since the newest
	// checkpoint are anchored by nothing else. Whoever rewrites those, and
	// adds a few so that the log does not look shorter, must still leave a
	// tree that extends own, or the writer and the checkpointer halt.
	own Checkpoint
	// halted is set once a rollback was seen; appends and checkpoints then
	// fail with it until the process restarts (and start-up refuses). It
	// is read on every append, hence atomic.
	halted atomic.Pointer[error]
}

func (a *anchor) get() (Checkpoint, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ck, a.where
}

func (a *anchor) raise(ck Checkpoint, where string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ck.Size > a.ck.Size {
		a.ck, a.where = ck, where
	}
}

func (a *anchor) getOwn() Checkpoint {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.own
}

func (a *anchor) setOwn(size int64, root tlog.Hash) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if size > a.own.Size {
		a.own = Checkpoint{Size: size, Root: root}
	}
}

func (a *anchor) haltErr() error {
	if p := a.halted.Load(); p != nil {
		return *p
	}
	return nil
}

// halt stops appends and signatures for good and says so loudly, once.
func (l *Log) halt(verr *VerifyError) error {
	err := fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrRolledBack, verr)
	first := l.anchor.halted.CompareAndSwap(nil, &err)
	if !first {
		err = *l.anchor.halted.Load()
	}
	if first {
		// Whatever the halt saw, the tree this process committed is the
		// evidence that outlives it (preserveOwn). In the background, on
		// a deadline of its own: the caller may hold the database's write
		// lock (SQLite) or be out of time.
		if own := l.anchor.getOwn(); own.Size > 0 && l.signer != nil {
			l.preserving.Add(1)
			go func() {
				defer l.preserving.Done()
				ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
				defer cancel()
				l.preserveOwn(ctx, own)
			}()
		}
		l.m.ckFailures.Inc()
		l.m.rolledBack.Set(1)
		l.logger.Error("AUDIT LOG ROLLED BACK OR REWRITTEN UNDER THE RUNNING SERVER: refusing every audit append and checkpoint; "+
			"requests that need the audit log fail closed until an operator investigates with `vaultd audit verify`",
			"first_bad_seq", verr.Seq, "reason", verr.Reason)
	}
	return err
}

// haltOn halts when err says the database went backwards.
func (l *Log) haltOn(err error) {
	var verr *VerifyError
	if errors.As(err, &verr) && !errors.Is(err, ErrRolledBack) {
		l.halt(verr)
	}
}

// checkHead is called by the writer with the head it read inside its
// transaction: a log shorter than what this process committed or knows to
// be checkpointed was truncated under it.
func (l *Log) checkHead(size int64) error {
	if err := l.anchor.haltErr(); err != nil {
		return err
	}
	if l.tree != nil && size < l.tree.size {
		return bad(size+1, "log ends at seq %d but this server committed up to seq %d: events %d..%d were removed under it",
			size, l.tree.size, size+1, l.tree.size)
	}
	if ck, where := l.anchor.get(); size < ck.Size {
		return bad(size+1, "log ends at seq %d but the %s checkpoint covers %d events: events %d..%d were removed",
			size, where, ck.Size, size+1, ck.Size)
	}
	return nil
}

// errHashMissing marks a stored tree hash that is not there: deleted, not an
// outage.
var errHashMissing = errors.New("tree hash missing")

// adopt checks that the database extends ck (the log is at least as long and
// its stored tree at ck.Size has ck's root) and raises the anchor to it. A
// mismatch is a *VerifyError; a database failure is returned as is.
func (l *Log) adopt(ctx context.Context, ck Checkpoint, where string) error {
	size, _, err := head(ctx, l.sqlDB)
	if err != nil {
		return err
	}
	if size < ck.Size {
		return bad(size+1, "log ends at seq %d but the %s checkpoint covers %d events (tail truncated or database rolled back)",
			size, where, ck.Size)
	}
	if ck.Size > 0 {
		root, err := tlog.TreeHash(ck.Size, dbHashes{ctx: ctx, q: l.sqlDB, ph: l.ph})
		if errors.Is(err, errHashMissing) {
			return bad(ck.Size, "the log's tree hashes up to the %s checkpoint (size %d) are missing (log rewritten)", where, ck.Size)
		}
		if err != nil {
			return err
		}
		if root != ck.Root {
			return bad(ck.Size, "the %s checkpoint at size %d does not match the log's tree (log rewritten, or rolled back and regrown)", where, ck.Size)
		}
	}
	l.anchor.raise(ck, where)
	return nil
}

// visibleCheckpoints returns the newest checkpoint stored in the database
// and each witness's newest, signature-checked. A checkpoint that does not
// verify is an error: it is either forged or signed with another key.
func (l *Log) visibleCheckpoints(ctx context.Context) ([]knownCheckpoint, error) {
	var out []knownCheckpoint
	var signed []byte
	var size int64
	err := l.sqlDB.QueryRowContext(ctx, "SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1").Scan(&size, &signed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("read latest checkpoint: %w", err)
	default:
		ck, err := ParseCheckpoint(signed, l.vkey)
		if err != nil {
			return nil, bad(size, "stored checkpoint at size %d: %v", size, err)
		}
		out = append(out, knownCheckpoint{where: "stored", ck: ck, note: signed})
	}
	ws, err := l.witnessed(ctx)
	if err != nil {
		return nil, err
	}
	return append(out, ws...), nil
}

// witnessed returns each witness's newest checkpoint.
func (l *Log) witnessed(ctx context.Context) ([]knownCheckpoint, error) {
	var out []knownCheckpoint
	for _, w := range l.opts.Witnesses {
		signed, err := w.Latest(ctx, l.acceptCheckpoint)
		if err != nil {
			return nil, fmt.Errorf("read checkpoint witness %s: %w", w, err)
		}
		if signed == nil {
			continue
		}
		ck, err := ParseCheckpoint(signed, l.vkey)
		if err != nil {
			return nil, bad(0, "witness %s holds a checkpoint that does not verify: %v", w, err)
		}
		out = append(out, knownCheckpoint{where: "witnessed (" + w.String() + ")", ck: ck, note: signed})
	}
	return out, nil
}

func (l *Log) acceptCheckpoint(signed []byte) error {
	_, err := ParseCheckpoint(signed, l.vkey)
	return err
}

// startupCheck refuses a log shorter than, or inconsistent with, any
// checkpoint the writer can see, and brings witnesses that lag (newly
// configured, or down at the last checkpoint) up to the newest.
func (l *Log) startupCheck(ctx context.Context) error {
	cks, err := l.visibleCheckpoints(ctx)
	if err != nil {
		return err
	}
	for _, k := range cks {
		if err := l.adopt(ctx, k.ck, k.where); err != nil {
			return err
		}
	}
	if err := l.checkEvidence(ctx); err != nil {
		return err
	}
	ck, _ := l.anchor.get()
	if ck.Size == 0 {
		return nil
	}
	signed, err := l.signedAt(ctx, ck)
	if err != nil {
		return err
	}
	l.lastWitness.Store(l.now().UnixMicro())
	_ = l.witness(ctx, ck.Size, signed)
	return nil
}

// signedAt returns a signed note for ck: the stored one, or a fresh
// signature over the same size and root (the tree was checked to match).
func (l *Log) signedAt(ctx context.Context, ck Checkpoint) ([]byte, error) {
	var signed []byte
	err := l.sqlDB.QueryRowContext(ctx, "SELECT note FROM audit_checkpoints WHERE size = "+l.ph(1), ck.Size).Scan(&signed)
	if err == nil {
		if got, perr := ParseCheckpoint(signed, l.vkey); perr == nil && got == ck {
			return signed, nil
		}
	} else if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read checkpoint %d: %w", ck.Size, err)
	}
	return signCheckpoint(l.signer, ck.Size, ck.Root)
}

// witness hands a checkpoint to every witness. A witness that is down is
// logged and counted, not fatal: the checkpoint is in the database and the
// next one goes to the witness again. A witness that holds a newer
// checkpoint than this one is checked against the log right away.
func (l *Log) witness(ctx context.Context, size int64, signed []byte) error {
	var errs []error
	for _, w := range l.opts.Witnesses {
		err := w.Store(ctx, size, signed, l.acceptCheckpoint)
		if errors.Is(err, ErrStale) {
			// Another instance sharing the database may simply have been
			// faster; or the database lost what the witness saw.
			err = l.checkWitnessAhead(ctx, w)
		}
		if err != nil {
			l.m.ckFailures.Inc()
			l.logger.Error("checkpoint witness failed", "witness", w.String(), "size", size, "err", err)
			errs = append(errs, fmt.Errorf("witness %s: %w", w, err))
		}
	}
	return errors.Join(errs...)
}

func (l *Log) checkWitnessAhead(ctx context.Context, w Witness) error {
	signed, err := w.Latest(ctx, l.acceptCheckpoint)
	if err != nil || signed == nil {
		return err
	}
	ck, err := ParseCheckpoint(signed, l.vkey)
	if err != nil {
		return err
	}
	err = l.adopt(ctx, ck, "witnessed ("+w.String()+")")
	var verr *VerifyError
	if errors.As(err, &verr) {
		return l.halt(verr)
	}
	return err
}

// checkExtendsOwn proves that the tree of the given size and root, read
// from hr (the database), extends own, what this process last committed;
// without it, a rewrite of the events this process wrote since the newest
// checkpoint that also lengthened the log would be taken for another
// process's appends, and signed. A failure halts the log, and halt keeps
// the tree this process committed (preserveOwn).
func (l *Log) checkExtendsOwn(ctx context.Context, size int64, root tlog.Hash, own Checkpoint, hr tlog.HashReader) error {
	if own.Size == 0 {
		return nil
	}
	var verr *VerifyError
	switch {
	case size < own.Size:
		verr = bad(size+1, "log ends at seq %d but this server committed up to seq %d: events %d..%d were removed under it",
			size, own.Size, size+1, own.Size)
	case size == own.Size:
		if root != own.Root {
			verr = bad(size, "the tree at size %d is not the one this server committed (log rewritten under the running server)", size)
		}
	default:
		proof, err := tlog.ProveTree(size, own.Size, hr)
		if errors.Is(err, errHashMissing) {
			verr = bad(own.Size, "tree hashes needed to extend what this server committed (size %d) are missing (log rewritten under the running server)", own.Size)
		} else if err != nil {
			return fmt.Errorf("prove %d extends this server's commit at %d: %w", size, own.Size, err)
		} else if err := tlog.CheckTree(proof, size, root, own.Size, own.Root); err != nil {
			verr = bad(own.Size, "the tree at size %d is not an extension of what this server committed up to seq %d (log rewritten under the running server)", size, own.Size)
		}
	}
	if verr == nil {
		return nil
	}
	return l.halt(verr)
}

// preserveOwn signs the tree this process committed and stores it where it
// can: the database (whoever rewrote the log may delete it again) and every
// witness, which keeps it for good. Without this the halt would last only
// as long as the process: the log as rewritten extends every checkpoint
// signed before, so a restart would take it. With it, start-up refuses the
// log and verify names the first event that differs.
func (l *Log) preserveOwn(ctx context.Context, own Checkpoint) {
	signed, err := signCheckpoint(l.signer, own.Size, own.Root)
	if err != nil {
		l.logger.Error("audit: cannot sign the tree this server committed", "size", own.Size, "err", err)
		return
	}
	// The witnesses first: the database is where the rewrite happened, and
	// a table held locked there must not use up the deadline (review h29i).
	// Each keeps it as evidence, which nothing takes back; and as its newest
	// where it can, so a restart reads it first. A refused Store is no
	// failure here (another instance signed the rewrite, larger or of the
	// same size), and nothing the witness holds is adopted: it is the
	// rewritten log's.
	var errs []error
	for _, w := range l.opts.Witnesses {
		if err := w.Keep(ctx, own.Size, signed); err != nil {
			errs = append(errs, fmt.Errorf("witness %s: keep: %w", w, err))
			continue
		}
		_ = w.Store(ctx, own.Size, signed, l.acceptCheckpoint)
	}
	if _, err := l.sqlDB.ExecContext(ctx,
		"INSERT INTO audit_checkpoints (size, root, note, created_us) VALUES ("+l.ph(1)+","+l.ph(2)+","+l.ph(3)+","+l.ph(4)+") ON CONFLICT (size) DO NOTHING",
		own.Size, own.Root[:], string(signed), l.now().UnixMicro()); err != nil {
		l.logger.Error("audit: cannot store the checkpoint of the tree this server committed", "size", own.Size, "err", err)
	}
	switch {
	case len(l.opts.Witnesses) == 0:
		l.logger.Error("audit: the tree this server committed is signed and stored in the database only (no witness is configured); "+
			"whoever rewrote the log can remove it there", "size", own.Size)
	case len(errs) > 0:
		l.logger.Error("audit: the checkpoint of the tree this server committed was not kept by every witness", "size", own.Size, "err", errors.Join(errs...))
	default:
		l.logger.Error("audit: the tree this server committed is signed and kept by every witness; start-up and verify will refuse the changed log", "size", own.Size)
	}
}

// checkEvidence refuses a log that does not extend a checkpoint a witness
// keeps as evidence (preserveOwn). Evidence that does not verify is planted
// junk (write access to the witness adds objects) and is passed over with
// a warning here; verification reports it.
func (l *Log) checkEvidence(ctx context.Context) error {
	for _, w := range l.opts.Witnesses {
		where := "kept as evidence (" + w.String() + ")"
		err := w.Evidence(ctx, func(h Held) error {
			ck, err := ParseCheckpoint(h.Signed, l.vkey)
			if err != nil || ck.Size != h.Size {
				l.logger.Warn("audit: a witness holds evidence that is not a checkpoint of this vault; passed over", "witness", w.String(), "size", h.Size, "err", err)
				return nil
			}
			return l.adopt(ctx, ck, where)
		})
		if err != nil {
			var verr *VerifyError
			if errors.As(err, &verr) {
				return verr
			}
			return fmt.Errorf("read the evidence witness %s keeps: %w", w, err)
		}
	}
	return nil
}

// checkExtends is called before signing a tree of the given size and root:
// it must extend the anchor, proven with a consistency proof over the
// stored hashes. A failure halts the log.
func (l *Log) checkExtends(ctx context.Context, size int64, root tlog.Hash) error {
	ck, where := l.anchor.get()
	if ck.Size == 0 {
		return nil
	}
	if size < ck.Size {
		return l.halt(bad(size+1, "log ends at seq %d but the %s checkpoint covers %d events: events %d..%d were removed under the running server",
			size, where, ck.Size, size+1, ck.Size))
	}
	if size == ck.Size {
		if root != ck.Root {
			return l.halt(bad(size, "the tree at size %d no longer has the root of the %s checkpoint (log rewritten under the running server)", size, where))
		}
		return nil
	}
	proof, err := tlog.ProveTree(size, ck.Size, dbHashes{ctx: ctx, q: l.sqlDB, ph: l.ph})
	if errors.Is(err, errHashMissing) {
		return l.halt(bad(ck.Size, "tree hashes needed to extend the %s checkpoint (size %d) are missing (log rewritten under the running server)", where, ck.Size))
	}
	if err != nil {
		return fmt.Errorf("prove %d extends %d: %w", size, ck.Size, err)
	}
	if err := tlog.CheckTree(proof, size, root, ck.Size, ck.Root); err != nil {
		return l.halt(bad(ck.Size, "the tree at size %d is not an extension of the %s checkpoint at size %d (log rewritten under the running server)", size, where, ck.Size))
	}
	return nil
}
