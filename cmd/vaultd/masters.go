package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"filippo.io/age/plugin"

	"github.com/crvault/crvault/vault/crypt"
)

// pluginUI answers an age plugin's requests: vaultd runs unattended, so
// messages (a token asking to be touched) go to the log and requests for a
// PIN are refused (set the token's PIN policy to once or never, or cache it
// with the plugin's own agent).
func pluginUI(log *slog.Logger) *plugin.ClientUI {
	return &plugin.ClientUI{
		DisplayMessage: func(name, msg string) error {
			log.Warn("age plugin says", "plugin", name, "message", msg)
			return nil
		},
		RequestValue: func(name, prompt string, _ bool) (string, error) {
			log.Error("age plugin asks for a value; vaultd cannot answer", "plugin", name, "prompt", prompt)
			return "", errors.New("vaultd runs unattended")
		},
		Confirm: func(name, prompt, _, _ string) (bool, error) {
			log.Error("age plugin asks for a confirmation; vaultd cannot answer", "plugin", name, "prompt", prompt)
			return false, errors.New("vaultd runs unattended")
		},
		WaitTimer: func(name string) { log.Warn("waiting for the age plugin (touch the token?)", "plugin", name) },
	}
}

// unsealIdentities reads VAULT_MASTER_IDENTITY_FILE: the identities (an
// age plugin's, usually) that open sealed master key files.
func unsealIdentities(cfg config, log *slog.Logger) ([]age.Identity, error) {
	if cfg.MasterIdentityFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(cfg.MasterIdentityFile)
	if err != nil {
		return nil, fmt.Errorf("%w: VAULT_MASTER_IDENTITY_FILE: %w", crypt.ErrNoKey, err)
	}
	defer clear(b)
	ids, err := crypt.ParseUnsealIdentities(string(b), pluginUI(log))
	if err != nil {
		return nil, fmt.Errorf("%w: VAULT_MASTER_IDENTITY_FILE: %w", crypt.ErrNoKey, err)
	}
	return ids, nil
}

// sealRecipients parses VAULT_MASTER_RECIPIENTS: what new master key files
// are sealed to (nil: written plain, mode 0600).
func sealRecipients(cfg config, log *slog.Logger) ([]age.Recipient, error) {
	if strings.TrimSpace(cfg.MasterRecipients) == "" {
		return nil, nil
	}
	rs, err := crypt.ParseSealRecipients(cfg.MasterRecipients, pluginUI(log))
	if err != nil {
		return nil, fmt.Errorf("VAULT_MASTER_RECIPIENTS: %w", err)
	}
	return rs, nil
}

