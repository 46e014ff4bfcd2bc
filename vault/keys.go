package vault

// Master keys, rotation and retirement. Every key the vault keeps (case
// keys, the vault's own keys, the supervision key) is a row holding a
// hybrid identity wrapped to one master and to the escrow recipients, and
// naming both by fingerprint. vault_masters says which master is active:
// every instance wraps new keys to that one, whatever else it holds.
//
// A rotation makes a new master active and then rewraps every row, in
// batches of one transaction each, to the new master and the current escrow
// set. The rows themselves are the progress: a run that stops (killed, or
// told to stop after so many keys) leaves some rows on the old master, and
// the next run, seeing an unfinished rotation in vault_key_rotations, goes
// on with those. Blobs, headers and sealed fields are untouched: the keys
// under the masters do not change, only their wrapping. A master is retired
// only once no row names it.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/crypt"
)

// Master states (vault_masters.state).
const (
	MasterActive   = "active"
	MasterRetiring = "retiring"
	MasterRetired  = "retired"
)

// KeyTable names a table of wrapped keys: its id column and the columns
// wrapped, master and escrow. Each owner of such a table (vault, the
// supervision service) lists its own.
type KeyTable struct {
	Table    string
	IDColumn string
	// Kind names its keys in messages ("case", "vault", "supervision").
	Kind string
	// Vital: the vault cannot start (or serve a part of itself) without
	// any of its keys. Rewrap moves these first, and stops at one it
	// cannot open; a case key it cannot open loses that case only.
	Vital bool
}

// KeyTables are the vault's own tables of wrapped keys.
func (k *Keyring) KeyTables() []KeyTable { return ownKeyTables() }

func ownKeyTables() []KeyTable {
	return []KeyTable{{Table: "case_keys", IDColumn: "case_id", Kind: "case"},
		{Table: "vault_keys", IDColumn: "name", Kind: "vault", Vital: true}}
}

// MastersNamed lists, sorted, the masters whose keys a process opening db
// needs: the active one (a process without it refuses to start, as it
// would wrap new keys to another) and every master a row of the vault's
// key tables or of tables (the other owners') is wrapped to. Rows from
// before masters were named (an empty master) are left out: a start names them
// after the only master it holds. A table db lacks (a copy older than it)
// names none. Restore uses it to refuse a backup whose keys it was not
// given before it writes anything.
func MastersNamed(ctx context.Context, db *gorm.DB, tables ...KeyTable) ([]string, error) {
	db = db.WithContext(ctx)
	var fps []string
	if db.Migrator().HasTable(&masterRow{}) {
		if err := db.Model(&masterRow{}).Where("state = ?", MasterActive).Pluck("fingerprint", &fps).Error; err != nil {
			return nil, fmt.Errorf("load active master: %w", err)
		}
	}
	for _, t := range append(ownKeyTables(), tables...) {
		if !db.Migrator().HasTable(t.Table) {
			continue
		}
		var named []string
		if err := db.Raw("SELECT DISTINCT master FROM " + t.Table + " WHERE master <> ''").Scan(&named).Error; err != nil {
			return nil, fmt.Errorf("list the masters of %s: %w", t.Table, err)
		}
		fps = append(fps, named...)
	}
	slices.Sort(fps)
	return slices.Compact(fps), nil
}

// ErrMasterNotHeld means the database names an active master this process
// was not given: starting would wrap new keys to the wrong master.
var ErrMasterNotHeld = errors.New("the active master key is not loaded")

// Masters is the set of master keys the keyring uses.
func (k *Keyring) Masters() *crypt.Masters { return k.masters }

