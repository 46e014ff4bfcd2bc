package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"filippo.io/age/plugin"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/witness"
)

// auditKeyFile is where the checkpoint signer key lives.
func (c config) auditKeyFile() string {
	if c.AuditKeyFile != "" {
		return c.AuditKeyFile
	}
	return audit.DefaultKeyFile(c.keyDir())
}

// defaultWitnessDir is the witness when neither S3 nor a mirror directory is
// configured: beside the signing key, out of reach of a database
// administrator who has only the database, but not of whoever holds the
// data directory.
func (c config) defaultWitnessDir() string { return filepath.Join(c.keyDir(), "checkpoint-witness") }

// s3Witness says whether an object-locked S3 witness is configured.
func (c config) s3Witness() bool {
	return c.S3Endpoint != "" && c.CheckpointS3Bucket != "" && c.CheckpointS3Bucket != "off"
}

// auditOptions builds the audit log's key and witness settings from the
// configuration: the S3 witness when S3 is configured, the mirror directory
// when set, and the default directory when neither is.
func auditOptions(ctx context.Context, cfg config, log *slog.Logger, readOnly bool) (audit.Options, error) {
	opts := audit.Options{KeyDir: cfg.keyDir(), KeyFile: cfg.auditKeyFile(), UnwrapKey: keyUnwrapper(cfg.AuditKeyIdentity, log),
		VerifierKey: cfg.AuditVerifierKey, SyncCommit: cfg.AuditSyncCommit, CheckpointEvery: cfg.CheckpointInterval, Logger: log, ReadOnly: readOnly}
	if cfg.s3Witness() {
		w, err := witness.NewS3(ctx, witness.S3Config{Endpoint: cfg.S3Endpoint, Bucket: cfg.CheckpointS3Bucket, Prefix: cfg.CheckpointS3Prefix,
			AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey, TLS: cfg.S3TLS, Region: cfg.S3Region,
			Retention: cfg.CheckpointRetention, Logger: log, ReadOnly: readOnly})
		if err != nil {
			return opts, err
		}
		opts.Witnesses = append(opts.Witnesses, w)
	}
	dir := cfg.MirrorDir
	if dir == "" && len(opts.Witnesses) == 0 {
		dir = cfg.defaultWitnessDir()
	}
	if dir != "" {
		w, err := witness.NewDir(dir)
		if err != nil {
			return opts, err
		}
		opts.Witnesses = append(opts.Witnesses, w)
	}
	return opts, nil
}

// warnWitnesses says, once at start, when the only witness lives with the
// data: it catches a database administrator, not the holder of the data
// directory.
func warnWitnesses(cfg config, log *slog.Logger) {
	if cfg.s3Witness() || cfg.MirrorDir != "" {
		return
	}
	log.Warn("the audit checkpoint witness is inside the data directory: it catches a rollback by a database administrator, "+
		"not by whoever can write the data directory; set VAULT_CHECKPOINT_MIRROR_DIR to a directory on another mount or machine, "+
		"or use S3, and let outside parties run `vaultctl audit watch`", "witness", cfg.defaultWitnessDir())
}

// keyUnwrapper decrypts an age-encrypted checkpoint key with the identities
// in file, which may name age plugins (AGE-PLUGIN-...: a hardware token, a
// KMS). The plugin runs as a separate program; it cannot prompt, as vaultd
// has no terminal.
func keyUnwrapper(file string, log *slog.Logger) func([]byte) ([]byte, error) {
	if file == "" {
		return nil
	}
	return func(ciphertext []byte) ([]byte, error) {
		ids, err := loadIdentities(file, log)
		if err != nil {
			return nil, err
		}
		r, err := age.Decrypt(bytes.NewReader(ciphertext), ids...)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(io.LimitReader(r, 64<<10))
	}
}

func loadIdentities(file string, log *slog.Logger) ([]age.Identity, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read age identities: %w", err)
	}
	ui := &plugin.ClientUI{
		DisplayMessage: func(name, msg string) error {
			log.Info("age plugin", "plugin", name, "message", msg)
			return nil
		},
		RequestValue: func(name, prompt string, _ bool) (string, error) {
			return "", fmt.Errorf("age plugin %s asked for input (%q), which vaultd cannot give", name, prompt)
		},
		Confirm: func(name, prompt, _, _ string) (bool, error) {
			return false, fmt.Errorf("age plugin %s asked for a confirmation (%q), which vaultd cannot give", name, prompt)
		},
		WaitTimer: func(name string) { log.Warn("waiting for age plugin", "plugin", name) },
	}
	var ids []age.Identity
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "AGE-PLUGIN-"):
			id, err := plugin.NewIdentity(line, ui)
			if err != nil {
				return nil, fmt.Errorf("age identities line %d: %w", n, err)
			}
			ids = append(ids, id)
		default:
			parsed, err := age.ParseIdentities(strings.NewReader(line))
			if err != nil {
				return nil, fmt.Errorf("age identities line %d: %w", n, err)
			}
			ids = append(ids, parsed...)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("age identities: none found")
	}
	return ids, nil
}
