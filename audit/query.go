package audit

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/crvault/crvault/audit/sqldb"
)

const selectEvent = "SELECT seq, at_us, actor, actor_org, action, outcome, case_id, resource, purpose, ip, request_id, detail, prev_hash, hash FROM audit_events"

func scanEvents(rows *sql.Rows, limit int) ([]Event, []string, error) {
	defer rows.Close()
	evs := make([]Event, 0, min(limit, 1024))
	var prevs []string
	for rows.Next() {
		var e Event
		var us int64
		var outcome, prev string
		if err := rows.Scan(&e.Seq, &us, &e.Actor, &e.ActorOrg, &e.Action, &outcome, &e.CaseID, &e.Resource,
			&e.Purpose, &e.IP, &e.RequestID, &e.Detail, &prev, &e.Hash); err != nil {
			return nil, nil, fmt.Errorf("read events: %w", err)
		}
		e.Time, e.Outcome = time.UnixMicro(us).UTC(), Outcome(outcome)
		evs = append(evs, e)
		prevs = append(prevs, prev)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read events: %w", err)
	}
	return evs, prevs, nil
}

// readEvents returns events with from <= seq <= to and their prev hashes.
func (l *Log) readEvents(ctx context.Context, from, to int64) ([]Event, []string, error) {
	rows, err := l.sqlDB.QueryContext(ctx, selectEvent+" WHERE seq >= "+l.ph(1)+" AND seq <= "+l.ph(2)+" ORDER BY seq", from, to)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: read events %d..%d: %w", ErrUnavailable, from, to, err)
	}
	return scanEvents(rows, int(to-from+1))
}

// Filter selects events for Query. Zero fields do not filter.
type Filter struct {
	CaseID, Actor, Action string
	Outcome               Outcome
	Since, Until          time.Time // Since inclusive, Until exclusive
	// CaseIDs restricts to these cases when non-nil (operator transparency);
	// an empty non-nil slice matches nothing.
	CaseIDs []string
	// Actions restricts to these actions when non-nil; an empty non-nil
	// slice matches nothing.
	Actions []string
	Limit   int // default 50, at most 500
	Cursor  string
}

// Page size limits of Query.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// CursorAfter is the cursor of a page whose last event is seq, for callers
// that filter Query's pages further and cut their own.
func CursorAfter(seq int64) string { return encodeCursor(seq) }

func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("a1:" + strconv.FormatInt(seq, 10)))
}

// ErrInvalidCursor is a cursor Query did not issue (it wraps ErrInvalid).
// A cursor only says where a page starts: a forged one moves the start,
// never what the filter lets through.
var ErrInvalidCursor = fmt.Errorf("%w: cursor", ErrInvalid)

func decodeCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	s, ok := strings.CutPrefix(string(b), "a1:")
	if err != nil || !ok {
		return 0, ErrInvalidCursor
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, ErrInvalidCursor
	}
	return n, nil
}