// Init records the master on first use (the one master loaded becomes
// active), names it on rows from before masters were named, and checks that
// this process holds the active master. tables are the other owners' key
// tables.
func (k *Keyring) Init(ctx context.Context, tables ...KeyTable) error {
	db := k.db.WithContext(ctx)
	var active []masterRow
	if err := db.Where("state = ?", MasterActive).Find(&active).Error; err != nil {
		return fmt.Errorf("load masters: %w", err)
	}
	switch len(active) {
	case 0:
		m, err := k.masters.Only()
		if err != nil {
			return err
		}
		err = db.Transaction(func(tx *gorm.DB) error {
			var n int64
			if err := tx.Model(&masterRow{}).Where("state = ?", MasterActive).Count(&n).Error; err != nil || n > 0 {
				return err // another instance won the race
			}
			return tx.Create(&masterRow{Fingerprint: m.Fingerprint(), Recipient: m.Recipient(), State: MasterActive,
				CreatedAt: time.Now().UTC()}).Error
		})
		if err != nil {
			return fmt.Errorf("record master: %w", err)
		}
		return k.Init(ctx, tables...)
	case 1:
	default:
		return fmt.Errorf("%d masters are marked active", len(active))
	}
	fp := active[0].Fingerprint
	if _, err := k.masters.Get(fp); err != nil {
		return fmt.Errorf("%w: the database wraps new keys to master %s; give its key file (VAULT_MASTER_KEY_FILE or <data>/keys/master-%s.age-key)", ErrMasterNotHeld, fp, fp)
	}
	// Rows from before masters were named were wrapped to the only master
	// there was; name it, if this process holds just that one.
	if len(k.masters.Fingerprints()) == 1 {
		for _, t := range append(k.KeyTables(), tables...) {
			if err := db.Exec("UPDATE "+t.Table+" SET master = ? WHERE master = ''", fp).Error; err != nil {
				return fmt.Errorf("name master on %s: %w", t.Table, err)
			}
		}
	}
	return nil
}

// RecordedActiveMaster is the fingerprint of the active master recorded in
// db, "" for a vault that has none yet (first start): a process that finds
// no key file must not generate one for a vault that already has a master.
func RecordedActiveMaster(ctx context.Context, db *gorm.DB) (string, error) {
	var fps []string
	if err := db.WithContext(ctx).Model(&masterRow{}).Where("state = ?", MasterActive).Pluck("fingerprint", &fps).Error; err != nil {
		return "", fmt.Errorf("load masters: %w", err)
	}
	if len(fps) == 0 {
		return "", nil
	}
	return fps[0], nil
}

// ActiveMaster is the fingerprint of the master new keys are wrapped to.
func (k *Keyring) ActiveMaster(ctx context.Context) (string, error) {
	var row masterRow
	err := k.db.WithContext(ctx).Where("state = ?", MasterActive).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		// First key of a vault nobody initialised (tests, tools): the one
		// master held becomes active.
		if err := k.Init(ctx); err != nil {
			return "", err
		}
		err = k.db.WithContext(ctx).Where("state = ?", MasterActive).Take(&row).Error
	}
	if err != nil {
		return "", fmt.Errorf("load active master: %w", err)
	}
	return row.Fingerprint, nil
}

// NewKey generates a key (for a case, or of the vault's own) wrapped to the
// active master and the escrow recipients.
func (k *Keyring) NewKey(ctx context.Context) (crypt.Wrapped, *crypt.CaseKey, error) {
	fp, err := k.ActiveMaster(ctx)
	if err != nil {
		return crypt.Wrapped{}, nil, err
	}
	return k.masters.NewKey(fp)
}

// errMasterRetired: the master a new key was wrapped to was retired before
// the key could be stored.
var errMasterRetired = errors.New("the master was retired meanwhile")

// StoreNewKey generates a key wrapped to the active master and the escrow
// recipients, and has store write it (with whatever goes with it) in one
// transaction that first checks that the master is not retired and holds
// that fact until the transaction ends: a row lock on PostgreSQL, and on
// SQLite the write lock every transaction takes at BEGIN. Retire marks a
// master retired and counts the keys still naming it in one transaction,
// which therefore comes wholly before or after this one: either it counts
// the new key and refuses, or this one finds the master retired and wraps a
// fresh key to the new one. Without the check, a key wrapped by a request
// that read the active master just before a rotation could be stored after
// the old master was retired (and its key file destroyed), leaving that
// key to the escrow alone.
func (k *Keyring) StoreNewKey(ctx context.Context, store func(tx *gorm.DB, w crypt.Wrapped, key *crypt.CaseKey) error) error {
	for attempt := 0; ; attempt++ {
		w, key, err := k.NewKey(ctx)
		if err != nil {
			return err
		}
		err = k.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := lockUsableMaster(tx, w.Master); err != nil {
				return err
			}
			return store(tx, w, key)
		})
		if !errors.Is(err, errMasterRetired) || attempt > 0 {
			return err
		}
	}
}

