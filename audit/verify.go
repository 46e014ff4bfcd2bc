package audit

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/crvault/crvault/audit/sqldb"
)

// VerifyError names the first bad entry found by Verify or VerifyExport.
// Seq is the first sequence number that is wrong or missing (0 when the
// problem is not tied to an entry, e.g. a bad checkpoint signature).
type VerifyError struct {
	Seq    int64
	Reason string
}

func (e *VerifyError) Error() string {
	if e.Seq == 0 {
		return "audit log verification failed: " + e.Reason
	}
	return fmt.Sprintf("audit log verification failed at seq %d: %s", e.Seq, e.Reason)
}

func bad(seq int64, format string, args ...any) *VerifyError {
	return &VerifyError{Seq: seq, Reason: fmt.Sprintf(format, args...)}
}

// Report summarises a successful verification.
type Report struct {
	From        int64  `json:"from"` // first event checked
	To          int64  `json:"to"`   // last event checked
	TreeSize    int64  `json:"tree_size"`
	Root        string `json:"root"`        // base64 tree root at TreeSize
	Checkpoints int    `json:"checkpoints"` // checkpoints whose signature and root matched
	// Covered is the size of the largest checkpoint that matched: events
	// after it are chained but not yet vouched for by a signature.
	Covered int64 `json:"covered"`
	// Witnessed counts the checkpoints held by the witnesses, older ones
	// included, that matched the log: all of them in Verify, those after
	// the last verified checkpoint in VerifySince. Each witness's newest,
	// and any named without its root, also had its signature checked; the
	// others were matched by the root their name carries (see Held).
	Witnessed int `json:"witnessed"`
	// Evidence counts the checkpoints witnesses keep as evidence of a
	// writer's own tree (Witness.Keep), all of them in every run; each was
	// read and its signature checked.
	Evidence int `json:"evidence,omitempty"`
}

// String says what a verification checked, in words: "events 1 to 69
// (69 in the tree), 3 stored checkpoints and 5 witnessed ones matched,
// signed up to event 69". A run with nothing new says so.
func (r Report) String() string {
	events := "no new events"
	if r.To >= r.From {
		events = fmt.Sprintf("events %d to %d", r.From, r.To)
	}
	s := fmt.Sprintf("%s (%d in the tree), %d stored and %d witnessed checkpoints matched, signed up to event %d",
		events, r.TreeSize, r.Checkpoints, r.Witnessed, r.Covered)
	if r.Evidence > 0 {
		s += fmt.Sprintf(", %d kept as evidence matched", r.Evidence)
	}
	if r.Covered < r.TreeSize {
		s += fmt.Sprintf("; the %d after it are not signed yet", r.TreeSize-r.Covered)
	}
	return s
}

// chain checks one event after another: numbering, hash chain, content hash,
// time order, and grows the Merkle tree.
type chain struct {
	tree *builder
	prev string
	next int64
	// last is the time of the event before next (zero: unknown); times
	// never go backwards along the log, and Query turns time ranges into
	// ranges of sequence numbers on that promise.
	last time.Time
	// horizon, when set, is the latest time an event may bear: one dated
	// after it was written with a clock far ahead, or forged, and would
	// drag every later event's time up to it.
	horizon time.Time
	// progress, when set, is told the last event checked after each page.
	progress func(checked int64)
}

// futureSkew is how far ahead of the verifier's clock an event's time may
// be: instances sharing a log keep their clocks within seconds of each
// other; a day is ample.
const futureSkew = 24 * time.Hour