// Query returns events matching f in ascending seq order, and a cursor for
// the next page ("" when there is none).
func (l *Log) Query(ctx context.Context, f Filter) ([]Event, string, error) {
	limit := f.Limit
	switch {
	case limit < 0:
		return nil, "", fmt.Errorf("%w: limit %d", ErrInvalid, limit)
	case limit == 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	// Every stored field went through clean, so a value that clean would
	// change matches nothing; sent on, PostgreSQL would refuse it as an
	// error, and a bad filter would read as an outage.
	storable := func(v string) bool { return clean(v) == v }
	if !storable(f.CaseID) || !storable(f.Actor) || !storable(f.Action) {
		return []Event{}, "", nil
	}
	if f.CaseIDs != nil {
		f.CaseIDs = slices.DeleteFunc(slices.Clone(f.CaseIDs), func(v string) bool { return !storable(v) })
	}
	if f.Actions != nil {
		f.Actions = slices.DeleteFunc(slices.Clone(f.Actions), func(v string) bool { return !storable(v) })
	}
	if f.CaseIDs != nil && len(f.CaseIDs) == 0 || f.Actions != nil && len(f.Actions) == 0 {
		return []Event{}, "", nil
	}
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.Replace(cond, "?", l.ph(len(args)), 1))
	}
	// The cursor and a Since bound both start the page somewhere in the
	// primary key. They become one term: given two, SQLite starts its range
	// at either and filters the rows between them one by one. The log is
	// numbered from 1; a row below that was not written by the log's writer
	// (Verify says so) and is never served.
	after := int64(0)
	if f.Cursor != "" {
		a, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		after = a
	}
	// SQLite plans without statistics and may walk the (outcome, seq)
	// index of a common outcome while the case's index holds a handful of
	// rows: when a more selective filter (case, then actor, then action)
	// is given, the others are written +col, which SQLite does not look up
	// by index. PostgreSQL plans from its statistics.
	indexed := true
	col := func(name string) string {
		if l.dialect == sqldb.Postgres || indexed {
			indexed = false
			return name
		}
		return "+" + name
	}
	if f.CaseID != "" {
		add(col("case_id")+" = ?", f.CaseID)
	}
	if f.Actor != "" {
		add(col("actor")+" = ?", f.Actor)
	}
	if f.Action != "" {
		add(col("action")+" = ?", f.Action)
	}
	if f.Outcome != "" {
		add(col("outcome")+" = ?", string(f.Outcome))
	}
	// The time range also becomes a seq range below, read from the
	// primary key; on SQLite the at_us terms then only filter.
	atUs := "at_us"
	if l.dialect != sqldb.Postgres {
		atUs = "+at_us"
	}
	if !f.Since.IsZero() {
		add(atUs+" >= ?", f.Since.UnixMicro())
		// Times never go backwards along the log (the writer sees to it),
		// so the range is also a range of seq: the page is then read from
		// the primary key where it starts, not filtered from the start of
		// the log.
		lo, ok, err := l.seqAt(ctx, "SELECT seq FROM audit_events WHERE at_us >= "+l.ph(1)+" ORDER BY at_us, seq LIMIT 1", f.Since.UnixMicro())
		if err != nil {
			return nil, "", err
		}
		if !ok {
			return []Event{}, "", nil
		}
		after = max(after, lo-1)
	}
	add("seq > ?", after)
	if !f.Until.IsZero() {
		add(atUs+" < ?", f.Until.UnixMicro())
		hi, ok, err := l.seqAt(ctx, "SELECT seq FROM audit_events WHERE at_us < "+l.ph(1)+" ORDER BY at_us DESC, seq DESC LIMIT 1", f.Until.UnixMicro())
		if err != nil {
			return nil, "", err
		}
		if !ok {
			return []Event{}, "", nil
		}
		add("seq <= ?", hi)
	}
	if f.CaseIDs != nil {
		ph := make([]string, len(f.CaseIDs))
		for i, c := range f.CaseIDs {
			args = append(args, c)
			ph[i] = l.ph(len(args))
		}
		where = append(where, "case_id IN ("+strings.Join(ph, ",")+")")
	}
	if f.Actions != nil {
		ph := make([]string, len(f.Actions))
		for i, a := range f.Actions {
			args = append(args, a)
			ph[i] = l.ph(len(args))
		}
		where = append(where, "action IN ("+strings.Join(ph, ",")+")")
	}
	q := selectEvent
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq LIMIT " + strconv.Itoa(limit+1)
	rows, err := l.sqlDB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("%w: query events: %w", ErrUnavailable, err)
	}
	evs, _, err := scanEvents(rows, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	next := ""
	if len(evs) > limit {
		evs = evs[:limit]
		next = encodeCursor(evs[limit-1].Seq)
	}
	return evs, next, nil
}