// lockUsableMaster fails with errMasterRetired unless master fp is recorded
// and not retired, and on PostgreSQL keeps Retire's update of its row
// waiting until tx ends.
func lockUsableMaster(tx *gorm.DB, fp string) error {
	state, err := lockMaster(tx, fp)
	if err != nil {
		return err
	}
	if state == "" || state == MasterRetired {
		return fmt.Errorf("%w: %s", errMasterRetired, fp)
	}
	return nil
}

// lockMaster reads the state of master fp ("" when it is not recorded) and,
// on PostgreSQL, holds a share lock on its row until tx ends, so that a
// rotation or a retirement changing it waits for tx. SQLite's transactions
// hold the database's write lock from BEGIN.
func lockMaster(tx *gorm.DB, fp string) (string, error) {
	q := "SELECT state FROM vault_masters WHERE fingerprint = ?"
	if sqldb.Dialect(tx) == sqldb.Postgres {
		q += " FOR SHARE"
	}
	var states []string
	if err := tx.Raw(q, fp).Scan(&states).Error; err != nil {
		return "", fmt.Errorf("check master %s: %w", fp, err)
	}
	if len(states) != 1 {
		return "", nil
	}
	return states[0], nil
}

// ErrMasterChanged: another rotation made a new master active while Rewrap
// ran. The run stops rather than wrap keys to a master that may be retired
// (and its file destroyed) under it; run it again.
var ErrMasterChanged = errors.New("the active master changed while keys were rewrapped; run keys rewrap again")

// lockActiveMaster fails with ErrMasterChanged unless fp is still the
// active master, and keeps it so until tx ends (lockMaster).
func lockActiveMaster(tx *gorm.DB, fp string) error {
	state, err := lockMaster(tx, fp)
	if err != nil {
		return err
	}
	if state != MasterActive {
		return fmt.Errorf("%w (it was %s, now %s)", ErrMasterChanged, fp, cmp.Or(state, "unrecorded"))
	}
	return nil
}

// Rotation is a master key rotation as recorded.
type Rotation struct {
	ID         int64
	From, To   string
	StartedAt  time.Time
	FinishedAt *time.Time
	Rewrapped  int64
}

func (r rotationRow) rotation() Rotation {
	return Rotation{ID: r.ID, From: r.FromMaster, To: r.ToMaster, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Rewrapped: r.Rewrapped}
}

// PendingRotation returns the unfinished rotation, if any.
func (k *Keyring) PendingRotation(ctx context.Context) (*Rotation, error) {
	var rows []rotationRow
	if err := k.db.WithContext(ctx).Where("finished_at IS NULL").Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load rotations: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	r := rows[len(rows)-1].rotation()
	return &r, nil
}

// ErrRotationPending means a rotation is unfinished: continue it first.
var ErrRotationPending = errors.New("a key rotation is unfinished")

// BeginRotation makes m (already written where every instance finds it, and
// added to the keyring's masters) the active master, marks the old one
// retiring and records the rotation. Rows are rewrapped by Rewrap.
func (k *Keyring) BeginRotation(ctx context.Context, m *crypt.Master) (Rotation, error) {
	if !k.masters.Has(m.Fingerprint()) {
		return Rotation{}, errors.New("begin rotation: the new master is not in the keyring")
	}
	var out rotationRow
	err := k.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&rotationRow{}).Where("finished_at IS NULL").Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrRotationPending
		}
		var old masterRow
		if err := tx.Where("state = ?", MasterActive).Take(&old).Error; err != nil {
			return fmt.Errorf("load active master: %w", err)
		}
		now := time.Now().UTC()
		res := tx.Model(&masterRow{}).Where("fingerprint = ? AND state = ?", old.Fingerprint, MasterActive).Update("state", MasterRetiring)
		if res.Error != nil || res.RowsAffected != 1 {
			return fmt.Errorf("mark master %s retiring: %v", old.Fingerprint, res.Error)
		}
		if err := tx.Create(&masterRow{Fingerprint: m.Fingerprint(), Recipient: m.Recipient(), State: MasterActive, CreatedAt: now}).Error; err != nil {
			return fmt.Errorf("record new master: %w", err)
		}
		out = rotationRow{FromMaster: old.Fingerprint, ToMaster: m.Fingerprint(), StartedAt: now}
		return tx.Create(&out).Error
	})
	if err != nil {
		return Rotation{}, fmt.Errorf("begin rotation: %w", err)
	}
	return out.rotation(), nil
}