func (c *chain) add(e Event, prevHash string) ([]tlog.Hash, *VerifyError) {
	switch {
	case e.Seq > c.next:
		return nil, bad(c.next, "event missing: next stored event is seq %d (row deleted)", e.Seq)
	case e.Seq < c.next:
		return nil, bad(c.next, "event seq %d out of order or duplicated", e.Seq)
	case !c.last.IsZero() && e.Time.Before(c.last):
		return nil, bad(e.Seq, "dated %s, before the event it follows (%s): times never go backwards along the log (event forged or clock set back)",
			e.Time.UTC().Format(time.RFC3339Nano), c.last.UTC().Format(time.RFC3339Nano))
	case !c.horizon.IsZero() && e.Time.After(c.horizon):
		return nil, bad(e.Seq, "dated %s, in the future (event forged, or written with a clock far ahead)", e.Time.UTC().Format(time.RFC3339Nano))
	}
	canon := Canonical(e, prevHash)
	if hashHex(canon) != e.Hash {
		return nil, bad(e.Seq, "content does not match its hash (a field was changed or rows were swapped)")
	}
	if prevHash != c.prev {
		return nil, bad(e.Seq, "prev_hash does not match the hash of seq %d (rows reordered, removed or forged)", e.Seq-1)
	}
	hs, err := c.tree.add(tlog.RecordHash(canon))
	if err != nil {
		return nil, bad(e.Seq, "tree: %v", err)
	}
	c.prev, c.next, c.last = e.Hash, e.Seq+1, e.Time
	return hs, nil
}

type knownCheckpoint struct {
	where string
	ck    Checkpoint
	note  []byte // the signed note
}

func checkRoots(cks []knownCheckpoint, tree *builder, rep *Report) *VerifyError {
	for _, k := range cks {
		if k.ck.Size != tree.size {
			continue
		}
		root, err := tree.root()
		if err != nil {
			return bad(tree.size, "tree root: %v", err)
		}
		if root != k.ck.Root {
			return bad(tree.size, "%s checkpoint at size %d does not match the log's tree root (log rewritten or rolled back and regrown)", k.where, k.ck.Size)
		}
		rep.Checkpoints++
		rep.Covered = max(rep.Covered, k.ck.Size)
	}
	return nil
}

// Verify recomputes the hash chain and the Merkle tree from every event,
// compares them with the stored tree hashes, and checks the signature and
// root of every stored checkpoint and of every checkpoint the witnesses
// hold, older ones included: a log shorter than any of them fails, naming
// the first missing event. A failure is a *VerifyError naming the first bad
// entry.
func (l *Log) Verify(ctx context.Context) (Report, error) {
	return l.VerifyProgress(ctx, nil)
}

// VerifyProgress is Verify, telling progress (when not nil) how far it has
// got: the last event checked and the log's length when it started, after
// each page of events (a page is a few thousand), for a verification run in
// the background to show.
func (l *Log) VerifyProgress(ctx context.Context, progress func(checked, total int64)) (Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the page reader when verification fails early
	cks, err := l.allCheckpoints(ctx)
	if err != nil {
		return Report{}, err
	}
	c := &chain{tree: newBuilder(0, nil), prev: zeroHash, next: 1, horizon: l.now().Add(futureSkew)}
	if progress != nil {
		total, _, err := head(ctx, l.sqlDB)
		if err != nil {
			return Report{}, fmt.Errorf("verify: %w", err)
		}
		progress(0, total)
		c.progress = func(checked int64) { progress(checked, max(total, checked)) }
	}
	rep := Report{From: 1}
	if err := l.verifyFrom(ctx, c, cks, &rep); err != nil {
		return rep, err
	}
	err = l.checkHistory(ctx, 0, rep.TreeSize, &rep)
	return rep, err
}

