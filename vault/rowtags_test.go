package vault

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/crypt"
)

// wantDamaged fails unless reading id answers material_damaged and the
// refusal is in the audit log as an error with that code.
func (f *wfFixture) wantDamaged(svc *Service, a Actor, id string) {
	f.t.Helper()
	c, err := svc.OpenContent(f.ctx, a, id, nil)
	if err == nil {
		c.Close()
		f.t.Fatalf("material %s was served", id)
	}
	var ve *Error
	if !errors.Is(err, ErrDamaged) || !errors.As(err, &ve) || ve.Code != "material_damaged" {
		f.t.Fatalf("material %s: %v, want material_damaged", id, err)
	}
	evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: "material.read", Outcome: audit.Errored, Limit: audit.MaxLimit})
	if err != nil {
		f.t.Fatal(err)
	}
	if len(evs) == 0 || evs[len(evs)-1].Resource != "material/"+id || evs[len(evs)-1].Detail != "material_damaged" {
		f.t.Fatalf("material %s: audit errors %+v", id, evs)
	}
}

// readWith reads a material through svc.
func (f *wfFixture) readWith(svc *Service, a Actor, id string) string {
	f.t.Helper()
	c, err := svc.OpenContent(f.ctx, a, id, nil)
	if err != nil {
		f.t.Fatalf("open %s: %v", id, err)
	}
	defer c.Close()
	b, err := io.ReadAll(c.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// TestMovedCaseKeyIsRefused: a database administrator copies case A's
// wrapped key (and every column beside it) into case B's row and moves A's
// materials under B. The key still opens, but its tag names case A: B's
// key is refused, so neither A's moved documents nor B's own are served
// (each read is audited as material_damaged), and B's listing fails rather
// than name A's documents.
func TestMovedCaseKeyIsRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			a, b := f.draft(), f.draft()
			secret := f.uploadID(f.op, a, "other", "secret of A")
			own := f.uploadID(f.op, b, "other", "letter of B")
			if got := f.read(f.op, secret); got != "secret of A document" {
				t.Fatalf("read %q", got)
			}
			for _, q := range []string{
				`UPDATE case_keys SET wrapped = (SELECT wrapped FROM case_keys WHERE case_id = ?), master = (SELECT master FROM case_keys WHERE case_id = ?),
					escrow = (SELECT escrow FROM case_keys WHERE case_id = ?), tag = (SELECT tag FROM case_keys WHERE case_id = ?) WHERE case_id = ?`,
			} {
				if err := f.db.Exec(q, a, a, a, a, b).Error; err != nil {
					t.Fatal(err)
				}
			}
			if err := f.db.Exec("UPDATE materials SET case_id = ? WHERE case_id = ?", b, a).Error; err != nil {
				t.Fatal(err)
			}
			svc := f.restart() // a key cache that has not seen B's key
			f.wantDamaged(svc, f.op, secret)
			f.wantDamaged(svc, f.op, own)
			if ms, err := svc.ListMaterials(f.ctx, f.op, b); err == nil {
				t.Fatalf("the listing of case B answered %d materials with A's key under it", len(ms))
			}
		})
	}
}

// TestEditedMaterialRowIsRefused: a material row whose deciding columns
// were edited (moved to another case of the same key is impossible, so:
// its kind, uploader, blob, size) is refused as damaged and left out of
// listings, while its untouched neighbours read as before.
func TestEditedMaterialRowIsRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			c := f.draft()
			keep := f.uploadID(f.op, c, "other", "kept")
			other := f.uploadID(f.op, c, "other", "the other letter")
			var blobOfOther string
			if err := f.db.Table("materials").Where("id = ?", other).Pluck("blob_id", &blobOfOther).Error; err != nil {
				t.Fatal(err)
			}
			for _, edit := range []struct{ name, set string }{
				{"kind", "kind = 'notice'"},
				{"uploader", "uploader_org = 'someone-else'"},
				{"size", "size = size - 1"},
				{"content type", "content_type = 'text/html'"},
			} {
				t.Run(edit.name, func(t *testing.T) {
					id := f.uploadID(f.op, c, "other", "edited "+edit.name)
					if err := f.db.Exec("UPDATE materials SET "+edit.set+" WHERE id = ?", id).Error; err != nil {
						t.Fatal(err)
					}
					svc := f.restart()
					f.wantDamaged(svc, f.op, id)
					ms, err := svc.ListMaterials(f.ctx, f.op, c)
					if err != nil {
						t.Fatal(err)
					}
					for _, m := range ms {
						if m.ID == id {
							t.Fatalf("the edited material is listed: %+v", m)
						}
					}
				})
			}
			// The header and blob of another material of the same case,
			// both copied: the blob is bound, so the header goes with it.
			if err := f.db.Exec("UPDATE materials SET blob_id = 'x' || blob_id WHERE id = ?", other).Error; err != nil {
				t.Fatal(err)
			}
			if err := f.db.Exec("UPDATE materials SET blob_id = ?, header = (SELECT header FROM materials WHERE id = ?) WHERE id = ?",
				blobOfOther, other, keep).Error; err != nil {
				t.Fatal(err)
			}
			f.wantDamaged(f.restart(), f.op, keep)
		})
	}
}