// RewrapReport says what one Rewrap run did.
type RewrapReport struct {
	Rewrapped int64 // rows rewrapped by this run
	Remaining int64 // rows still not on the active master and escrow set
	// Unopened are the case keys that no key this process holds opens
	// (after a recovery: keys that were not escrowed, or escrowed to other
	// recipients, and whose master is lost). They are left as they are,
	// and counted in Remaining.
	Unopened []UnopenedKey
}

// UnopenedKey is a stored key Rewrap could not open.
type UnopenedKey struct {
	Table, ID string
	Master    string // the master it is wrapped to
	Escrow    string // the escrow set it is wrapped to, "" for none
	Err       error
}

// ErrVitalKeyUnopened: a key of a vital table (the vault's secrets or
// proposals key, the supervision key) opens with no key this process
// holds. Rewrap stops there: the vault cannot start without it.
var ErrVitalKeyUnopened = errors.New("a key the vault cannot start without opens with no key this process holds")

// rewrapOrder puts the vital tables first: a run that meets a case key it
// cannot open has already moved the keys without which nothing starts.
func rewrapOrder(tables []KeyTable) []KeyTable {
	out := slices.Clone(tables)
	slices.SortStableFunc(out, func(a, b KeyTable) int {
		switch {
		case a.Vital == b.Vital:
			return 0
		case a.Vital:
			return -1
		}
		return 1
	})
	return out
}

// Rewrap brings every row of the vault's key tables and tables to the
// active master and the current escrow set, batch rows per transaction,
// stopping after limit rows (0: no limit). The vital tables go first. A
// case key that no key held opens is skipped and listed in the report
// (each run visits every row once, so a run ends however many there are);
// a vital key that none opens stops the run with ErrVitalKeyUnopened. When
// nothing remains, an unfinished rotation to that master is marked
// finished. A concurrent run or instance is harmless: each row is updated
// only if it is still as read, and each batch only while the master it
// wraps to is still the active one (ErrMasterChanged otherwise: a newer
// rotation began, and its master may retire the one this run read).
func (k *Keyring) Rewrap(ctx context.Context, batch, limit int, tables ...KeyTable) (RewrapReport, error) {
	if batch <= 0 {
		batch = 100
	}
	to, err := k.ActiveMaster(ctx)
	if err != nil {
		return RewrapReport{}, err
	}
	escrow := k.masters.EscrowFingerprint()
	all := rewrapOrder(append(k.KeyTables(), tables...))
	var rep RewrapReport
	db := k.db.WithContext(ctx)
	for _, t := range all {
		after := "" // rows are visited in id order, each once per run
		for limit <= 0 || rep.Rewrapped < int64(limit) {
			n := batch
			if limit > 0 {
				n = min(n, limit-int(rep.Rewrapped))
			}
			b, err := k.rewrapBatch(ctx, t, to, escrow, after, n)
			if err != nil {
				return rep, err
			}
			rep.Rewrapped += int64(b.done)
			rep.Unopened = append(rep.Unopened, b.unopened...)
			if b.done > 0 {
				// Progress, for whoever looks while it runs.
				if err := db.Exec("UPDATE vault_key_rotations SET rewrapped = rewrapped + ? WHERE finished_at IS NULL", b.done).Error; err != nil {
					return rep, fmt.Errorf("record rotation progress: %w", err)
				}
			}
			if b.read < n {
				break
			}
			after = b.last
		}
	}
	err = db.Transaction(func(tx *gorm.DB) error {
		// Counted and finished against the master as it is now, not as it
		// was when the run began.
		if err := lockActiveMaster(tx, to); err != nil {
			return err
		}
		for _, t := range all {
			var n int64
			if err := tx.Table(t.Table).Where("NOT (master = ? AND escrow = ?)", to, escrow).Count(&n).Error; err != nil {
				return fmt.Errorf("count %s: %w", t.Table, err)
			}
			rep.Remaining += n
		}
		if rep.Remaining > 0 {
			return nil
		}
		if err := tx.Model(&rotationRow{}).Where("finished_at IS NULL AND to_master = ?", to).Update("finished_at", time.Now().UTC()).Error; err != nil {
			return fmt.Errorf("finish rotation: %w", err)
		}
		return nil
	})
	return rep, err
}

// ErrEscrowChange: the keys are escrowed to a set of recipients that this
// process is not configured with, and rewrapping them would replace (or
// drop) those disaster-recovery copies. The escrow set is the process's
// configuration (VAULT_ESCROW_RECIPIENTS_FILE), so a command run from a
// shell without it would otherwise strip escrow from every key quietly.
var ErrEscrowChange = errors.New("the keys are escrowed to recipients this process is not configured with")