// strays looks for rows that no walk of the chain would meet: events
// numbered below 1 (the chain starts at 1, yet Query would serve them) and,
// on SQLite, events after seq after whose text is not stored as text
// (SQLite holds a value of any type in any column, and a blob equal to a
// string compares unequal to it, so such an event drops out of every
// filtered query while its hash still verifies).
//
// A query that fails is an error of its own, not a *VerifyError: the log
// could not be read, which says nothing of whether it was altered.
func (l *Log) strays(ctx context.Context, after int64) error {
	var n int64
	var first sql.NullInt64
	if err := l.sqlDB.QueryRowContext(ctx, "SELECT COUNT(*), MIN(seq) FROM audit_events WHERE seq < 1").Scan(&n, &first); err != nil {
		return fmt.Errorf("verify: count events outside the numbering: %w", err)
	}
	if n > 0 {
		return bad(first.Int64, "%d events numbered below 1: written outside the log's writer", n)
	}
	if l.dialect != sqldb.SQLite {
		return nil // PostgreSQL's columns hold their declared types
	}
	cond := make([]string, 0, len(textColumns))
	for _, col := range textColumns {
		cond = append(cond, "typeof("+col+") <> 'text'")
	}
	q := "SELECT COUNT(*), MIN(seq) FROM audit_events WHERE seq > " + l.ph(1) + " AND (" + strings.Join(cond, " OR ") + ")"
	if err := l.sqlDB.QueryRowContext(ctx, q, after).Scan(&n, &first); err != nil {
		return fmt.Errorf("verify: check the types of events: %w", err)
	}
	if n > 0 {
		return bad(first.Int64, "%d events hold text stored as another type, which hides them from queries", n)
	}
	return nil
}

// textColumns are the text columns of audit_events.
var textColumns = []string{"actor", "actor_org", "action", "outcome", "case_id", "resource", "purpose", "ip", "request_id", "detail", "prev_hash", "hash"}