// masterFiles lists VAULT_MASTER_KEY_FILE (comma separated).
func (c config) masterFiles() []string {
	var out []string
	for _, f := range strings.Split(c.MasterKeyFile, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// readMasters loads every master the configuration gives: VAULT_MASTER_KEY,
// the files of VAULT_MASTER_KEY_FILE and the master*.age-key files of
// <data>/keys (where rotations write new masters), plain or sealed.
func readMasters(cfg config, unseal []age.Identity) ([]*crypt.Master, error) {
	return readMastersWith(cfg, cfg.keyDir(), unseal)
}

// readMastersWith is readMasters with the master*.age-key files of keyDir
// in place of <data>/keys: restore reads the masters the restored
// environment will hold from the backup's keys before it installs them.
func readMastersWith(cfg config, keyDir string, unseal []age.Identity) ([]*crypt.Master, error) {
	var ms []*crypt.Master
	if cfg.MasterKey != "" {
		m, err := crypt.ParseMaster(cfg.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("VAULT_MASTER_KEY: %w", err)
		}
		ms = append(ms, m)
	}
	for _, f := range cfg.masterFiles() {
		m, err := crypt.LoadMasterFile(f, unseal)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	dir, err := crypt.LoadKeyDir(keyDir, unseal)
	if err != nil {
		return nil, err
	}
	return append(ms, dir...), nil
}

// loadMasters builds the process's set of masters and escrow recipients.
// With no master anywhere, the first start generates one into <data>/keys:
// sealed to VAULT_MASTER_RECIPIENTS when set, else a plain file of mode
// 0600. No key, no start.
//
// recorded is the active master the database names ("" on a new vault):
// with one recorded and no key file found, nothing is generated.
func loadMasters(cfg config, log *slog.Logger, recorded string) (*crypt.Masters, error) {
	unseal, err := unsealIdentities(cfg, log)
	if err != nil {
		return nil, err
	}
	ms, err := readMasters(cfg, unseal)
	if err != nil {
		return nil, err
	}
	ms = append(ms, cfg.extraMasters...)
	if len(ms) == 0 && recorded != "" {
		return nil, fmt.Errorf("%w: the vault's master key %s is not loaded (%s, VAULT_MASTER_KEY_FILE or VAULT_MASTER_KEY); if it is lost, run vaultd keys recover --escrow-identity FILE",
			crypt.ErrNoKey, recorded, cfg.keyDir())
	}
	if len(ms) == 0 {
		m, err := firstMaster(cfg, log)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	set, err := crypt.NewMasters(ms...)
	if err != nil {
		return nil, err
	}
	// Another process may rotate while this one runs: a row naming a
	// master this one lacks re-reads the sources once.
	set.SetReload(func() ([]*crypt.Master, error) { return readMasters(cfg, unseal) })
	if cfg.EscrowFile != "" {
		b, err := os.ReadFile(cfg.EscrowFile)
		if err != nil {
			return nil, fmt.Errorf("VAULT_ESCROW_RECIPIENTS_FILE: %w", err)
		}
		if err := set.SetEscrow(string(b)); err != nil {
			return nil, fmt.Errorf("VAULT_ESCROW_RECIPIENTS_FILE: %w", err)
		}
	}
	return set, nil
}

func firstMaster(cfg config, log *slog.Logger) (*crypt.Master, error) {
	rs, err := sealRecipients(cfg, log)
	if err != nil {
		return nil, err
	}
	if rs == nil {
		return crypt.LoadOrCreateMaster(cfg.keyDir())
	}
	if err := os.MkdirAll(cfg.keyDir(), 0o700); err != nil {
		return nil, fmt.Errorf("%w: create key directory: %w", crypt.ErrNoKey, err)
	}
	m, err := crypt.GenerateMaster()
	if err != nil {
		return nil, err
	}
	switch err := m.WriteSealedKeyFile(filepath.Join(cfg.keyDir(), crypt.MasterKeyFile), rs); {
	case errors.Is(err, fs.ErrExist):
		return nil, fmt.Errorf("%w: another process created the master key at the same time; start again", crypt.ErrNoKey)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", crypt.ErrNoKey, err)
	}
	log.Info("master key generated, sealed to VAULT_MASTER_RECIPIENTS", "fingerprint", m.Fingerprint())
	return m, nil
}

// writeNewMaster generates a master for a rotation and writes it to
// <data>/keys/master-<fp>.age-key (or out), sealed to
// VAULT_MASTER_RECIPIENTS when set: durable before any row names it.
func writeNewMaster(cfg config, log *slog.Logger, out string) (*crypt.Master, string, error) {
	rs, err := sealRecipients(cfg, log)
	if err != nil {
		return nil, "", err
	}
	if cfg.MasterIdentityFile != "" && rs == nil {
		return nil, "", errors.New("the master key is sealed (VAULT_MASTER_IDENTITY_FILE) but VAULT_MASTER_RECIPIENTS is not set: a new master would be written in plain")
	}
	m, err := crypt.GenerateMaster()
	if err != nil {
		return nil, "", err
	}
	if out == "" {
		if err := os.MkdirAll(cfg.keyDir(), 0o700); err != nil {
			return nil, "", err
		}
		out = filepath.Join(cfg.keyDir(), crypt.RotatedKeyFile(m))
	}
	if rs != nil {
		err = m.WriteSealedKeyFile(out, rs)
	} else {
		err = m.WriteKeyFile(out)
	}
	if err != nil {
		return nil, "", err
	}
	return m, out, nil
}
