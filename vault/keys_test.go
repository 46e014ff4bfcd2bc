package vault

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/crypt"
)

// TestRetireWaitsForKeysBeingStored: a case created by a request that read
// the active master just before a rotation wraps its key to the old master.
// If the old master is retired while that key is being stored, the
// retirement is refused, because it counts the new key; if it was retired
// before, the key is wrapped again to the new master. Either way no key is
// left wrapped to a retired master, whose key file may then be destroyed.
func TestRetireWaitsForKeysBeingStored(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			f.draft() // records the first master as active
			k := f.svc.keys
			old, err := k.ActiveMaster(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			var (
				mu         sync.Mutex
				mode       string // "during" or "before": when Retire runs
				inHook     bool
				rotated    bool
				retireErrs = make(chan error, 1)
			)
			done := func() { mu.Lock(); inHook = false; mu.Unlock() }
			rotate := func() {
				m, err := crypt.GenerateMaster()
				if err != nil {
					t.Error(err)
					return
				}
				k.masters.Add(m)
				if _, err := k.BeginRotation(f.ctx, m); err != nil {
					t.Error(err)
					return
				}
				if rep, err := k.Rewrap(f.ctx, 100, 0); err != nil || rep.Remaining != 0 {
					t.Errorf("rewrap: %+v, %v", rep, err)
				}
			}
			// The request has just read the active master: the rotation
			// happens now, and in "before" the old master is retired too.
			if err := f.svc.db.Callback().Query().After("gorm:query").Register("test:rotate", func(db *gorm.DB) {
				if db.Statement.Table != "vault_masters" || !strings.Contains(db.Statement.SQL.String(), "state =") {
					return
				}
				mu.Lock()
				fire := mode != "" && !rotated && !inHook
				if fire {
					rotated, inHook = true, true
				}
				m := mode
				mu.Unlock()
				if !fire {
					return
				}
				defer done()
				rotate()
				if m == "before" {
					retireErrs <- k.Retire(f.ctx, old)
				}
			}); err != nil {
				t.Fatal(err)
			}
			// In "during", Retire starts while the case and its key are
			// being stored, and is given time to finish if it does not wait.
			if err := f.svc.db.Callback().Create().Before("gorm:create").Register("test:retire", func(db *gorm.DB) {
				mu.Lock()
				fire := mode == "during" && rotated && !inHook && db.Statement.Table == "cases"
				if fire {
					mode = "fired"
				}
				mu.Unlock()
				if !fire {
					return
				}
				go func() { retireErrs <- k.Retire(f.ctx, old) }()
				time.Sleep(300 * time.Millisecond)
			}); err != nil {
				t.Fatal(err)
			}
			for _, when := range []string{"during", "before"} {
				mu.Lock()
				mode, rotated = when, false
				mu.Unlock()
				c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Switches " + when, Product: "SW-1"})
				mu.Lock()
				mode = ""
				mu.Unlock()
				if err != nil {
					t.Fatalf("%s: create case: %v", when, err)
				}
				var retireErr error
				select {
				case retireErr = <-retireErrs:
				case <-time.After(30 * time.Second):
					t.Fatalf("%s: Retire did not return", when)
				}
				var keyRow struct{ Master string }
				if err := f.svc.db.Table("case_keys").Select("master").Where("case_id = ?", c.ID).Take(&keyRow).Error; err != nil {
					t.Fatal(err)
				}
				var state string
				if err := f.svc.db.Table("vault_masters").Select("state").Where("fingerprint = ?", old).Take(&state).Error; err != nil {
					t.Fatal(err)
				}
				if keyRow.Master == old && state == MasterRetired {
					t.Fatalf("%s: the new case's key is wrapped to master %s, which Retire (%v) marked retired", when, old, retireErr)
				}
				switch when {
				case "during":
					if !errors.Is(retireErr, ErrMasterInUse) || keyRow.Master != old || state != MasterRetiring {
						t.Fatalf("during: Retire %v, key on %s (old %s), old master %s; want the key counted and Retire refused", retireErr, keyRow.Master, old, state)
					}
				case "before":
					if retireErr != nil || keyRow.Master == old {
						t.Fatalf("before: Retire %v, key on %s (old %s); want it retired and the key on the new master", retireErr, keyRow.Master, old)
					}
				}
				if _, err := f.svc.GetCase(f.ctx, f.op, c.ID); err != nil {
					t.Fatalf("%s: the new case does not open: %v", when, err)
				}
				// What the refusal asks for: finish the rotation, then retire.
				if when == "during" {
					if _, err := k.Rewrap(f.ctx, 100, 0); err != nil {
						t.Fatal(err)
					}
					if err := k.Retire(f.ctx, old); err != nil {
						t.Fatalf("retire after the rewrap: %v", err)
					}
					old, err = k.ActiveMaster(f.ctx)
					if err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// TestRewrapStopsWhenTheMasterChanges: a rewrap run reads the active master
// when it begins. If meanwhile another rotation makes a new master active,
// rewraps everything to it and retires the one the first run read (whose
// key file may then be destroyed), the first run must not go on to wrap
// keys back to that retired master: it stops with ErrMasterChanged, and
// every key stays on the new master. Nor may it mark the newer rotation
// finished against its own stale master.
func TestRewrapStopsWhenTheMasterChanges(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			f.draft()
			f.draft()
			k := f.svc.keys
			rotate := func() *crypt.Master {
				m, err := crypt.GenerateMaster()
				if err != nil {
					t.Fatal(err)
				}
				k.masters.Add(m)
				from, err := k.ActiveMaster(f.ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := k.BeginRotation(f.ctx, m); err != nil {
					t.Fatal(err)
				}
				if rep, err := k.Rewrap(f.ctx, 100, 0); err != nil || rep.Remaining != 0 {
					t.Fatalf("rewrap: %+v, %v", rep, err)
				}
				if err := k.Retire(f.ctx, from); err != nil {
					t.Fatalf("retire %s: %v", from, err)
				}
				return m
			}
			m2 := rotate()
			var (
				mu    sync.Mutex
				armed = true
				m3    *crypt.Master
			)
			// Right after the run has read the active master (m2), another
			// operator rotates to m3 and retires m2.
			if err := f.svc.db.Callback().Query().After("gorm:query").Register("test:rotate-under-rewrap", func(db *gorm.DB) {
				if db.Statement.Table != "vault_masters" {
					return
				}
				mu.Lock()
				fire := armed
				armed = false
				mu.Unlock()
				if fire {
					m3 = rotate()
				}
			}); err != nil {
				t.Fatal(err)
			}
			// A rotation to m3 that is unfinished as the stale run ends must
			// stay unfinished; the stale run must not mark it.
			_, err := k.Rewrap(f.ctx, 1, 0)
			if !errors.Is(err, ErrMasterChanged) {
				t.Fatalf("a run whose master was retired under it: %v, want ErrMasterChanged", err)
			}
			if m3 == nil {
				t.Fatal("the rotation under the run did not happen: the test did not test")
			}
			for _, table := range []string{"case_keys", "vault_keys"} {
				var onOld, total int64
				f.svc.db.Table(table).Where("master = ?", m2.Fingerprint()).Count(&onOld)
				f.svc.db.Table(table).Where("master = ?", m3.Fingerprint()).Count(&total)
				if onOld != 0 || table == "case_keys" && total != 2 {
					t.Fatalf("%s: %d keys on the retired master, %d on the active one", table, onOld, total)
				}
			}
			// A stale run that reaches its final count after a new rotation
			// began does not finish that rotation.
			m4, err := crypt.GenerateMaster()
			if err != nil {
				t.Fatal(err)
			}
			k.masters.Add(m4)
			mu.Lock()
			armed = false
			mu.Unlock()
			if _, err := k.BeginRotation(f.ctx, m4); err != nil {
				t.Fatal(err)
			}
			err = f.svc.db.Transaction(func(tx *gorm.DB) error { return lockActiveMaster(tx, m3.Fingerprint()) })
			if !errors.Is(err, ErrMasterChanged) {
				t.Fatalf("m3 after the rotation to m4: %v, want ErrMasterChanged", err)
			}
			var open int64
			f.svc.db.Model(&rotationRow{}).Where("finished_at IS NULL AND to_master = ?", m4.Fingerprint()).Count(&open)
			if open != 1 {
				t.Fatalf("%d unfinished rotations to m4", open)
			}
			if rep, err := k.Rewrap(f.ctx, 100, 0); err != nil || rep.Remaining != 0 {
				t.Fatalf("rewrap to m4: %+v, %v", rep, err)
			}
			f.svc.db.Model(&rotationRow{}).Where("finished_at IS NULL").Count(&open)
			if open != 0 {
				t.Fatalf("%d rotations unfinished after a complete rewrap", open)
			}
		})
	}
}

// TestRecoverSkipsKeysWithoutEscrow: a vault holds a case key wrapped to
// its master only (created before escrow was configured), and the master
// is lost. A recovery with the escrow identity moves the vault's own keys
// and every escrowed case key to a new master, lists the one it cannot
// open instead of failing on it (which left the secrets key on the lost
// master, and the vault unable to start), and a second run visits it once
// more and ends. keys status's count shows the gap beforehand.
func TestRecoverSkipsKeysWithoutEscrow(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			k := f.svc.keys
			escrowID, err := crypt.GenerateMaster()
			if err != nil {
				t.Fatal(err)
			}
			// The rows key, which a case's parties are tagged under, is
			// a vault key that the test wants escrowed like the others:
			// made with escrow, then escrow is off for the first case.
			if err := k.masters.SetEscrow(escrowID.Recipient()); err != nil {
				t.Fatal(err)
			}
			if _, err := k.VaultKey(f.ctx, RowsKeyName); err != nil {
				t.Fatal(err)
			}
			if err := k.masters.SetEscrow(""); err != nil {
				t.Fatal(err)
			}
			lost := f.draft() // first, so first in id order: before escrow
			if err := k.masters.SetEscrow(escrowID.Recipient()); err != nil {
				t.Fatal(err)
			}
			kept := []string{f.draft(), f.draft()}
			if _, err := k.VaultKey(f.ctx, "secrets"); err != nil {
				t.Fatal(err)
			}
			var vaultUnescrowed int64
			f.db.Table("vault_keys").Where("escrow = ''").Count(&vaultUnescrowed)
			if vaultUnescrowed != 0 {
				t.Fatalf("%d vault keys without escrow: the test wants them escrowed", vaultUnescrowed)
			}
			gaps, err := k.EscrowGaps(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range gaps {
				want := int64(0)
				if g.Table.Table == "case_keys" {
					want = 1
				}
				if g.Without != want || g.Other != 0 {
					t.Fatalf("escrow gap of %s: %+v, want %d without escrow", g.Table.Table, g, want)
				}
			}

			// The master is lost: only the escrow identity opens anything.
			ms, err := crypt.NewMasters(escrowID)
			if err != nil {
				t.Fatal(err)
			}
			if err := ms.SetEscrow(escrowID.Recipient()); err != nil {
				t.Fatal(err)
			}
			rk := NewKeyring(f.db, nil, KeyringConfig{Masters: ms})
			next, err := crypt.GenerateMaster()
			if err != nil {
				t.Fatal(err)
			}
			ms.Add(next)
			if _, err := rk.BeginRotation(f.ctx, next); err != nil {
				t.Fatal(err)
			}
			for run := range 2 {
				rep, err := rk.Rewrap(f.ctx, 100, 0)
				if err != nil {
					t.Fatalf("recovery run %d: %v", run, err)
				}
				if len(rep.Unopened) != 1 || rep.Unopened[0].ID != lost || rep.Remaining != 1 {
					t.Fatalf("recovery run %d: %+v, want only case %s unopened", run, rep, lost)
				}
			}
			var left int64
			f.db.Table("vault_keys").Where("master <> ?", next.Fingerprint()).Count(&left)
			if left != 0 {
				t.Fatalf("%d vault keys left on the lost master", left)
			}

			// With the new master alone: the vault's keys and the escrowed
			// cases open; the lost case does not.
			after, err := crypt.NewMasters(next)
			if err != nil {
				t.Fatal(err)
			}
			nk := NewKeyring(f.db, nil, KeyringConfig{Masters: after})
			if _, err := nk.VaultKey(f.ctx, "secrets"); err != nil {
				t.Fatalf("secrets key after the recovery: %v", err)
			}
			for _, id := range kept {
				if _, err := nk.CaseKey(f.ctx, id); err != nil {
					t.Fatalf("escrowed case %s after the recovery: %v", id, err)
				}
			}
			if _, err := nk.CaseKey(f.ctx, lost); err == nil {
				t.Fatal("a case key that was never escrowed opened after the master was lost")
			}
		})
	}
}

