package vault

import (
	"bytes"
	"testing"
	"time"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestUploadSessionEditedBeforeCommitIsRefused: an open session's kind,
// content type or owner edited in the database between two chunks is
// refused as absent (404) at the next chunk and read, so no material is
// made of the edit (review h29h, finding 4: the office's recommendation,
// flipped to a notice, was committed as a tagged notice the operator read).
// Put back as it was, the same session completes as what it was opened as.
func TestUploadSessionEditedBeforeCommitIsRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			c := f.draft()
			f.submit(c)
			f.mustMove(c, "require_review", "", 0)
			other := f.user("office2", f.org("Review Office Two", "office"), "office_admin")
			body := "OFFICE-RECOMMENDATION-DELIBERATION"
			size := int64(len(body))
			for _, edit := range []struct{ name, set, undo string }{
				{"kind", "kind = 'notice'", "kind = 'recommendation'"},
				{"content_type", "content_type = 'text/html'", "content_type = 'text/plain'"},
				{"owner", "user_id = '" + other.P.User.ID + "'", "user_id = '" + f.office.P.User.ID + "'"},
			} {
				t.Run(edit.name, func(t *testing.T) {
					up, err := f.svc.CreateUpload(f.ctx, f.office, c, NewUpload{Kind: "recommendation", Filename: "rec.txt", ContentType: "text/plain", Size: &size})
					if err != nil {
						t.Fatal(err)
					}
					if _, err := f.svc.AppendUpload(f.ctx, f.office, up.ID, Chunk{Offset: 0, Length: 5, UploadLength: -1, Body: bytes.NewReader([]byte(body[:5]))}); err != nil {
						t.Fatal(err)
					}
					var before int64
					f.db.Table("materials").Where("case_id = ?", c).Count(&before)
					if err := f.db.Exec("UPDATE upload_sessions SET "+edit.set+" WHERE id = ?", up.ID).Error; err != nil {
						t.Fatal(err)
					}
					who := f.office
					if edit.name == "owner" {
						who = other // the session now "belongs" to another office user
					}
					svc := f.restart()
					_, err = svc.AppendUpload(f.ctx, who, up.ID, Chunk{Offset: 5, Length: size - 5, UploadLength: -1, Body: bytes.NewReader([]byte(body[5:]))})
					wantCode(t, err, ErrNotFound, "not_found")
					_, err = svc.GetUpload(f.ctx, who, up.ID)
					wantCode(t, err, ErrNotFound, "not_found")
					var after int64
					f.db.Table("materials").Where("case_id = ?", c).Count(&after)
					if after != before {
						t.Fatalf("%d materials made of the edited session", after-before)
					}
					evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: "upload.chunk", Outcome: audit.Denied, Limit: audit.MaxLimit})
					refused := 0
					for _, e := range evs {
						if e.Resource == "upload/"+up.ID && e.Detail == "not_found" {
							refused++
						}
					}
					if err != nil || refused == 0 {
						t.Fatalf("refused chunk not audited: %v %d", err, refused)
					}

					if err := f.db.Exec("UPDATE upload_sessions SET "+edit.undo+" WHERE id = ?", up.ID).Error; err != nil {
						t.Fatal(err)
					}
					done, err := svc.AppendUpload(f.ctx, f.office, up.ID, Chunk{Offset: 5, Length: size - 5, UploadLength: -1, Body: bytes.NewReader([]byte(body[5:]))})
					if err != nil || done.Material == nil {
						t.Fatalf("put back, the upload did not complete: %v %+v", err, done)
					}
					if done.Material.Kind != "recommendation" || done.Material.ContentType != "text/plain" {
						t.Fatalf("completed as %s %s", done.Material.Kind, done.Material.ContentType)
					}
					if got, err := svc.GetUpload(f.ctx, f.office, up.ID); err != nil || got.Material == nil || got.Material.ID != done.Material.ID {
						t.Fatalf("completed session: %v %+v", err, got)
					}
				})
			}
		})
	}
}

