package access

import (
	"context"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestSessionColumnsMatchModel: the hand-written session lookup reads every
// column of sessionRow, each into its own field.
func TestSessionColumnsMatchModel(t *testing.T) {
	var r sessionRow
	sqldbtest.CheckColumns(t, &r, r.columns(), true)
}

// TestSessionLookupReadsWhatGORMReads: the prepared lookup returns the row
// GORM returns, NULL and set revocations and second factors included; an
// unknown hash is gorm.ErrRecordNotFound; and Authenticate still refuses a
// revoked session and one whose user is disabled.
func TestSessionLookupReadsWhatGORMReads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, nil)
		ctx := context.Background()
		op := f.org(t, "Grid Co", OrgOperator)
		f.user(t, "alice", op, RoleOperator)
		var sessions []Session
		for range 3 {
			s, err := f.svc.Login(ctx, Credentials{Username: "alice", Password: testPassword}, "10.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			sessions = append(sessions, s)
		}
		// One revoked, one with a second factor proven elsewhere.
		if err := f.svc.Logout(ctx, sessions[1].ID); err != nil {
			t.Fatal(err)
		}
		if err := f.db.Model(&sessionRow{}).Where("id = ?", sessions[2].ID).Update("second_factor", "otp").Error; err != nil {
			t.Fatal(err)
		}
		for i, s := range sessions {
			var want sessionRow
			if err := f.db.Where("id = ?", s.ID).Take(&want).Error; err != nil {
				t.Fatal(err)
			}
			got, err := f.svc.sessions.byTokenHash(ctx, hashToken(s.Token))
			if err != nil {
				t.Fatalf("session %d: %v", i, err)
			}
			if !sameSession(got, want) {
				t.Errorf("session %d: got %+v, GORM read %+v", i, got, want)
			}
		}
		if r, _ := f.svc.sessions.byTokenHash(ctx, hashToken(sessions[1].Token)); r.RevokedAt == nil {
			t.Error("the revoked session reads as unrevoked")
		}
		if r, _ := f.svc.sessions.byTokenHash(ctx, hashToken(sessions[2].Token)); r.SecondFactor != "otp" {
			t.Errorf("second factor %q, want otp", r.SecondFactor)
		}
		if _, err := f.svc.sessions.byTokenHash(ctx, hashToken("no such token")); !errors.Is(err, gorm.ErrRecordNotFound) {
			t.Errorf("unknown token: %v, want gorm.ErrRecordNotFound", err)
		}

		if _, err := f.svc.Authenticate(ctx, sessions[0].Token); err != nil {
			t.Fatalf("live session: %v", err)
		}
		if _, err := f.svc.Authenticate(ctx, sessions[1].Token); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("revoked session: %v, want ErrUnauthenticated", err)
		}
		// Past the idle timeout, read from the stored last_seen_at.
		f.clock.Advance(9 * time.Hour)
		if _, err := f.svc.Authenticate(ctx, sessions[0].Token); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("idle session: %v, want ErrUnauthenticated", err)
		}
	})
}

func sameSession(a, b sessionRow) bool {
	sameTime := func(x, y *time.Time) bool {
		return (x == nil) == (y == nil) && (x == nil || x.Equal(*y))
	}
	return a.ID == b.ID && a.TokenHash == b.TokenHash && a.UserID == b.UserID && a.SecondFactor == b.SecondFactor &&
		a.CreatedAt.Equal(b.CreatedAt) && a.LastSeenAt.Equal(b.LastSeenAt) && a.AbsoluteEnd.Equal(b.AbsoluteEnd) &&
		sameTime(a.RevokedAt, b.RevokedAt)
}