// TestRowTagBackfillRunsOnce: rows an older binary wrote carry no tag and
// are refused until TagLegacyRows tags them; it records each table in the
// audit log, and once that is recorded it never tags again, so tags a
// database administrator blanks stay blank and the rows stay refused.
func TestRowTagBackfillRunsOnce(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			c := f.draft()
			id := f.uploadID(f.op, c, "other", "old letter")
			if _, err := f.svc.keys.VaultKey(f.ctx, proposalKey); err != nil {
				t.Fatal(err)
			}
			var materials int64
			f.db.Table("materials").Count(&materials)
			blank := func() {
				t.Helper()
				// Not the rows key's tag: the rows key tags the cases'
				// parties, which TestCasePartiesBackfill blanks.
				for _, sql := range []string{"UPDATE case_keys SET tag = ''", "UPDATE vault_keys SET tag = '' WHERE name <> 'rows'",
					"UPDATE materials SET tag = ''"} {
					if err := f.db.Exec(sql).Error; err != nil {
						t.Fatal(err)
					}
				}
			}
			blank() // as an older binary left them
			f.wantDamaged(f.restart(), f.op, id)
			svc := f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			if got := f.readWith(svc, f.op, id); got != "old letter document" {
				t.Fatalf("after the backfill: %q", got)
			}
			if got, err := svc.keys.VaultKey(f.ctx, proposalKey); err != nil || got == nil {
				t.Fatalf("proposals key after the backfill: %v", err)
			}
			evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"vault_keys": "tagged 1", "case_keys": "tagged 1", "materials": fmt.Sprintf("tagged %d", materials),
				"material_segments": "tagged 0", "upload_segments": "tagged 0", "material_consents": "tagged 0", "upload_sessions": "tagged 0",
				"cases": "tagged 0", "cases.status": "tagged 0", "proposals": "tagged 0", "case_events": "tagged 0", eventTextsMarker: "tagged 0",
				"cases.due": "tagged 0"}
			got := map[string]string{}
			for _, e := range evs {
				got[e.Resource] = e.Detail
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || len(evs) != len(want) {
				t.Fatalf("backfill events %v, want %v", got, want)
			}

			// The events are the marker: blanked again, nothing is re-tagged.
			blank()
			for range 2 {
				if err := f.restart().keys.TagLegacyRows(f.ctx, f.log); err != nil {
					t.Fatal(err)
				}
			}
			f.wantDamaged(f.restart(), f.op, id)
			var tagged int64
			f.db.Table("materials").Where("length(tag) > 0").Count(&tagged)
			if tagged != 0 {
				t.Fatalf("%d materials re-tagged after the marker", tagged)
			}
			if evs2, _, _ := f.log.Query(f.ctx, audit.Filter{Action: TagBackfillAction, Limit: audit.MaxLimit}); len(evs2) != len(evs) {
				t.Fatalf("%d backfill events after the marker, want %d", len(evs2), len(evs))
			}
		})
	}
}

// TestRewrapKeepsRowTags: a master rotation rewraps every key, and the
// keys' tags, made under the keys themselves, still check: documents read
// as before with the old master gone.
func TestRewrapKeepsRowTags(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			c := f.draft()
			id := f.uploadID(f.op, c, "other", "letter")
			k := f.svc.keys
			var before []byte
			if err := f.db.Table("case_keys").Select("wrapped").Where("case_id = ?", c).Row().Scan(&before); err != nil {
				t.Fatal(err)
			}
			m, err := crypt.GenerateMaster()
			if err != nil {
				t.Fatal(err)
			}
			k.masters.Add(m)
			if _, err := k.BeginRotation(f.ctx, m); err != nil {
				t.Fatal(err)
			}
			if rep, err := k.Rewrap(f.ctx, 100, 0); err != nil || rep.Remaining != 0 {
				t.Fatalf("rewrap: %+v, %v", rep, err)
			}
			var after []byte
			if err := f.db.Table("case_keys").Select("wrapped").Where("case_id = ?", c).Row().Scan(&after); err != nil {
				t.Fatal(err)
			}
			if string(after) == string(before) {
				t.Fatal("the case key was not rewrapped")
			}
			if got := f.read(f.op, id); got != "letter document" {
				t.Fatalf("after the rotation: %q", got)
			}
			cfg := f.cfg
			cfg.Keyring = NewKeyring(f.db, nil, KeyringConfig{Masters: k.masters})
			if got := f.readWith(New(f.db, f.blobs, nil, f.acc, f.log, cfg), f.op, id); got != "letter document" {
				t.Fatalf("after the rotation, a fresh key cache: %q", got)
			}
		})
	}
}

