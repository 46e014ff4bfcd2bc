package vault

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/crypt"
)

// The case text of the database is sealed: no row holds the plaintext of a
// title, product, filename or reason, and versions are still numbered.
func TestCaseTextSealedInRows(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "SEALME-title 核心", Product: "SEALME-product"})
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 2; i++ {
				m, err := f.svc.Upload(f.ctx, f.op, c.ID, Upload{Kind: "declaration", Filename: "SEALME-name.txt", ContentType: "text/plain",
					Body: strings.NewReader("x"), Size: 1})
				if err != nil {
					t.Fatal(err)
				}
				if m.Version != i || m.Filename != "SEALME-name.txt" {
					t.Fatalf("upload %d: version %d filename %q", i, m.Version, m.Filename)
				}
			}
			m, err := f.svc.Upload(f.ctx, f.op, c.ID, Upload{Kind: "declaration", Filename: "SEALME-other.txt", ContentType: "text/plain",
				Body: strings.NewReader("x"), Size: 1})
			if err != nil || m.Version != 1 {
				t.Fatalf("another filename: version %d, %v", m.Version, err)
			}
			for _, k := range []string{"impact_analysis", "procurement"} {
				f.upload(f.op, c.ID, k)
			}
			f.at("2025-03-03")
			if _, err := f.svc.Submit(f.ctx, f.op, c.ID); err != nil {
				t.Fatal(err)
			}
			f.mustMove(c.ID, "require_review", "", 0)
			f.mustMove(c.ID, "extend", "SEALME-reason", 0)

			got, err := f.svc.GetCase(f.ctx, f.op, c.ID)
			if err != nil || got.Title != "SEALME-title 核心" || got.Product != "SEALME-product" {
				t.Fatalf("case read back: %+v %v", got, err)
			}
			h, err := f.svc.History(f.ctx, f.office, c.ID)
			if err != nil || h[len(h)-1].Reason != "SEALME-reason" {
				t.Fatalf("history read back: %+v %v", h, err)
			}
			// Every text and blob column of the vault's tables.
			for _, table := range []string{"cases", "materials", "case_events"} {
				var rows []map[string]any
				if err := f.svc.db.Table(table).Find(&rows).Error; err != nil {
					t.Fatal(err)
				}
				for _, r := range rows {
					for col, v := range r {
						if b := asBytes(v); bytes.Contains(b, []byte("SEALME")) {
							t.Errorf("%s.%s holds plaintext %q", table, col, b)
						}
					}
				}
			}
		})
	}
}

func asBytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case string:
		return []byte(x)
	}
	return []byte(fmt.Sprint(v))
}