// seqAt runs a query answering one seq, or none.
func (l *Log) seqAt(ctx context.Context, q string, arg any) (int64, bool, error) {
	var seq int64
	err := l.sqlDB.QueryRowContext(ctx, q, arg).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("%w: query events: %w", ErrUnavailable, err)
	}
	return seq, true, nil
}

// ExportFormat names the export's header line.
const ExportFormat = "crvault-audit-export"

type exportHeader struct {
	Format   string       `json:"format"`
	Version  int          `json:"version"`
	From     int64        `json:"from"`
	To       int64        `json:"to"`
	PrevHash string       `json:"prev_hash"`
	Prefix   []prefixHash `json:"prefix"`
}

type prefixHash struct {
	Index int64     `json:"index"`
	Hash  tlog.Hash `json:"hash"`
}

// exportEvent is one NDJSON line: every field of the canonical encoding,
// plus the hash.
type exportEvent struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	ActorOrg  string    `json:"actor_org"`
	Action    string    `json:"action"`
	Outcome   Outcome   `json:"outcome"`
	CaseID    string    `json:"case_id"`
	Resource  string    `json:"resource"`
	Purpose   string    `json:"purpose"`
	IP        string    `json:"ip"`
	RequestID string    `json:"request_id"`
	Detail    string    `json:"detail"`
	PrevHash  string    `json:"prev_hash"`
	Hash      string    `json:"hash"`
}

func toExport(e Event, prev string) exportEvent {
	return exportEvent{e.Seq, e.Time, e.Actor, e.ActorOrg, e.Action, e.Outcome, e.CaseID, e.Resource,
		e.Purpose, e.IP, e.RequestID, e.Detail, prev, e.Hash}
}

func (x exportEvent) event() (Event, string) {
	return Event{Seq: x.Seq, Time: x.Time, Actor: x.Actor, ActorOrg: x.ActorOrg, Action: x.Action,
		Outcome: x.Outcome, CaseID: x.CaseID, Resource: x.Resource, Purpose: x.Purpose, IP: x.IP,
		RequestID: x.RequestID, Detail: x.Detail, Hash: x.Hash}, x.PrevHash
}

// exportPage is how many rows Export holds in memory at once.
const exportPage = 1000

// Export streams events from..to (1 and the current size when <= 0) as
// NDJSON in the format described in the package documentation.
func (l *Log) Export(ctx context.Context, w io.Writer, from, to int64) error {
	cur, err := l.size(ctx)
	if err != nil {
		return err
	}
	if from <= 0 {
		from = 1
	}
	if to <= 0 {
		to = cur
	}
	if to > cur || from > to+1 {
		return fmt.Errorf("%w: export %d..%d (tree size %d)", ErrInvalid, from, to, cur)
	}
	h := exportHeader{Format: ExportFormat, Version: 1, From: from, To: to, PrevHash: zeroHash, Prefix: []prefixHash{}}
	if from > 1 {
		evs, _, err := l.readEvents(ctx, from-1, from-1)
		if err != nil {
			return err
		}
		if len(evs) != 1 {
			return fmt.Errorf("%w: export: event %d missing", ErrUnavailable, from-1)
		}
		h.PrevHash = evs[0].Hash
		idx := frontierIndexes(from - 1)
		hs, err := dbHashes{ctx: ctx, q: l.sqlDB, ph: l.ph}.ReadHashes(idx)
		if err != nil {
			return fmt.Errorf("%w: export: %w", ErrUnavailable, err)
		}
		for i := range idx {
			h.Prefix = append(h.Prefix, prefixHash{Index: idx[i], Hash: hs[i]})
		}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(h); err != nil {
		return fmt.Errorf("export header: %w", err)
	}
	for next := from; next <= to; next += exportPage {
		evs, prevs, err := l.readEvents(ctx, next, min(next+exportPage-1, to))
		if err != nil {
			return err
		}
		for i, e := range evs {
			if err := enc.Encode(toExport(e, prevs[i])); err != nil {
				return fmt.Errorf("export seq %d: %w", e.Seq, err)
			}
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	return bw.Flush()
}