// TestRecoverStopsAtAVitalKeyWithoutEscrow: a vault key the escrow cannot
// open stops the recovery before any case key moves, naming it.
func TestRecoverStopsAtAVitalKeyWithoutEscrow(t *testing.T) {
	f := newWF(t, sqldbtest.Backends[0], time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
	k := f.svc.keys
	if _, err := k.VaultKey(f.ctx, "proposals"); err != nil {
		t.Fatal(err)
	}
	escrowID, err := crypt.GenerateMaster()
	if err != nil {
		t.Fatal(err)
	}
	if err := k.masters.SetEscrow(escrowID.Recipient()); err != nil {
		t.Fatal(err)
	}
	f.draft()
	ms, err := crypt.NewMasters(escrowID)
	if err != nil {
		t.Fatal(err)
	}
	rk := NewKeyring(f.db, nil, KeyringConfig{Masters: ms})
	next, err := crypt.GenerateMaster()
	if err != nil {
		t.Fatal(err)
	}
	ms.Add(next)
	if _, err := rk.BeginRotation(f.ctx, next); err != nil {
		t.Fatal(err)
	}
	_, err = rk.Rewrap(f.ctx, 100, 0)
	if !errors.Is(err, ErrVitalKeyUnopened) || !strings.Contains(err.Error(), "vault key proposals") {
		t.Fatalf("recovery with the proposals key unescrowed: %v", err)
	}
	var moved int64
	f.db.Table("case_keys").Where("master = ?", next.Fingerprint()).Count(&moved)
	if moved != 0 {
		t.Fatalf("%d case keys moved after a vital key failed", moved)
	}
}

// TestMastersNamed: the masters a copy of the database needs are the
// active one and every one a key row names, once each, sorted; rows from
// before masters were named (an empty master) and tables the database
// lacks name none. Restore refuses keys that lack one of them.
func TestMastersNamed(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			active, err := f.svc.keys.ActiveMaster(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			ids := []string{f.draft(), f.draft(), f.draft()}
			// One case key left on a master being rotated away from, one
			// from before masters were named.
			const old = "0123456789abcdef"
			if err := f.db.Exec("UPDATE case_keys SET master = ? WHERE case_id = ?", old, ids[0]).Error; err != nil {
				t.Fatal(err)
			}
			if err := f.db.Exec("UPDATE case_keys SET master = '' WHERE case_id = ?", ids[1]).Error; err != nil {
				t.Fatal(err)
			}
			got, err := MastersNamed(f.ctx, f.db, KeyTable{Table: "no_such_keys", IDColumn: "id", Kind: "other"})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{old, active}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("masters named: %q, want %q", got, want)
			}
		})
	}
}