// SealLegacy seals text that an older binary stored in plaintext, keeps it
// readable, and gives legacy materials a real filename hash so versioning
// goes on from them.
func TestSealLegacy(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			id := f.draft()
			f.at("2025-03-03")
			if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
				t.Fatal(err)
			}
			f.mustMove(id, "require_review", "", 0)
			f.mustMove(id, "extend", "sealed reason", 0)
			db := f.svc.db
			// What a binary from before sealing left behind.
			var ids []string
			if err := db.Table("materials").Where("case_id = ? AND kind = ?", id, "declaration").Pluck("id", &ids).Error; err != nil || len(ids) != 1 {
				t.Fatalf("declaration of the case: %v %v", ids, err)
			}
			matID := ids[0]
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{"UPDATE cases SET title = ?, product = ? WHERE id = ?", []any{[]byte("Legacy title"), []byte("Legacy product"), id}},
				{"UPDATE materials SET filename = ?, filename_mac = ? WHERE id = ?", []any{[]byte("legacy.txt"), "legacy-" + matID, matID}},
				{"UPDATE case_events SET reason = ? WHERE case_id = ? AND action = ?", []any{[]byte("Legacy reason"), id, "extend"}},
			} {
				if err := db.Exec(q.sql, q.args...).Error; err != nil {
					t.Fatal(err)
				}
			}
			if err := f.svc.SealLegacy(f.ctx); err != nil {
				t.Fatal(err)
			}
			var c caseRow
			db.Where("id = ?", id).Take(&c)
			var m materialRow
			db.Where("id = ?", matID).Take(&m)
			if !crypt.IsSealedField(c.Title) || !crypt.IsSealedField(c.Product) || !crypt.IsSealedField(m.Filename) || strings.HasPrefix(m.FilenameMAC, "legacy-") {
				t.Fatalf("not sealed: title %q product %q filename %q mac %q", c.Title, c.Product, m.Filename, m.FilenameMAC)
			}
			got, err := f.svc.GetCase(f.ctx, f.office, id)
			if err != nil || got.Title != "Legacy title" || got.Product != "Legacy product" {
				t.Fatalf("legacy case: %+v %v", got, err)
			}
			h, err := f.svc.History(f.ctx, f.office, id)
			if err != nil || h[len(h)-1].Reason != "Legacy reason" || h[len(h)-1].Action != "extend" {
				t.Fatalf("legacy history: %+v %v", h, err)
			}
			mat, err := f.svc.GetMaterial(f.ctx, f.op, matID)
			if err != nil || mat.Filename != "legacy.txt" {
				t.Fatalf("legacy material: %+v %v", mat, err)
			}
			// It runs once: a second call changes nothing, and does not fail.
			if err := f.svc.SealLegacy(f.ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSealLegacyDropsShreddedText: a crypto-shredded case's plaintext
// reason is dropped, not sealed, and its event tagged again: the history
// still authenticates, with the reason gone. An event whose tag did not
// check before is not tagged again.
func TestSealLegacyDropsShreddedText(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			gone, edited := f.draft(), f.draft()
			for _, id := range []string{gone, edited} {
				f.submit(id)
				f.mustMove(id, "require_review", "", 0)
				f.mustMove(id, "extend", "sealed reason", 0)
				// As a binary from before sealing wrote it, tag included
				// (the tags' backfill runs before the sealing).
				var e caseEventRow
				if err := f.db.Where("case_id = ? AND seq = 3", id).Take(&e).Error; err != nil {
					t.Fatal(err)
				}
				e.Reason = []byte("Legacy reason")
				key, err := f.svc.rowsKey(f.ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := f.db.Model(&caseEventRow{}).Where("case_id = ? AND seq = 3", id).
					Updates(map[string]any{"reason": e.Reason, "tag": eventTag(key, &e)}).Error; err != nil {
					t.Fatal(err)
				}
				if err := f.db.Exec("DELETE FROM case_keys WHERE case_id = ?", id).Error; err != nil {
					t.Fatal(err)
				}
			}
			if err := f.db.Exec("UPDATE case_events SET days = 30 WHERE case_id = ? AND seq = 3", edited).Error; err != nil {
				t.Fatal(err)
			}
			svc := f.restart()
			if err := svc.SealLegacy(f.ctx); err != nil {
				t.Fatal(err)
			}
			rows, err := svc.checkedEvents(f.ctx, f.db, gone)
			if err != nil || len(rows) != 3 || len(rows[2].Reason) != 0 {
				t.Fatalf("shredded case's history after the sealing: %+v, %v", rows, err)
			}
			if _, err := svc.checkedEvents(f.ctx, f.db, edited); !errors.Is(err, errHistoryDamaged) {
				t.Fatalf("an edited event was tagged again by the sealing: %v", err)
			}
		})
	}
}