// segmented uploads a document of three 1000-byte chunks through a
// resumable upload, completing it unless open, and returns the upload.
func (f *wfFixture) segmented(caseID string, doc []byte, open bool) UploadSession {
	f.t.Helper()
	sz := int64(len(doc))
	u, err := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "d.bin", Size: &sz})
	if err != nil {
		f.t.Fatal(err)
	}
	for off := int64(0); off < sz; off += 1000 {
		if open && off+1000 == sz {
			break
		}
		if u, err = f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: off, Length: 1000, UploadLength: -1, Body: bytes.NewReader(doc[off : off+1000])}); err != nil {
			f.t.Fatal(err)
		}
	}
	return u
}

// swapSegment exchanges the blob and header of segment seq between two
// owners in table (ownerCol names them): both stay sealed to the case key
// and of the same size, so only their tags tell.
func (f *wfFixture) swapSegment(table, ownerCol, a, b string, seq int) {
	f.t.Helper()
	type seg struct {
		BlobID string
		Header []byte
	}
	var sa, sb seg
	if err := f.db.Table(table).Select("blob_id, header").Where(ownerCol+" = ? AND seq = ?", a, seq).Take(&sa).Error; err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.Table(table).Select("blob_id, header").Where(ownerCol+" = ? AND seq = ?", b, seq).Take(&sb).Error; err != nil {
		f.t.Fatal(err)
	}
	set := func(owner string, s seg) {
		if err := f.db.Table(table).Where(ownerCol+" = ? AND seq = ?", owner, seq).Updates(map[string]any{"blob_id": s.BlobID, "header": s.Header}).Error; err != nil {
			f.t.Fatal(err)
		}
	}
	set(a, seg{BlobID: "tmp-" + sa.BlobID, Header: sa.Header})
	set(b, sa)
	set(a, sb)
}

// TestSwappedSegmentIsRefused: a segment of one segmented material (or of
// one open upload) exchanged with the segment of the same place of another
// is refused, though both are sealed to the case key and of the same size:
// the material does not read, and the upload does not complete.
func TestSwappedSegmentIsRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			c := f.draft()
			one, two := randomDoc(t, 3000), randomDoc(t, 3000)
			m1, m2 := f.segmented(c, one, false).Material.ID, f.segmented(c, two, false).Material.ID
			if b := f.readRange(f.op, m1, nil); !bytes.Equal(b, one) {
				t.Fatal("first material differs before the swap")
			}
			f.swapSegment("material_segments", "material_id", m1, m2, 1)
			f.wantDamaged(f.svc, f.op, m1)
			f.wantDamaged(f.svc, f.op, m2)

			u1, u2 := f.segmented(c, one, true), f.segmented(c, two, true)
			f.swapSegment("upload_segments", "upload_id", u1.ID, u2.ID, 1)
			_, err := f.svc.AppendUpload(f.ctx, f.op, u1.ID, Chunk{Offset: 2000, Length: 1000, UploadLength: -1, Body: bytes.NewReader(one[2000:])})
			if err == nil || !errors.Is(err, errRowTag) {
				t.Fatalf("an upload with another's segment completed: %v", err)
			}
		})
	}
}

// TestMovedVaultKeyIsRefused: one of the vault's own keys copied, tag and
// all, into another's row (or a case key into a vault key's) is refused
// when a fresh keyring opens it, and the row's own key still opens.
func TestMovedVaultKeyIsRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			c := f.draft()
			for _, name := range []string{"secrets", proposalKey} {
				if _, err := f.svc.keys.VaultKey(f.ctx, name); err != nil {
					t.Fatal(err)
				}
			}
			fresh := func() *Keyring { return NewKeyring(f.db, f.master, KeyringConfig{}) }
			if _, err := fresh().VaultKey(f.ctx, proposalKey); err != nil {
				t.Fatalf("untouched: %v", err)
			}
			for _, from := range []string{
				"SELECT wrapped, master, escrow, tag FROM vault_keys WHERE name = 'secrets'",
				"SELECT wrapped, master, escrow, tag FROM case_keys WHERE case_id = '" + c + "'",
			} {
				var row struct {
					Wrapped, Tag   []byte
					Master, Escrow string
				}
				if err := f.db.Raw(from).Scan(&row).Error; err != nil {
					t.Fatal(err)
				}
				if err := f.db.Table("vault_keys").Where("name = ?", proposalKey).
					Updates(map[string]any{"wrapped": row.Wrapped, "master": row.Master, "escrow": row.Escrow, "tag": row.Tag}).Error; err != nil {
					t.Fatal(err)
				}
				if _, err := fresh().VaultKey(f.ctx, proposalKey); !errors.Is(err, errRowTag) {
					t.Fatalf("%s, copied to the proposals key: %v", from, err)
				}
			}
			if _, err := fresh().VaultKey(f.ctx, "secrets"); err != nil {
				t.Fatalf("the key copied from still opens in its own row: %v", err)
			}
		})
	}
}

