package access

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"
)

// TestAccountCache: Authenticate reads the session every time (a logout or
// a disabled account holds on every instance at once) but reuses the
// account and its organisation; a change to the account flushes it on the
// instance that made it, on another instance when the user notice reaches
// it, and, should the notice be lost, once the entry is older than its TTL.
// CachedUser reads through the same cache.
func TestAccountCache(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, nil)
		ctx := context.Background()
		op := f.org(t, "Grid Co", OrgOperator)
		alice := f.user(t, "alice", op, RoleOperator)
		other := f.restart(t) // a second instance on the same database
		s1, err := login(f, "alice", testPassword, "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		for _, svc := range []*Service{f.svc, other} {
			if _, err := svc.Authenticate(ctx, s1.Token); err != nil {
				t.Fatalf("authenticate: %v", err)
			}
		}
		var queries int
		cb := "count_queries_" + dialect
		if err := f.db.Callback().Query().Before("gorm:query").Register(cb, func(*gorm.DB) { queries++ }); err != nil {
			t.Fatal(err)
		}
		// The session is read by its own prepared statement (sessionscan.go),
		// outside GORM: any GORM query here would be an account read.
		if _, err := other.Authenticate(ctx, s1.Token); err != nil || queries != 0 {
			t.Fatalf("cached authenticate: %v, %d account queries, want 0", err, queries)
		}
		if u, err := other.CachedUser(ctx, alice.User.ID); err != nil || u.ID != alice.User.ID || queries != 0 {
			t.Fatalf("cached user: %+v %v, %d queries, want alice from the cache", u, err, queries)
		}
		f.db.Callback().Query().Remove(cb)

		// Sessions are never cached: a logout on one instance is refused
		// on the other at once, notice or not.
		if err := f.svc.Logout(ctx, s1.ID); err != nil {
			t.Fatal(err)
		}
		for _, svc := range []*Service{f.svc, other} {
			if _, err := svc.Authenticate(ctx, s1.Token); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("after logout: %v", err)
			}
		}

		// A role change whose notice is lost: seen once the entry expires.
		s2, err := login(f, "alice", testPassword, "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Authenticate(ctx, s2.Token); err != nil {
			t.Fatal(err)
		}
		// (Written as another instance writes it: tag and all.)
		changed, err := f.svc.userRow(ctx, "id = ?", alice.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		changed.Roles = "operator,provider"
		if err := f.db.Model(&userRow{}).Where("id = ?", alice.User.ID).
			Updates(map[string]any{"roles": changed.Roles, "row_tag": f.svc.tag(tagUsers, changed.tagFields()...)}).Error; err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(accountCacheTTL - time.Millisecond)
		if p, err := other.Authenticate(ctx, s2.Token); err != nil || slices.Contains(p.User.Roles, RoleProvider) {
			t.Fatalf("within the TTL: %v %v, want the cached roles", p.User.Roles, err)
		}
		if u, err := other.CachedUser(ctx, alice.User.ID); err != nil || slices.Contains(u.Roles, RoleProvider) {
			t.Fatalf("cached user within the TTL: %v %v, want the cached roles", u.Roles, err)
		}
		f.clock.Advance(time.Millisecond)
		if u, err := other.CachedUser(ctx, alice.User.ID); err != nil || !slices.Contains(u.Roles, RoleProvider) {
			t.Fatalf("cached user past the TTL: %v %v, want the new roles", u.Roles, err)
		}
		if p, err := other.Authenticate(ctx, s2.Token); err != nil || !slices.Contains(p.User.Roles, RoleProvider) {
			t.Fatalf("past the TTL: %v %v, want the new roles", p.User.Roles, err)
		}

		// The notice flushes at once.
		changed.Roles = "operator"
		if err := f.db.Model(&userRow{}).Where("id = ?", alice.User.ID).
			Updates(map[string]any{"roles": changed.Roles, "row_tag": f.svc.tag(tagUsers, changed.tagFields()...)}).Error; err != nil {
			t.Fatal(err)
		}
		if err := other.HandleNotice(ctx, noticeUser+":"+alice.User.ID); err != nil {
			t.Fatal(err)
		}
		if p, err := other.Authenticate(ctx, s2.Token); err != nil || slices.Contains(p.User.Roles, RoleProvider) {
			t.Fatalf("after the notice: %v %v", p.User.Roles, err)
		}
		if u, err := other.CachedUser(ctx, alice.User.ID); err != nil || slices.Contains(u.Roles, RoleProvider) {
			t.Fatalf("cached user after the notice: %v %v", u.Roles, err)
		}
		if _, err := other.CachedUser(ctx, "no-such-user"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown user: %v, want ErrNotFound", err)
		}

		// Disabling the account is refused everywhere at once.
		if err := f.svc.DisableUser(ctx, alice.User.ID); err != nil {
			t.Fatal(err)
		}
		for _, svc := range []*Service{f.svc, other} {
			if _, err := svc.Authenticate(ctx, s2.Token); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("after disabling: %v", err)
			}
		}
	})
}

// TestAccountCacheDropsAReadThatRacedAFlush: a read that began before a
// change must not be stored after it.
func TestAccountCacheDropsAReadThatRacedAFlush(t *testing.T) {
	c := newAccountCache(time.Minute)
	now := time.Now()
	gen := c.generation()
	c.flushUser("u1") // the change lands while the read is in flight
	c.put("u1", cachedAccount{at: now}, gen)
	if _, ok := c.get("u1", now); ok {
		t.Fatal("a read older than a flush was cached")
	}
	c.put("u1", cachedAccount{at: now}, c.generation())
	if _, ok := c.get("u1", now); !ok {
		t.Fatal("a read after the flush was not cached")
	}
	if _, ok := c.get("u1", now.Add(time.Minute)); ok {
		t.Fatal("an entry as old as the TTL was served")
	}
	c.flushUser("u1")
	if _, ok := c.get("u1", now); ok {
		t.Fatal("the user's flush kept the entry")
	}
}