// CheckEscrow fails with ErrEscrowChange if any key is escrowed to a set of
// recipients other than this process's (keys without escrow may gain it:
// that only adds a copy). Callers that mean to change the set skip it.
func (k *Keyring) CheckEscrow(ctx context.Context, tables ...KeyTable) error {
	gaps, err := k.EscrowGaps(ctx, tables...)
	if err != nil {
		return err
	}
	return k.EscrowChange(gaps)
}

// EscrowChange is CheckEscrow's verdict on counts EscrowGaps already made.
func (k *Keyring) EscrowChange(gaps []EscrowGap) error {
	var n int64
	for _, g := range gaps {
		n += g.Other
	}
	if n == 0 {
		return nil
	}
	have := "no escrow recipients"
	if k.masters.EscrowFingerprint() != "" {
		have = fmt.Sprintf("%d other escrow recipient(s)", k.masters.EscrowCount())
	}
	return fmt.Errorf("%w: %d keys are escrowed to a set this process does not have (it has %s); rewrapping would replace those copies", ErrEscrowChange, n, have)
}

type wrappedRow struct {
	ID      string
	Wrapped []byte
	Master  string
	Escrow  string
}

// batchResult is what one batch of Rewrap did.
type batchResult struct {
	read, done int
	last       string // the id of the last row read
	unopened   []UnopenedKey
}

// rewrapBatch rewraps up to n rows of t with ids after after, in one
// transaction. A case key no key held opens is listed and left as it is,
// so that it holds back neither the rest of its batch nor the run.
func (k *Keyring) rewrapBatch(ctx context.Context, t KeyTable, to, escrow, after string, n int) (batchResult, error) {
	var b batchResult
	err := k.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		b = batchResult{}
		if err := lockActiveMaster(tx, to); err != nil {
			return err
		}
		var rows []wrappedRow
		if err := tx.Table(t.Table).Select(t.IDColumn+" AS id, wrapped, master, escrow").
			Where("NOT (master = ? AND escrow = ?) AND "+t.IDColumn+" > ?", to, escrow, after).
			Order(t.IDColumn).Limit(n).Scan(&rows).Error; err != nil {
			return fmt.Errorf("read %s: %w", t.Table, err)
		}
		b.read = len(rows)
		for _, r := range rows {
			b.last = r.ID
			w, err := k.masters.Rewrap(crypt.Wrapped{Data: r.Wrapped, Master: r.Master, Escrow: r.Escrow}, to)
			if err != nil {
				if t.Vital {
					return fmt.Errorf("%w: %s key %s (%s, wrapped to master %s): %w", ErrVitalKeyUnopened, t.Kind, r.ID, t.Table, r.Master, err)
				}
				b.unopened = append(b.unopened, UnopenedKey{Table: t.Table, ID: r.ID, Master: r.Master, Escrow: r.Escrow, Err: err})
				continue
			}
			res := tx.Table(t.Table).Where(t.IDColumn+" = ? AND master = ? AND escrow = ?", r.ID, r.Master, r.Escrow).
				Updates(map[string]any{"wrapped": w.Data, "master": w.Master, "escrow": w.Escrow})
			if res.Error != nil {
				return fmt.Errorf("store rewrapped %s %s: %w", t.Table, r.ID, res.Error)
			}
			b.done += int(res.RowsAffected)
		}
		return nil
	})
	if err != nil {
		return batchResult{}, err
	}
	return b, nil
}

// EscrowGap counts the keys of one table that are not wrapped to this
// process's escrow set: those without escrow, and those escrowed to
// another set.
type EscrowGap struct {
	Table KeyTable
	// Without: keys wrapped to no escrow recipient while this process has
	// some; lost for good with their master. keys rewrap adds the copies.
	Without int64
	// Other: keys escrowed to another set than this process's.
	Other int64
}