// TestRetireRefusesKeysNamingNoMaster: keys stored before masters were named
// stay unnamed when the process that would name them holds more than one
// master. One of them may be wrapped to the master being retired, whose
// file the operator then destroys: retiring is refused until a rewrap has
// opened and named them, and the keys still open afterwards.
func TestRetireRefusesKeysNamingNoMaster(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			id := f.draft()
			k := f.svc.keys
			old, err := k.ActiveMaster(f.ctx)
			if err != nil {
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
			// The keys still wrapped to the old master, as an older
			// vaultd stored them: naming none.
			var unnamed int64
			for _, tb := range k.KeyTables() {
				res := f.svc.db.Exec("UPDATE "+tb.Table+" SET master = '' WHERE master = ?", old)
				if res.Error != nil {
					t.Fatal(res.Error)
				}
				unnamed += res.RowsAffected
			}
			if unnamed == 0 {
				t.Fatal("no key was wrapped to the old master")
			}
			err = k.Retire(f.ctx, old)
			if !errors.Is(err, ErrMasterInUse) || !strings.Contains(err.Error(), "name no master") {
				t.Fatalf("retire with %d unnamed keys: %v, want ErrMasterInUse naming them", unnamed, err)
			}
			if rep, err := k.Rewrap(f.ctx, 100, 0); err != nil || rep.Remaining != 0 {
				t.Fatalf("rewrap: %+v, %v", rep, err)
			}
			if err := k.Retire(f.ctx, old); err != nil {
				t.Fatalf("retire after the rewrap named every key: %v", err)
			}
			// The old master's file is gone: the case key must open with
			// the new one alone.
			fresh := NewKeyring(f.svc.db, m, KeyringConfig{TTL: -1})
			if _, err := fresh.caseKey(f.ctx, id); err != nil {
				t.Fatalf("case key after the old master was retired and dropped: %v", err)
			}
		})
	}
}
