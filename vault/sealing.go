package vault

// Confidential text at rest. A case's title, product and listing venue, its
// materials' filenames, the reasons, comments and structured payloads (items,
// conditions, findings, references, measures) of its history and the
// purposes of its consents are stored sealed with the case key
// (crypt.CaseKey.SealField), each bound to its table, column and row;
// declarations' statements are sealed the same way through access.CaseSealer
// (the Keyring). Proposals, which belong to no case yet, are sealed with the
// vault's own proposals key. The database,
// its files, dumps and backups hold none of them in plaintext. Sealed text
// cannot be searched or sorted in SQL: lists select and order by ids, kinds,
// statuses and times, and the service opens each row's text after deciding
// the caller may see it. Material versions are found through FilenameMAC, a
// keyed hash of the filename under the case key.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/crypt"
)

// Labels bind each sealed value to its place.
func labelCaseTitle(caseID string) string   { return "cases.title/" + caseID }
func labelCaseProduct(caseID string) string { return "cases.product/" + caseID }
func labelCaseVenue(caseID string) string   { return "cases.listing_venue/" + caseID }
func labelFilename(materialID string) string {
	return "materials.filename/" + materialID
}
func labelReason(caseID string, seq int) string {
	return "case_events.reason/" + caseID + "/" + strconv.Itoa(seq)
}
func labelPayload(caseID string, seq int) string {
	return "case_events.payload/" + caseID + "/" + strconv.Itoa(seq)
}
func labelConsentPurpose(id string) string { return "material_consents.purpose/" + id }

// labelFilenameMAC is the MAC namespace of filenames (not per row: equal
// names must match).
const labelFilenameMAC = "mac:materials.filename"

// sealText seals v for label; the empty string stays empty (its length is
// all a sealed form would hide, and it tells nothing).
func sealText(key *crypt.CaseKey, label, v string) ([]byte, error) {
	if v == "" {
		return []byte{}, nil
	}
	b, err := key.SealField(label, []byte(v))
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", label, err)
	}
	return b, nil
}

// openText opens a value sealText sealed. A nil key means the case was
// crypto-shredded: its text is gone, and reads as empty.
func openText(key *crypt.CaseKey, label string, b []byte) (string, error) {
	if len(b) == 0 || key == nil {
		return "", nil
	}
	p, err := key.OpenField(label, b)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", label, err)
	}
	return string(p), nil
}

func filenameMAC(key *crypt.CaseKey, filename string) string {
	return hex.EncodeToString(key.FieldMAC(labelFilenameMAC, []byte(filename)))
}

// textKey is the key that opens a case's text: nil (and no error) when the
// case was crypto-shredded, so its rows still list, with empty text.
func (s *Service) textKey(ctx context.Context, caseID string) (*crypt.CaseKey, error) {
	key, err := s.keys.caseKey(ctx, caseID)
	if errors.Is(err, errShredded) {
		return nil, nil
	}
	return key, err
}

// openCase turns a stored case into what callers see, opening its text.
func (s *Service) openCase(ctx context.Context, r caseRow, providers []string) (Case, error) {
	if r.ShreddedAt != nil {
		s.keys.Forget(r.ID)
	}
	key, err := s.textKey(ctx, r.ID)
	if err != nil {
		return Case{}, err
	}
	return toCase(key, r, providers)
}

// openMaterials opens the filenames of a case's material rows.
func (s *Service) openMaterials(ctx context.Context, caseID string, rows []materialRow) ([]Material, error) {
	out := make([]Material, 0, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	key, err := s.textKey(ctx, caseID)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		// A row that fails its tag is left out, as if it did not exist
		// (checkMaterial logs it); a shredded case has no key, and no
		// text to show either.
		if key != nil && !s.checkMaterial(ctx, key, &r) {
			continue
		}
		name, err := openText(key, labelFilename(r.ID), r.Filename)
		if err != nil {
			return nil, err
		}
		out = append(out, toMaterial(r, name))
	}
	return out, nil
}

// materialOf opens one material row.
func (s *Service) materialOf(ctx context.Context, r materialRow) (Material, error) {
	ms, err := s.openMaterials(ctx, r.CaseID, []materialRow{r})
	if err != nil {
		return Material{}, err
	}
	if len(ms) == 0 {
		return Material{}, errDamagedRow()
	}
	return ms[0], nil
}

// SealLegacy seals the case text that binaries older than sealing wrote in
// plaintext, once per database (component "vault_sealed"). cmd/vaultd runs it
// before serving, so every row it meets is a legacy one; it still skips values
// already sealed. The text of crypto-shredded cases is erased, since nothing
// can seal it.
func (s *Service) SealLegacy(ctx context.Context) error {
	// The proposals key is made, if need be, before the migration's
	// transaction, which on SQLite holds the only write lock.
	if _, err := s.keys.vaultKey(ctx, proposalKey); err != nil {
		return err
	}
	return sqldb.Migrate(ctx, s.db, "vault_sealed", []sqldb.Step{{Version: 1, Name: "seal case text written in plaintext",
		Up: func(tx *gorm.DB, _ string) error { return s.sealLegacy(ctx, tx) }}})
}

