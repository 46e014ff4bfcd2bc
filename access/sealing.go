package access

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

// CaseSealer encrypts free text that belongs to a case (a declaration's
// statement) with that case's key, so the database holds no plaintext of it.
// The vault owns case keys and implements it; cmd/vaultd wires it through
// Options.CaseSealer. label binds a sealed value to where it is stored.
type CaseSealer interface {
	// Seal and Open fail with an error matching ErrNotFound when the case's
	// key no longer exists (the case was crypto-shredded).
	Seal(ctx context.Context, caseID, label string, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, caseID, label string, sealed []byte) ([]byte, error)
}

// plainCaseSealer keeps text as it is: the default for tests and tools that
// never record declarations. A server always sets Options.CaseSealer.
type plainCaseSealer struct{}

func (plainCaseSealer) Seal(_ context.Context, _, _ string, p []byte) ([]byte, error) { return p, nil }
func (plainCaseSealer) Open(_ context.Context, _, _ string, s []byte) ([]byte, error) { return s, nil }

func declarationLabel(id string) string { return "access_declarations.statement/" + id }

// sealStatement seals a declaration's statement for its row.
func (s *Service) sealStatement(ctx context.Context, caseID, declID, statement string) ([]byte, error) {
	b, err := s.caseSeal.Seal(ctx, caseID, declarationLabel(declID), []byte(statement))
	if err != nil {
		return nil, fmt.Errorf("seal declaration statement: %w", err)
	}
	return b, nil
}

// SealLegacy seals the statements of declarations recorded before
// statements were sealed, once per database (component "access_sealed"). It
// runs before the server takes requests, so every row it finds is one an
// older binary wrote in plaintext.
func (s *Service) SealLegacy(ctx context.Context) error {
	return sqldb.Migrate(ctx, s.db, "access_sealed", []sqldb.Step{{Version: 1, Name: "seal declaration statements",
		Up: func(tx *gorm.DB, _ string) error {
			var rows []declarationRow
			if err := tx.Select("id, case_id, statement").Find(&rows).Error; err != nil {
				return err
			}
			for _, r := range rows {
				b, err := s.sealStatement(ctx, r.CaseID, r.ID, string(r.Statement))
				if errors.Is(err, ErrNotFound) {
					// The case was crypto-shredded: its text goes too.
					b, err = []byte{}, nil
				}
				if err != nil {
					return err
				}
				if err := tx.Model(&declarationRow{}).Where("id = ?", r.ID).Update("statement", b).Error; err != nil {
					return err
				}
			}
			return nil
		}}})
}