// verifyFrom checks every event after c's position to the end of the log
// against the stored tree hashes and the checkpoints cks, and fills rep.
// The caller cancels ctx when it returns.
func (l *Log) verifyFrom(ctx context.Context, c *chain, cks []knownCheckpoint, rep *Report) error {
	if err := l.strays(ctx, c.next-1); err != nil {
		return err
	}
	hashes := &hashIter{ctx: ctx, l: l, after: tlog.StoredHashCount(c.tree.size)}
	if verr := checkRoots(cks, c.tree, rep); verr != nil {
		return verr
	}
	pages, errc := l.eventPages(ctx, c.next-1)
	for pg := range pages {
		for i, e := range pg.evs {
			first := tlog.StoredHashCount(c.tree.size)
			hs, verr := c.add(e, pg.prevs[i])
			if verr != nil {
				return verr
			}
			for j, h := range hs {
				idx, got, ok, err := hashes.next()
				if err != nil {
					return err
				}
				if !ok || idx != first+int64(j) {
					return bad(e.Seq, "stored tree hash %d missing (event inserted outside the writer?)", first+int64(j))
				}
				if got != h {
					return bad(e.Seq, "stored tree hash %d differs from the recomputed one (event or tree rewritten)", idx)
				}
			}
			if verr := checkRoots(cks, c.tree, rep); verr != nil {
				return verr
			}
		}
		if c.progress != nil {
			c.progress(c.tree.size)
		}
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	size := c.tree.size
	if idx, _, ok, err := hashes.next(); err != nil {
		return err
	} else if ok {
		return bad(size+1, "stored tree hash %d lies beyond the last event %d (events removed from the tail)", idx, size)
	}
	for _, k := range cks {
		if k.ck.Size > size {
			return bad(size+1, "log ends at seq %d but the %s checkpoint covers %d events (tail truncated or database rolled back)", size, k.where, k.ck.Size)
		}
	}
	root, err := c.tree.root()
	if err != nil {
		return bad(size, "tree root: %v", err)
	}
	rep.To, rep.TreeSize, rep.Root = size, size, base64.StdEncoding.EncodeToString(root[:])
	return nil
}

const verifyPage = 5000

type eventPage struct {
	evs   []Event
	prevs []string
}

// eventPages reads the log in seq order on its own goroutine so reading
// rows and hashing them overlap. The reader stops when ctx ends; callers
// that return early cancel it.
func (l *Log) eventPages(ctx context.Context, after int64) (<-chan eventPage, <-chan error) {
	pages := make(chan eventPage, 2)
	errc := make(chan error, 1)
	go func() {
		defer close(pages)
		for {
			if err := ctx.Err(); err != nil {
				errc <- err
				return
			}
			// A page is read on a context without cancellation (ctx is
			// checked between pages): given one that can be cancelled,
			// the SQLite driver starts a goroutine and a channel for every
			// row it steps.
			rows, err := l.sqlDB.QueryContext(context.WithoutCancel(ctx), selectEvent+" WHERE seq > "+l.ph(1)+" ORDER BY seq LIMIT "+fmt.Sprint(verifyPage), after)
			if err != nil {
				errc <- err
				return
			}
			evs, prevs, err := scanEvents(rows, verifyPage)
			if err != nil {
				errc <- err
				return
			}
			if len(evs) > 0 {
				select {
				case pages <- eventPage{evs, prevs}:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			}
			if len(evs) < verifyPage {
				errc <- nil
				return
			}
			after = evs[len(evs)-1].Seq
		}
	}()
	return pages, errc
}

// allCheckpoints returns every stored checkpoint and each witness's newest,
// signature-checked, in size order.
func (l *Log) allCheckpoints(ctx context.Context) ([]knownCheckpoint, error) {
	return l.checkpointsAfter(ctx, -1)
}

// hashIter streams stored tree hashes in index order.
type hashIter struct {
	ctx   context.Context
	l     *Log
	after int64
	buf   []prefixHash
	done  bool
}

func (it *hashIter) next() (int64, tlog.Hash, bool, error) {
	if len(it.buf) == 0 && !it.done {
		if err := it.ctx.Err(); err != nil {
			return 0, tlog.Hash{}, false, fmt.Errorf("verify: read tree hashes: %w", err)
		}
		// Without cancellation for the driver's sake, as eventPages.
		rows, err := it.l.sqlDB.QueryContext(context.WithoutCancel(it.ctx), "SELECT idx, hash FROM audit_hashes WHERE idx >= "+it.l.ph(1)+" ORDER BY idx LIMIT 10000", it.after)
		if err != nil {
			return 0, tlog.Hash{}, false, fmt.Errorf("verify: read tree hashes: %w", err)
		}
		for rows.Next() {
			var p prefixHash
			var raw []byte
			if err := rows.Scan(&p.Index, &raw); err != nil {
				rows.Close()
				return 0, tlog.Hash{}, false, fmt.Errorf("verify: read tree hashes: %w", err)
			}
			if len(raw) != tlog.HashSize {
				rows.Close()
				return 0, tlog.Hash{}, false, bad(0, "stored tree hash %d has %d bytes", p.Index, len(raw))
			}
			p.Hash = tlog.Hash(raw)
			it.buf = append(it.buf, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, tlog.Hash{}, false, fmt.Errorf("verify: read tree hashes: %w", err)
		}
		if len(it.buf) < 10000 {
			it.done = true
		}
		if len(it.buf) > 0 {
			it.after = it.buf[len(it.buf)-1].Index + 1
		}
	}
	if len(it.buf) == 0 {
		return 0, tlog.Hash{}, false, nil
	}
	p := it.buf[0]
	it.buf = it.buf[1:]
	return p.Index, p.Hash, true, nil
}

// maxExportLine bounds one NDJSON line; events are small (fields are capped).
const maxExportLine = 1 << 20

// VerifyExport checks an export offline: the header, every event's hash and
// chain link, the Merkle tree rebuilt from the leaves against the signed
// checkpoint (which must verify with verifierKey), and, when oldCheckpoint
// is given, that the older tree is a prefix of the newer (its root is
// reproduced from the same leaves). A failure is a *VerifyError.
func VerifyExport(r io.Reader, checkpoint []byte, verifierKey string, oldCheckpoint []byte) (Report, error) {
	if len(bytes.TrimSpace(checkpoint)) == 0 {
		return Report{}, fmt.Errorf("%w: a checkpoint is required", ErrInvalid)
	}
	ck, err := ParseCheckpoint(checkpoint, verifierKey)
	if err != nil {
		return Report{}, bad(0, "checkpoint: %v", err)
	}
	cks := []knownCheckpoint{{where: "given", ck: ck}}
	if len(bytes.TrimSpace(oldCheckpoint)) > 0 {
		old, err := ParseCheckpoint(oldCheckpoint, verifierKey)
		if err != nil {
			return Report{}, bad(0, "old checkpoint: %v", err)
		}
		if old.Size > ck.Size {
			return Report{}, bad(0, "old checkpoint (size %d) is newer than the checkpoint (size %d): log rolled back", old.Size, ck.Size)
		}
		cks = append([]knownCheckpoint{{where: "old", ck: old}}, cks...)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxExportLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return Report{}, bad(0, "export header: %v", err)
		}
		return Report{}, bad(0, "export is empty")
	}
	var h exportHeader
	if err := strictJSON(sc.Bytes(), &h); err != nil || h.Format != ExportFormat || h.Version != 1 {
		return Report{}, bad(0, "not a %s v1 header (%v)", ExportFormat, err)
	}
	if h.From < 1 || h.To < h.From-1 {
		return Report{}, bad(0, "export header range %d..%d is invalid", h.From, h.To)
	}
	want := frontierIndexes(h.From - 1)
	if len(h.Prefix) != len(want) {
		return Report{}, bad(h.From, "export header has %d prefix hashes, a tree of size %d needs %d", len(h.Prefix), h.From-1, len(want))
	}
	c := &chain{tree: newBuilder(h.From-1, nil), prev: h.PrevHash, next: h.From, horizon: time.Now().Add(futureSkew)}
	for i, p := range h.Prefix {
		if p.Index != want[i] {
			return Report{}, bad(h.From, "export header prefix hash %d has index %d, want %d", i, p.Index, want[i])
		}
		c.tree.frontier[p.Index] = p.Hash
	}
	for _, k := range cks {
		if k.ck.Size < h.From-1 {
			return Report{}, bad(h.From, "export starts at seq %d, after the %s checkpoint's size %d: cannot check it", h.From, k.where, k.ck.Size)
		}
	}
	rep := Report{From: h.From}
	if verr := checkRoots(cks, c.tree, &rep); verr != nil {
		return rep, verr
	}
	for sc.Scan() {
		var x exportEvent
		if err := strictJSON(sc.Bytes(), &x); err != nil {
			return rep, bad(c.next, "unreadable export line: %v", err)
		}
		e, prev := x.event()
		if _, verr := c.add(e, prev); verr != nil {
			return rep, verr
		}
		if verr := checkRoots(cks, c.tree, &rep); verr != nil {
			return rep, verr
		}
	}
	if err := sc.Err(); err != nil {
		return rep, bad(c.next, "reading export: %v", err)
	}
	size := c.tree.size
	if size != h.To {
		return rep, bad(size+1, "export ends at seq %d but its header says %d (truncated)", size, h.To)
	}
	for _, k := range cks {
		if k.ck.Size > size {
			return rep, bad(size+1, "export ends at seq %d but the %s checkpoint covers %d events", size, k.where, k.ck.Size)
		}
	}
	root, err := c.tree.root()
	if err != nil {
		return rep, bad(size, "tree root: %v", err)
	}
	rep.To, rep.TreeSize, rep.Root = size, size, base64.StdEncoding.EncodeToString(root[:])
	return rep, nil
}

func strictJSON(b []byte, v any) error {
	if err := plainKeys(b); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

// plainKeys refuses an object, at any depth, with a key twice or a key
// other than lower-case ASCII letters, digits and underscores (every key
// of the export format). encoding/json matches keys without regard to
// case, Unicode's foldings included ("ſ" for "s"), and keeps the last of
// duplicates, so without this a line could show one actor to jq or a
// spreadsheet and be hashed, and pass, with another.
func plainKeys(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // in an object, the next string is a key
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top != nil && top.object {
					top.expect = true
				}
				stack = append(stack, &frame{object: t == '{', keys: map[string]bool{}, expect: t == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.object && top.expect {
				for _, r := range t {
					if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
						return fmt.Errorf("key %q is not one of the format's", t)
					}
				}
				if top.keys[t] {
					return fmt.Errorf("key %q appears twice", t)
				}
				top.keys[t] = true
				top.expect = false
				continue
			}
		}
		if top != nil && top.object {
			top.expect = true // a value was read; a key comes next
		}
	}
}