// EscrowGaps counts, per table, the keys not wrapped to this process's
// escrow set, so that an operator sees them before the master is lost.
func (k *Keyring) EscrowGaps(ctx context.Context, tables ...KeyTable) ([]EscrowGap, error) {
	escrow := k.masters.EscrowFingerprint()
	db := k.db.WithContext(ctx)
	var out []EscrowGap
	for _, t := range rewrapOrder(append(k.KeyTables(), tables...)) {
		g := EscrowGap{Table: t}
		if escrow != "" {
			if err := db.Table(t.Table).Where("escrow = ''").Count(&g.Without).Error; err != nil {
				return nil, fmt.Errorf("count %s: %w", t.Table, err)
			}
		}
		if err := db.Table(t.Table).Where("escrow <> '' AND escrow <> ?", escrow).Count(&g.Other).Error; err != nil {
			return nil, fmt.Errorf("count %s: %w", t.Table, err)
		}
		out = append(out, g)
	}
	return out, nil
}

// MasterStatus is one master and how many rows name it.
type MasterStatus struct {
	Fingerprint string
	State       string
	Keys        int64
	Held        bool // this process holds it
}

// Status lists every master recorded, newest state first.
func (k *Keyring) Status(ctx context.Context, tables ...KeyTable) ([]MasterStatus, error) {
	var rows []masterRow
	if err := k.db.WithContext(ctx).Order("created_at").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load masters: %w", err)
	}
	out := make([]MasterStatus, 0, len(rows))
	for _, r := range rows {
		n, err := k.countWrapped(k.db.WithContext(ctx), r.Fingerprint, tables)
		if err != nil {
			return nil, err
		}
		out = append(out, MasterStatus{Fingerprint: r.Fingerprint, State: r.State, Keys: n, Held: k.masters.Has(r.Fingerprint)})
	}
	return out, nil
}

func (k *Keyring) countWrapped(db *gorm.DB, fp string, tables []KeyTable) (int64, error) {
	var total int64
	for _, t := range append(k.KeyTables(), tables...) {
		var n int64
		if err := db.Table(t.Table).Where("master = ?", fp).Count(&n).Error; err != nil {
			return 0, fmt.Errorf("count %s: %w", t.Table, err)
		}
		total += n
	}
	return total, nil
}

// ErrMasterInUse means a master cannot be retired: keys are still wrapped
// to it, or it is the active one.
var ErrMasterInUse = errors.New("master key still in use")

// Retire marks a retiring master retired, refusing while any row of the
// key tables names it (or while it is active). After it, the master's key
// file may be destroyed. The mark and the count are one transaction, which
// waits for any StoreNewKey that has checked this master and counts what it
// stored.
func (k *Keyring) Retire(ctx context.Context, fp string, tables ...KeyTable) error {
	var row masterRow
	if err := k.db.WithContext(ctx).Where("fingerprint = ?", fp).Take(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("no master %s is recorded", fp)
		}
		return fmt.Errorf("load master %s: %w", fp, err)
	}
	switch row.State {
	case MasterActive:
		return fmt.Errorf("%w: %s is the active master; rotate first", ErrMasterInUse, fp)
	case MasterRetired:
		return nil
	}
	return k.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The update first: on PostgreSQL it waits for the keys being
		// stored under a lock on this row, and the count, a statement
		// after it, then sees them.
		res := tx.Model(&masterRow{}).Where("fingerprint = ? AND state = ?", fp, MasterRetiring).
			Updates(map[string]any{"state": MasterRetired, "retired_at": time.Now().UTC()})
		if res.Error != nil {
			return fmt.Errorf("retire master %s: %w", fp, res.Error)
		}
		if res.RowsAffected == 0 {
			return nil // retired meanwhile by another run
		}
		n, err := k.countWrapped(tx, fp, tables)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %d keys are still wrapped to %s; run vaultd keys rewrap (or keys rotate, to finish an unfinished rotation) first", ErrMasterInUse, n, fp)
		}
		// A key stored before masters were named, and left unnamed because
		// the process that named them held more than one master (Init), may
		// be wrapped to this one: retiring it, and destroying its file,
		// would lose that key. Rewrap opens such keys with whichever master
		// is held and names the new one.
		if n, err = countUnnamed(tx, append(k.KeyTables(), tables...)); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %d keys name no master (stored before masters were named) and may be wrapped to %s; run vaultd keys rewrap first", ErrMasterInUse, n, fp)
		}
		return nil
	})
}

// countUnnamed counts the keys of tables that name no master.
func countUnnamed(db *gorm.DB, tables []KeyTable) (int64, error) {
	var total int64
	for _, t := range tables {
		var n int64
		if err := db.Table(t.Table).Where("master = ''").Count(&n).Error; err != nil {
			return 0, fmt.Errorf("count %s: %w", t.Table, err)
		}
		total += n
	}
	return total, nil
}