func (s *Service) sealLegacy(ctx context.Context, tx *gorm.DB) error {
	var ids []string
	if err := tx.Model(&caseRow{}).Order("id").Pluck("id", &ids).Error; err != nil {
		return fmt.Errorf("list cases: %w", err)
	}
	reseal := func(key *crypt.CaseKey, label string, b []byte) ([]byte, bool, error) {
		if len(b) == 0 || crypt.IsSealedField(b) {
			return b, false, nil
		}
		if key == nil {
			return []byte{}, true, nil
		}
		out, err := sealText(key, label, string(b))
		return out, true, err
	}
	for _, id := range ids {
		key, err := s.textKey(ctx, id)
		if err != nil {
			return err
		}
		var c caseRow
		if err := tx.Select("id, title, product, listing_venue").Where("id = ?", id).Take(&c).Error; err != nil {
			return err
		}
		upd := map[string]any{}
		for _, f := range []struct {
			col, label string
			b          []byte
		}{{"title", labelCaseTitle(id), c.Title}, {"product", labelCaseProduct(id), c.Product}, {"listing_venue", labelCaseVenue(id), c.ListingVenue}} {
			sealed, changed, err := reseal(key, f.label, f.b)
			if err != nil {
				return err
			}
			if changed {
				upd[f.col] = sealed
			}
		}
		if len(upd) > 0 {
			if err := tx.Model(&caseRow{}).Where("id = ?", id).Updates(upd).Error; err != nil {
				return err
			}
		}
		var ms []materialRow
		if err := tx.Select("id, filename").Where("case_id = ?", id).Find(&ms).Error; err != nil {
			return err
		}
		for _, m := range ms {
			name, changed, err := reseal(key, labelFilename(m.ID), m.Filename)
			if err != nil || !changed {
				if err != nil {
					return err
				}
				continue
			}
			mac := "shredded-" + m.ID
			if key != nil {
				mac = filenameMAC(key, string(m.Filename))
			}
			if err := tx.Model(&materialRow{}).Where("id = ?", m.ID).Updates(map[string]any{"filename": name, "filename_mac": mac}).Error; err != nil {
				return err
			}
		}
		var evs []caseEventRow
		if err := tx.Where("case_id = ?", id).Find(&evs).Error; err != nil {
			return err
		}
		for _, e := range evs {
			upd := map[string]any{}
			blanked := e
			for _, f := range []struct {
				col, label string
				b          []byte
				blank      *[]byte
			}{{"reason", labelReason(id, e.Seq), e.Reason, &blanked.Reason}, {"payload", labelPayload(id, e.Seq), e.Payload, &blanked.Payload}} {
				sealed, changed, err := reseal(key, f.label, f.b)
				if err != nil {
					return err
				}
				if changed {
					upd[f.col] = sealed
					*f.blank = sealed
				}
			}
			if key == nil && len(upd) > 0 {
				// A crypto-shredded case's plaintext is dropped, not sealed,
				// so the texts the event's tag says are there are gone:
				// tagged again, if the tag checked as it stood.
				tag, err := s.retagBlanked(ctx, &e, &blanked)
				if err != nil {
					return err
				}
				if tag != nil {
					upd["tag"] = tag
				}
			}
			if len(upd) > 0 {
				if err := tx.Model(&caseEventRow{}).Where("case_id = ? AND seq = ?", id, e.Seq).Updates(upd).Error; err != nil {
					return err
				}
			}
		}
	}
	var props []proposalRow
	if err := tx.Find(&props).Error; err != nil {
		return fmt.Errorf("list proposals: %w", err)
	}
	if len(props) == 0 {
		return nil
	}
	key, err := s.keys.vaultKey(ctx, proposalKey)
	if err != nil {
		return err
	}
	for _, p := range props {
		upd := map[string]any{}
		for _, f := range []struct {
			col string
			b   []byte
		}{{"title", p.Title}, {"product", p.Product}, {"reason", p.Reason}, {"reference", p.Reference}} {
			sealed, changed, err := reseal(key, labelProposal(f.col, p.ID), f.b)
			if err != nil {
				return err
			}
			if changed {
				upd[f.col] = sealed
			}
		}
		if len(upd) > 0 {
			if err := tx.Model(&proposalRow{}).Where("id = ?", p.ID).Updates(upd).Error; err != nil {
				return err
			}
		}
	}
	return nil
}