// TestUploadSessionRepointedAtAnotherMaterialIsRefused: a session the
// database administrator marks completed with another case's material (or
// another material of its own case) is refused as absent, and nothing of
// that material is shown (review h29h, finding 3: the rival read the
// victim's sealed filename through his own GetUpload).
func TestUploadSessionRepointedAtAnotherMaterialIsRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			rivalOrg := f.org("Rival Co", "operator")
			rival := f.user("rival1", rivalOrg, "operator")
			victim := f.draft()
			secret := f.uploadID(f.op, victim, "other", "VICTIM-SECRET-FILENAME")
			own, err := f.svc.CreateCase(f.ctx, rival, NewCase{Title: "Rival's", Product: "X"})
			if err != nil {
				t.Fatal(err)
			}
			mine := f.uploadID(rival, own.ID, "other", "rival's own")
			for name, target := range map[string]string{"another case": secret, "same case": mine} {
				t.Run(name, func(t *testing.T) {
					up, err := f.svc.CreateUpload(f.ctx, rival, own.ID, NewUpload{Kind: "other", Filename: "mine.txt", ContentType: "text/plain"})
					if err != nil {
						t.Fatal(err)
					}
					if err := f.db.Exec("UPDATE upload_sessions SET status = 'completed', material_id = ? WHERE id = ?", target, up.ID).Error; err != nil {
						t.Fatal(err)
					}
					got, err := f.restart().GetUpload(f.ctx, rival, up.ID)
					wantCode(t, err, ErrNotFound, "not_found")
					if got.Material != nil {
						t.Fatalf("material shown: %+v", got.Material)
					}
				})
			}
			// Even a session whose tag checks (as if written so by a fault of
			// crvault's own) shows no material of another case.
			t.Run("another case, tagged", func(t *testing.T) {
				up, err := f.svc.CreateUpload(f.ctx, rival, own.ID, NewUpload{Kind: "other", Filename: "mine.txt", ContentType: "text/plain"})
				if err != nil {
					t.Fatal(err)
				}
				key, err := f.svc.caseKey(f.ctx, own.ID)
				if err != nil {
					t.Fatal(err)
				}
				var r uploadRow
				if err := f.db.Where("id = ?", up.ID).Take(&r).Error; err != nil {
					t.Fatal(err)
				}
				r.Status, r.MaterialID = uploadCompleted, secret
				if err := f.db.Model(&uploadRow{}).Where("id = ?", up.ID).Updates(map[string]any{"status": r.Status, "material_id": r.MaterialID, "tag": uploadTag(key, &r)}).Error; err != nil {
					t.Fatal(err)
				}
				got, err := f.restart().GetUpload(f.ctx, rival, up.ID)
				wantCode(t, err, ErrNotFound, "not_found")
				if got.Material != nil {
					t.Fatalf("material shown: %+v", got.Material)
				}
			})
		})
	}
}

// TestUntaggedUploadSessionIsTaggedOnce: a session an older binary left
// open (no tag) is refused until the one-time backfill tags it, then
// completes; the backfill is recorded, and a tag blanked after it stays
// blank.
func TestUntaggedUploadSessionIsTaggedOnce(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			c := f.draft()
			body := "AN UPLOAD LEFT HALF DONE BY AN OLDER VAULTD"
			size := int64(len(body))
			up, err := f.svc.CreateUpload(f.ctx, f.op, c, NewUpload{Kind: "other", Filename: "old.txt", ContentType: "text/plain", Size: &size})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.AppendUpload(f.ctx, f.op, up.ID, Chunk{Offset: 0, Length: 7, UploadLength: -1, Body: bytes.NewReader([]byte(body[:7]))}); err != nil {
				t.Fatal(err)
			}
			// As an older binary left it (its segments untagged as well).
			for _, q := range []string{"UPDATE upload_sessions SET tag = ''", "UPDATE upload_segments SET tag = ''"} {
				if err := f.db.Exec(q).Error; err != nil {
					t.Fatal(err)
				}
			}
			_, err = f.restart().GetUpload(f.ctx, f.op, up.ID)
			wantCode(t, err, ErrNotFound, "not_found")
			svc := f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			got, err := svc.GetUpload(f.ctx, f.op, up.ID)
			if err != nil || got.Offset != 7 {
				t.Fatalf("after the backfill: %v %+v", err, got)
			}
			evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: TagBackfillAction, Limit: audit.MaxLimit})
			marks := []string{}
			for _, e := range evs {
				if e.Resource == "upload_sessions" {
					marks = append(marks, e.Detail)
				}
			}
			if err != nil || len(marks) != 1 || marks[0] != "tagged 1" {
				t.Fatalf("upload_sessions backfill events %v %v", err, marks)
			}
			done, err := svc.AppendUpload(f.ctx, f.op, up.ID, Chunk{Offset: 7, Length: size - 7, UploadLength: -1, Body: bytes.NewReader([]byte(body[7:]))})
			if err != nil || done.Material == nil {
				t.Fatalf("not completed: %v %+v", err, done)
			}
			if got := f.readWith(svc, f.op, done.Material.ID); got != body {
				t.Fatalf("read %q", got)
			}

			// The marker holds: blanked again, the session is not re-tagged.
			if err := f.db.Exec("UPDATE upload_sessions SET tag = ''").Error; err != nil {
				t.Fatal(err)
			}
			if err := f.restart().keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			_, err = f.restart().GetUpload(f.ctx, f.op, up.ID)
			wantCode(t, err, ErrNotFound, "not_found")
		})
	}
}