// ColumnToBytes turns a PostgreSQL text column with a default into bytes,
// keeping its rows' values as their UTF-8 bytes.
func TestColumnToBytes(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	for _, q := range []string{
		"CREATE TABLE legacy (id varchar(8) PRIMARY KEY, note varchar(20) NOT NULL DEFAULT '')",
		"INSERT INTO legacy (id, note) VALUES ('a', 'plain 文本'), ('b', DEFAULT)",
	} {
		if err := db.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // idempotent
		if err := sqldb.ColumnToBytes(db, sqldb.Postgres, "legacy", "note"); err != nil {
			t.Fatal(err)
		}
	}
	var rows []struct {
		ID   string
		Note []byte
	}
	db.Table("legacy").Order("id").Find(&rows)
	if len(rows) != 2 || string(rows[0].Note) != "plain 文本" || len(rows[1].Note) != 0 {
		t.Fatalf("rows %+v", rows)
	}
	big := bytes.Repeat([]byte{0, 1, 2}, 100) // longer than the old varchar(20), and binary
	if err := db.Exec("INSERT INTO legacy (id, note) VALUES ('c', ?)", big).Error; err != nil {
		t.Fatalf("bytes after conversion: %v", err)
	}
	if err := db.Exec("INSERT INTO legacy (id) VALUES ('d')").Error; err != nil {
		t.Fatalf("default after conversion: %v", err)
	}
}

// The keyring caches unwrapped case keys for its TTL, within its bound; a
// deleted key row (crypto-shredding) is noticed once the cached key expires.
func TestKeyringCache(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	var ids []string
	for range 3 {
		c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "t", Product: "p"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	now := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	kr := NewKeyring(f.svc.db, f.svc.master, KeyringConfig{TTL: time.Minute, Size: 2, Now: func() time.Time { return now }})
	k1, err := kr.CaseKey(f.ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := kr.CaseKey(f.ctx, ids[0]); again != k1 {
		t.Fatal("a key used again within its TTL was unwrapped again")
	}
	kr.CaseKey(f.ctx, ids[1])
	kr.CaseKey(f.ctx, ids[2])
	if n := len(kr.cache); n != 2 {
		t.Fatalf("cache holds %d keys, bound 2", n)
	}
	// Shredding: the row goes; the cached key lives out its TTL, no longer.
	k2, _ := kr.CaseKey(f.ctx, ids[2])
	if err := f.svc.db.Exec("DELETE FROM case_keys WHERE case_id = ?", ids[2]).Error; err != nil {
		t.Fatal(err)
	}
	if k, err := kr.CaseKey(f.ctx, ids[2]); err != nil || k != k2 {
		t.Fatalf("within the TTL: %v", err)
	}
	now = now.Add(time.Minute)
	if _, err := kr.CaseKey(f.ctx, ids[2]); err == nil || !strings.Contains(err.Error(), "case_shredded") {
		t.Fatalf("after the TTL: %v, want case_shredded", err)
	}
	// Without a cache every call unwraps.
	off := NewKeyring(f.svc.db, f.svc.master, KeyringConfig{TTL: -1})
	a, _ := off.CaseKey(f.ctx, ids[0])
	b, _ := off.CaseKey(f.ctx, ids[0])
	if a == b || len(off.cache) != 0 {
		t.Fatal("a keyring with the cache off cached")
	}
}

// BenchmarkListCases lists 50 cases through the vault with the key cache
// (the default) and without it (every title unwraps its case key, about
// half a millisecond each): compare the two in one run; the ratio is what
// the cache buys a list.
func BenchmarkListCases(b *testing.B) {
	for _, mode := range []struct {
		name string
		ttl  time.Duration
	}{{"uncached", -1}, {"cached", time.Minute}} {
		b.Run(mode.name, func(b *testing.B) {
			f := newWF(b, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			f.svc.keys = NewKeyring(f.svc.db, f.svc.master, KeyringConfig{TTL: mode.ttl})
			for range 50 {
				if _, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Core routers", Product: "AR-9000"}); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				page, err := f.svc.ListCases(f.ctx, f.op, "", 50, "")
				if err != nil || len(page.Items) != 50 {
					b.Fatalf("list: %d, %v", len(page.Items), err)
				}
			}
		})
	}
}
