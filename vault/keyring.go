package vault

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault/crypt"
)

// KeyringConfig bounds the keyring's cache of unwrapped case keys. Zero
// values take the defaults; a negative TTL turns the cache off.
type KeyringConfig struct {
	// TTL is how long an unwrapped case key stays in memory after it was
	// unwrapped (default 1 minute). See vault/crypt's threat model for the
	// trade-off.
	TTL time.Duration
	// Size is the most case keys kept at once (default 1024).
	Size int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Masters holds the master keys and escrow recipients (default: a set
	// of the one master given to NewKeyring, no escrow).
	Masters *crypt.Masters
	// Logger receives the refusals of keys whose row tag does not check
	// (default slog.Default()).
	Logger *slog.Logger
}

// Keyring opens case keys (stored wrapped to the master key in case_keys)
// and seals and opens the case's confidential text fields with them. Opening
// a wrapped key costs a hybrid post-quantum decryption (about half a
// millisecond), and listing 50 cases would need 50; so it keeps recently used
// keys in a small bounded cache for a short time. It is safe for concurrent
// use, and it is the access.CaseSealer the access package seals
// declarations with.
type Keyring struct {
	db      *gorm.DB
	masters *crypt.Masters
	log     *slog.Logger
	ttl     time.Duration
	size    int
	now     func() time.Time

	mu    sync.Mutex
	cache map[string]cached[*crypt.CaseKey]
	// files are materials' unwrapped file keys, by case key and header
	// (see FileKey), under the same bound and time to live.
	files map[fileKeyID]cached[*crypt.FileKey]
	// own are the vault's own keys (vault_keys), for text of no case.
	ownMu sync.Mutex
	own   map[string]*crypt.CaseKey
}

type cached[V any] struct {
	key   V
	until time.Time
}

// fileKeyID names a file key by its case key and its header's hash: a
// header rewrapped to a new case key is a new entry.
type fileKeyID struct {
	caseKey string // the case key's fingerprint
	header  [sha256.Size]byte
}

var _ access.CaseSealer = (*Keyring)(nil)

// NewKeyring makes a keyring over the vault's case_keys table.
func NewKeyring(db *gorm.DB, master *crypt.Master, cfg KeyringConfig) *Keyring {
	if cfg.TTL == 0 {
		cfg.TTL = time.Minute
	}
	if cfg.Size <= 0 {
		cfg.Size = 1024
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Masters == nil {
		cfg.Masters, _ = crypt.NewMasters(master)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Keyring{db: db, masters: cfg.Masters, log: cfg.Logger, ttl: cfg.TTL, size: cfg.Size, now: cfg.Now, cache: map[string]cached[*crypt.CaseKey]{},
		files: map[fileKeyID]cached[*crypt.FileKey]{}, own: map[string]*crypt.CaseKey{}}
}

// errShredded says the case's key row is gone: its documents and sealed
// text are unreadable for good.
var errShredded = errors.New("case key shredded")

// CaseKey returns the unwrapped key of a case; ErrConflict case_shredded when
// its wrapped key no longer exists.
func (k *Keyring) CaseKey(ctx context.Context, caseID string) (*crypt.CaseKey, error) {
	key, err := k.caseKey(ctx, caseID)
	if errors.Is(err, errShredded) {
		return nil, fail(ErrConflict, "case_shredded", "this case's key no longer exists")
	}
	return key, err
}

func (k *Keyring) caseKey(ctx context.Context, caseID string) (*crypt.CaseKey, error) {
	now := k.now()
	if k.ttl > 0 {
		k.mu.Lock()
		c, ok := k.cache[caseID]
		k.mu.Unlock()
		if ok && now.Before(c.until) {
			return c.key, nil
		}
	}
	var row caseKeyRow
	if err := k.db.WithContext(ctx).Where("case_id = ?", caseID).Take(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, errShredded
		}
		return nil, fmt.Errorf("load key of case %s: %w", caseID, err)
	}
	// The tag is checked here, once per unwrap: keys served from the
	// cache were checked when they were put there.
	key, err := k.OpenTaggedKey(ctx, "case_keys", caseID, row.wrapped(), row.Tag)
	if err != nil {
		return nil, fmt.Errorf("open key of case %s: %w", caseID, err)
	}
	if k.ttl > 0 {
		k.put(caseID, key, now)
	}
	return key, nil
}

// put caches a key.
func (k *Keyring) put(caseID string, key *crypt.CaseKey, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	putBounded(k.cache, caseID, key, now, k.ttl, k.size)
}

// putBounded caches a key, making room first: expired entries go, and if
// the cache is still full, the entry closest to expiry (the oldest) goes.
func putBounded[K comparable, V any](m map[K]cached[V], id K, key V, now time.Time, ttl time.Duration, size int) {
	if _, ok := m[id]; !ok && len(m) >= size {
		var oldest K
		var oldestUntil time.Time
		found := false
		for id, c := range m {
			if !now.Before(c.until) {
				delete(m, id)
				continue
			}
			if !found || c.until.Before(oldestUntil) {
				oldest, oldestUntil, found = id, c.until, true
			}
		}
		if len(m) >= size {
			delete(m, oldest)
		}
	}
	m[id] = cached[V]{key: key, until: now.Add(ttl)}
}

// FileKey returns the file key of a material's header, sealed to the case
// key key. Opening a header is a hybrid post-quantum decapsulation (about
// a quarter of a millisecond, and most of a small read's allocations), so
// file keys are cached like case keys: same bound, same time to live, and
// the same trade-off (vault/crypt's threat model). A file key opens one
// material only, which the case key cached beside it opens anyway.
func (k *Keyring) FileKey(key *crypt.CaseKey, header []byte) (*crypt.FileKey, error) {
	if k.ttl <= 0 {
		return key.OpenHeader(header)
	}
	id := fileKeyID{caseKey: key.Fingerprint(), header: sha256.Sum256(header)}
	now := k.now()
	k.mu.Lock()
	c, ok := k.files[id]
	k.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.key, nil
	}
	fk, err := key.OpenHeader(header)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	putBounded(k.files, id, fk, now, k.ttl, k.size)
	k.mu.Unlock()
	return fk, nil
}

// Forget drops a case's key from the cache, for a caller that just deleted
// its wrapped key (crypto-shredding) in this process, and with it every
// cached file key: shredding is rare, and file keys are cheap to reopen.
func (k *Keyring) Forget(caseID string) {
	k.mu.Lock()
	delete(k.cache, caseID)
	clear(k.files)
	k.mu.Unlock()
}

// Seal seals plaintext under the case's key, bound to label
// (access.CaseSealer).
func (k *Keyring) Seal(ctx context.Context, caseID, label string, plaintext []byte) ([]byte, error) {
	key, err := k.sealerKey(ctx, caseID)
	if err != nil {
		return nil, err
	}
	return key.SealField(label, plaintext)
}

// Open opens a value Seal sealed for the same case and label
// (access.CaseSealer).
func (k *Keyring) Open(ctx context.Context, caseID, label string, sealed []byte) ([]byte, error) {
	key, err := k.sealerKey(ctx, caseID)
	if err != nil {
		return nil, err
	}
	return key.OpenField(label, sealed)
}

func (k *Keyring) sealerKey(ctx context.Context, caseID string) (*crypt.CaseKey, error) {
	key, err := k.caseKey(ctx, caseID)
	if errors.Is(err, errShredded) {
		return nil, fmt.Errorf("case %s: %w", caseID, access.ErrNotFound)
	}
	return key, err
}

// VaultKey returns the vault's own key of that name, creating it on first
// use (see vaultKey); cmd/vaultd seals account secrets with one.
func (k *Keyring) VaultKey(ctx context.Context, name string) (*crypt.CaseKey, error) {
	return k.vaultKey(ctx, name)
}

// vaultKey returns the vault's own key of that name (stored wrapped to the
// master key in vault_keys), creating it on first use; two instances racing
// settle on one row. It seals text that belongs to no case yet (a member
// unit's proposal).
func (k *Keyring) vaultKey(ctx context.Context, name string) (*crypt.CaseKey, error) {
	k.ownMu.Lock()
	defer k.ownMu.Unlock()
	if key := k.own[name]; key != nil {
		return key, nil
	}
	db := k.db.WithContext(ctx)
	var row vaultKeyRow
	err := db.Where("name = ?", name).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		err = k.StoreNewKey(ctx, func(tx *gorm.DB, w crypt.Wrapped, key *crypt.CaseKey) error {
			row = vaultKeyRow{Name: name, Wrapped: w.Data, Master: w.Master, Escrow: w.Escrow, CreatedAt: time.Now().UTC(),
				Tag: keyTag(key, "vault_keys", name)}
			return tx.Create(&row).Error
		})
		if err != nil {
			// Another instance may have won the race; take its key.
			if rerr := db.Where("name = ?", name).Take(&row).Error; rerr != nil {
				err = fmt.Errorf("create: %w; then read: %w", err, rerr)
			} else {
				err = nil
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load vault key %s: %w", name, err)
	}
	key, err := k.OpenTaggedKey(ctx, "vault_keys", name, crypt.Wrapped{Data: row.Wrapped, Master: row.Master, Escrow: row.Escrow}, row.Tag)
	if err != nil {
		return nil, fmt.Errorf("open vault key %s: %w", name, err)
	}
	k.own[name] = key
	return key, nil
}
