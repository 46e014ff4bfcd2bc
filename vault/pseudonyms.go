package vault

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit/sqldb"
)

// Pseudonyms name the people of one case to each of its parties: a letter
// for the role and a number in order of first appearance to that party ("R3"
// is the third reviewer this party was shown). Each party has its own
// numbers, so that neither a name seen nor a name tried (a complaint's
// subject) tells a party whom the others were shown. They are stored, so
// they stay stable, and only the vault maps them back to users, for
// inspectors (a complaint may name a pseudonym as its subject).

// pseudonymLetters gives a person's letter by the first role held, in this
// order.
var pseudonymLetters = []struct {
	role   access.Role
	letter string
}{
	{access.RoleReviewer, "R"},
	{access.RoleMemberUnit, "M"},
	{access.RoleOfficeAdmin, "A"},
	{access.RoleInspector, "I"},
	{access.RoleOperator, "O"},
	{access.RoleProvider, "P"},
	{access.RoleSysadmin, "S"},
}

// person is what the party views need to know about an actor. user is
// false for actors that are no account ("system", "anonymous", "cli"):
// they are shown as they are.
type person struct {
	user      bool
	org       string
	inspector bool
	letter    string
}

// people looks up actors, and their pseudonyms, once per request.
type people struct {
	s     *Service
	known map[string]person
	names map[[3]string]string // (case, viewer org, user) -> pseudonym
}

func (s *Service) newPeople() *people {
	return &people{s: s, known: map[string]person{}, names: map[[3]string]string{}}
}

func (pp *people) of(ctx context.Context, userID string) (person, error) {
	if p, ok := pp.known[userID]; ok {
		return p, nil
	}
	p := person{letter: "U"}
	if validID(userID) {
		u, err := pp.s.access.CachedUser(ctx, userID)
		switch {
		case errors.Is(err, access.ErrNotFound):
		case err != nil:
			return p, fmt.Errorf("look up user: %w", err)
		default:
			p.user, p.org, p.inspector = true, u.OrgID, u.Has(access.RoleInspector)
			for _, l := range pseudonymLetters {
				if u.Has(l.role) {
					p.letter = l.letter
					break
				}
			}
		}
	}
	pp.known[userID] = p
	return p, nil
}

// pseudonym returns the user's pseudonym on the case for the viewer org,
// giving the next free one of the user's letter on first use. Racers settle
// through the unique index: a lost race means another user took that
// pseudonym and committed, so n people first seen by a party at once need
// at most n-1 retries (the same bound as the version number,
// maxVersionRaces).
func (s *Service) pseudonym(ctx context.Context, caseID, viewerOrg, userID, letter string) (string, error) {
	db := s.db.WithContext(ctx)
	for range maxVersionRaces {
		var row partyPseudonymRow
		err := db.Where("case_id = ? AND viewer_org = ? AND user_id = ?", caseID, viewerOrg, userID).Take(&row).Error
		if err == nil {
			return row.Pseudonym, nil
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return "", fmt.Errorf("load pseudonym: %w", err)
		}
		var taken []string
		if err := db.Model(&partyPseudonymRow{}).Where("case_id = ? AND viewer_org = ?", caseID, viewerOrg).Pluck("pseudonym", &taken).Error; err != nil {
			return "", fmt.Errorf("load pseudonyms: %w", err)
		}
		n := 0
		for _, t := range taken {
			if rest, ok := strings.CutPrefix(t, letter); ok {
				if k, err := strconv.Atoi(rest); err == nil && k > n {
					n = k
				}
			}
		}
		row = partyPseudonymRow{CaseID: caseID, ViewerOrg: viewerOrg, UserID: userID, Pseudonym: letter + strconv.Itoa(n+1), CreatedAt: time.Now().UTC()}
		err = db.Create(&row).Error
		if err == nil {
			return row.Pseudonym, nil
		}
		if !errors.Is(err, gorm.ErrDuplicatedKey) {
			return "", fmt.Errorf("store pseudonym: %w", err)
		}
	}
	return "", errors.New("store pseudonym: too many concurrent attempts")
}

// display is how an actor appears to the viewer org on a case: as recorded
// when of the viewer's own organisation, else by pseudonym.
func (pp *people) display(ctx context.Context, viewerOrg, caseID, userID string) (string, error) {
	if userID == "" {
		return "", nil
	}
	p, err := pp.of(ctx, userID)
	if err != nil {
		return "", err
	}
	if !p.user || p.org == viewerOrg {
		return userID, nil
	}
	k := [3]string{caseID, viewerOrg, userID}
	if name, ok := pp.names[k]; ok {
		return name, nil
	}
	name, err := pp.s.pseudonym(ctx, caseID, viewerOrg, userID, p.letter)
	if err == nil {
		pp.names[k] = name
	}
	return name, err
}

// Pseudonym is how userID appears to the party viewerOrg of caseID (given
// on first use). supervision shows it to a complaint's filer.
func (s *Service) Pseudonym(ctx context.Context, caseID, viewerOrg, userID string) (string, error) {
	p, err := s.newPeople().of(ctx, userID)
	if err != nil {
		return "", err
	}
	return s.pseudonym(ctx, caseID, viewerOrg, userID, p.letter)
}

// ResolvePseudonym maps a pseudonym the party viewerOrg was shown on caseID
// back to the user; ok is false when that party was shown no such name,
// whatever the other parties were shown.
func (s *Service) ResolvePseudonym(ctx context.Context, caseID, viewerOrg, pseudonym string) (userID string, ok bool, err error) {
	// As typed: "r3", " R3 ", or "Ｒ３" from an input method left in
	// full-width mode, which compatibility normalisation (NFKC) folds.
	// Only ASCII letters are raised: Unicode would raise "ſ" to "S".
	// Normalisation costs in proportion to its input, which comes from a
	// request body: text too long to fold into a 16-byte pseudonym
	// (at most 4 bytes per character) is nobody, unread.
	pseudonym = strings.TrimSpace(pseudonym)
	if len(pseudonym) > 4*16 {
		return "", false, nil
	}
	pseudonym = strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, strings.TrimSpace(norm.NFKC.String(pseudonym)))
	if len(pseudonym) > 16 || !sqldb.Storable(pseudonym) {
		return "", false, nil
	}
	var row partyPseudonymRow
	err = s.db.WithContext(ctx).Where("case_id = ? AND viewer_org = ? AND pseudonym = ?", caseID, viewerOrg, pseudonym).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("resolve pseudonym: %w", err)
	}
	return row.UserID, true, nil
}