// TestEditedMaterialRowShowsPartyNoMoreEvents: the kind and uploader
// of a material decide which of its audit events a party sees. A
// reviewer's recommendation, relabelled in the database as the operator's
// own "other" material, does not open its upload and reads to the
// operator: the row fails its tag and counts as unknown.
func TestEditedMaterialRowShowsPartyNoMoreEvents(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			c := f.draft()
			f.submit(c)
			f.mustMove(c, "require_review", "", 0)
			f.assign(c, f.rev, "reviewer")
			rec := f.uploadID(f.rev, c, "recommendation", "rec")
			f.read(f.rev, rec)
			seen := func() int {
				t.Helper()
				evs, _, err := f.svc.AuditEvents(f.ctx, f.op, audit.Filter{CaseID: c, Limit: audit.MaxLimit})
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, e := range evs {
					if id, ok := materialOfResource(e.Resource); ok && id == rec {
						n++
					}
				}
				return n
			}
			if n := seen(); n != 0 {
				t.Fatalf("the operator sees %d events of the recommendation", n)
			}
			if err := f.db.Exec("UPDATE materials SET kind = 'other', uploader_org = ? WHERE id = ?", f.op.P.User.OrgID, rec).Error; err != nil {
				t.Fatal(err)
			}
			if n := seen(); n != 0 {
				t.Fatalf("relabelled in the database, the recommendation shows the operator %d events", n)
			}
		})
	}
}

// TestTagInBatches: the one-time taggings read and tag their untagged rows
// a batch at a time, one transaction a batch, across batch boundaries,
// and count only rows they changed.
func TestTagInBatches(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			ctx := context.Background()
			db := sqldbtest.Open(t, d)
			type batchRow struct {
				ID  string `gorm:"primaryKey;size:16"`
				Tag string `gorm:"not null;default:''"`
			}
			if err := db.Migrator().CreateTable(&batchRow{}); err != nil {
				t.Fatal(err)
			}
			const rows = 2*TagBatch + 5
			all := make([]batchRow, rows)
			for i := range all {
				all[i].ID = fmt.Sprintf("r%06d", i)
			}
			// One already tagged: not counted, not rewritten.
			all[7].Tag = "kept"
			if err := db.CreateInBatches(all, 500).Error; err != nil {
				t.Fatal(err)
			}
			// Keyed by the transactions themselves, which the map keeps alive: an
			// address alone may be reused once a transaction is freed.
			reads, txs := 0, map[*sql.Tx]bool{}
			n, err := TagInBatches(ctx, db, func(db *gorm.DB, after string) (page []batchRow, err error) {
				reads++
				err = db.Where("tag = '' AND id > ?", after).Order("id").Limit(TagBatch).Find(&page).Error
				return page, err
			}, func(r batchRow) string { return r.ID }, func(tx *gorm.DB, r batchRow) (int64, error) {
				sqlTx, ok := tx.Statement.ConnPool.(*sql.Tx)
				if !ok {
					return 0, fmt.Errorf("row %s tagged outside a transaction", r.ID)
				}
				txs[sqlTx] = true
				res := tx.Model(&batchRow{}).Where("id = ? AND tag = ''", r.ID).Update("tag", "t-"+r.ID)
				return res.RowsAffected, res.Error
			})
			if err != nil {
				t.Fatal(err)
			}
			if n != rows-1 || reads != 3 || len(txs) != 3 {
				t.Fatalf("tagged %d rows in %d reads and %d transactions, want %d in 3 and 3", n, reads, len(txs), rows-1)
			}
			var untagged, kept int64
			db.Model(&batchRow{}).Where("tag = ''").Count(&untagged)
			db.Model(&batchRow{}).Where("tag = 'kept'").Count(&kept)
			if untagged != 0 || kept != 1 {
				t.Fatalf("%d rows left untagged, %d kept their tag", untagged, kept)
			}
		})
	}
}
