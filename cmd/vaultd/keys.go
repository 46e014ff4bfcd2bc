package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/crypt"
	"github.com/crvault/crvault/vault/supervision"
)

// keysEvent appends one audit event for a key command; no record, no
// change (the caller appends before it acts).
func (a *app) keysEvent(ctx context.Context, action string, outcome audit.Outcome, resource, detail string) error {
	e := actorCLI()
	e.Action, e.Outcome, e.Resource, e.Detail = action, outcome, resource, detail
	if _, err := a.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("record in audit log: %w", err)
	}
	return nil
}

// cmdKeys runs keys rotate | rewrap | retire | status | recover.
func cmdKeys(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var batch, limit int
	var out, escrowID, keyFile string
	var escrowChange bool
	cfg, fs, err := parse(cmd, args, stderr, getenv, func(fs *flag.FlagSet) {
		switch cmd {
		case "keys rotate", "keys rewrap", "keys recover":
			fs.IntVar(&batch, "batch", 100, "keys rewrapped per transaction")
			fs.IntVar(&limit, "limit", 0, "stop after rewrapping this many keys (0: all); run again to continue")
			fs.BoolVar(&escrowChange, "escrow-change", false, "rewrap keys escrowed to other recipients than VAULT_ESCROW_RECIPIENTS_FILE gives (replacing, or with none dropping, those copies)")
		}
		switch cmd {
		case "keys rotate", "keys recover", "keys new":
			fs.StringVar(&out, "out", "", "where to write the new master key file (default <data>/keys/master-<fingerprint>.age-key)")
		}
		if cmd == "keys rotate" {
			fs.StringVar(&keyFile, "key", "", "rotate to this master key file (made by keys new and given to every instance) instead of a new one")
		}
		if cmd == "keys recover" {
			fs.StringVar(&escrowID, "escrow-identity", "", "file holding an escrow identity (AGE-SECRET-KEY-PQ-1...)")
		}
	})
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	if cmd == "keys new" {
		// A master for a rotation across machines: distribute it first,
		// then keys rotate --key FILE. Nothing in the database changes.
		m, path, err := writeNewMaster(cfg, log, out)
		if err != nil {
			return fmt.Errorf("new master key: %w", err)
		}
		fmt.Fprintf(stdout, "master %s written to %s\n", m.Fingerprint(), path)
		return nil
	}
	if cmd == "keys recover" {
		if escrowID == "" {
			return usageError{"keys recover needs --escrow-identity FILE"}
		}
		m, err := crypt.LoadMaster(escrowID)
		if err != nil {
			return fmt.Errorf("escrow identity: %w", err)
		}
		cfg.extraMasters, cfg.recovery = []*crypt.Master{m}, true
	}
	a, err := openApp(ctx, cfg, log, withVault)
	if err != nil {
		return err
	}
	defer a.close(context.WithoutCancel(ctx))
	if cmd != "keys status" && cmd != "keys retire" && !escrowChange {
		if err := a.keys.CheckEscrow(ctx, supervision.KeyTables()...); err != nil {
			return fmt.Errorf("%w; check VAULT_ESCROW_RECIPIENTS_FILE, or pass --escrow-change to replace them", err)
		}
	}
	switch cmd {
	case "keys status":
		return a.keysStatus(ctx, stdout)
	case "keys retire":
		return a.keysRetire(ctx, fs.Args(), stdout)
	case "keys rewrap":
		return a.keysRewrap(ctx, "keys.rewrap", batch, limit, stdout)
	}
	// rotate and recover: continue an unfinished rotation, or begin one.
	pending, err := a.keys.PendingRotation(ctx)
	if err != nil {
		return err
	}
	action := "keys.rotate"
	if cmd == "keys recover" {
		action = "keys.recover"
	}
	if pending != nil {
		if !a.masters.Has(pending.To) {
			return fmt.Errorf("a rotation to master %s begun %s is unfinished, and that master's key file is not loaded (put it in %s or VAULT_MASTER_KEY_FILE)",
				pending.To, pending.StartedAt.Format("2006-01-02 15:04"), cfg.keyDir())
		}
		fmt.Fprintf(stdout, "continuing the rotation from %s to %s\n", pending.From, pending.To)
	} else {
		var m *crypt.Master
		var path string
		if keyFile != "" {
			unseal, err := unsealIdentities(cfg, log)
			if err != nil {
				return err
			}
			if m, err = crypt.LoadMasterFile(keyFile, unseal); err != nil {
				return err
			}
			path = keyFile
		} else if m, path, err = writeNewMaster(cfg, log, out); err != nil {
			return fmt.Errorf("new master key: %w", err)
		}
		a.masters.Add(m)
		from, _ := a.keys.ActiveMaster(ctx)
		if err := a.keysEvent(ctx, action, audit.Allowed, "master/"+m.Fingerprint(), "begin: from "+from+" to "+m.Fingerprint()); err != nil {
			if keyFile == "" {
				os.Remove(path) // nothing names it yet
			}
			return err
		}
		if _, err := a.keys.BeginRotation(ctx, m); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rotating to master %s (%s)\n", m.Fingerprint(), path)
		if cfg.MasterKey != "" || len(cfg.masterFiles()) > 0 {
			fmt.Fprintf(stdout, "give %s to every instance (VAULT_MASTER_KEY_FILE) beside the old key\n", path)
		}
	}
	return a.keysRewrap(ctx, action, batch, limit, stdout)
}

func (a *app) keysRewrap(ctx context.Context, action string, batch, limit int, stdout io.Writer) error {
	rep, err := a.keys.Rewrap(ctx, batch, limit, supervision.KeyTables()...)
	active, _ := a.keys.ActiveMaster(ctx)
	if err != nil {
		_ = a.keysEvent(context.WithoutCancel(ctx), action, audit.Errored, "master/"+active,
			fmt.Sprintf("rewrapped %d keys, then failed", rep.Rewrapped))
		if errors.Is(err, vault.ErrVitalKeyUnopened) && action == "keys.recover" {
			return fmt.Errorf("%w; it was not escrowed to this identity, and without it the vault cannot start: find the lost master key file (put it in %s) and run vaultd keys rewrap", err, a.cfg.keyDir())
		}
		return err
	}
	detail := fmt.Sprintf("rewrapped %d keys; %d remaining", rep.Rewrapped, rep.Remaining)
	if len(rep.Unopened) > 0 {
		return a.keysUnopened(ctx, action, active, detail, rep.Unopened, stdout)
	}
	if err := a.keysEvent(ctx, action, audit.Allowed, "master/"+active, detail); err != nil {
		return err
	}
	if rep.Remaining > 0 {
		fmt.Fprintf(stdout, "%s; run the same command again to continue\n", detail)
		return nil
	}
	fmt.Fprintf(stdout, "%s; every key is wrapped to master %s and %d escrow recipient(s)\n", detail, active, a.masters.EscrowCount())
	return nil
}

// keysUnopened reports the case keys a run could not open, and fails. The
// run moved every other key (a case key opens only its own case); those
// are left wrapped as they were, and the next run visits them once again.
// After a recovery they are lost: each is recorded (keys.lost).
func (a *app) keysUnopened(ctx context.Context, action, active, detail string, lost []vault.UnopenedKey, stdout io.Writer) error {
	cases := make([]string, 0, len(lost))
	masters := map[string]bool{}
	var fps []string
	for _, u := range lost {
		cases = append(cases, u.ID)
		if !masters[u.Master] {
			masters[u.Master] = true
			fps = append(fps, u.Master)
		}
	}
	detail = fmt.Sprintf("%s; %d case keys could not be opened", detail, len(lost))
	fmt.Fprintln(stdout, detail)
	if action == "keys.recover" {
		for _, u := range lost {
			why := "not escrowed"
			if u.Escrow != "" {
				why = "escrowed to other recipients (" + u.Escrow + ")"
			}
			e := actorCLI()
			e.Action, e.Outcome, e.CaseID, e.Resource = "keys.lost", audit.Errored, u.ID, "case/"+u.ID
			e.Detail = fmt.Sprintf("case key wrapped to lost master %s, %s: not recovered", u.Master, why)
			if _, err := a.audit.Append(ctx, e); err != nil {
				return fmt.Errorf("record in audit log: %w", err)
			}
		}
	}
	if err := a.keysEvent(ctx, action, audit.Errored, "master/"+active, detail); err != nil {
		return err
	}
	list := strings.Join(cases, ", ")
	if action == "keys.recover" {
		return exitError{1, fmt.Sprintf("%d case keys could not be recovered: they were not escrowed to this identity, and the master they are wrapped to (%s) is lost. "+
			"The documents and sealed text of these cases cannot be read: %s. Every other key is recovered. "+
			"If the old master key file turns up, put it in %s and run vaultd keys rewrap to bring them back",
			len(lost), strings.Join(fps, ", "), list, a.cfg.keyDir())}
	}
	return exitError{1, fmt.Sprintf("%d case keys could not be opened: they are wrapped to master %s, which this process does not hold (cases %s). "+
		"Give its key file (%s or VAULT_MASTER_KEY_FILE) and run the same command again; if it is lost, run vaultd keys recover --escrow-identity FILE",
		len(lost), strings.Join(fps, ", "), list, a.cfg.keyDir())}
}

func (a *app) keysStatus(ctx context.Context, stdout io.Writer) error {
	st, err := a.keys.Status(ctx, supervision.KeyTables()...)
	if err != nil {
		return err
	}
	for _, m := range st {
		held := "not loaded"
		if m.Held {
			held = "loaded"
		}
		fmt.Fprintf(stdout, "%s %-8s %d keys %s\n", m.Fingerprint, m.State, m.Keys, held)
	}
	if p, err := a.keys.PendingRotation(ctx); err != nil {
		return err
	} else if p != nil {
		fmt.Fprintf(stdout, "rotation from %s to %s unfinished (%d rewrapped)\n", p.From, p.To, p.Rewrapped)
	}
	gaps, err := a.keys.EscrowGaps(ctx, supervision.KeyTables()...)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "escrow recipients: %d%s\n", a.masters.EscrowCount(), escrowGapNote(gaps))
	return nil
}

// escrowGapNote says which keys are not wrapped to the process's escrow
// set (" (1 case key without escrow: run vaultd keys rewrap)"), "" when
// none: a key without escrow is lost with its master.
func escrowGapNote(gaps []vault.EscrowGap) string {
	var without, other []string
	count := func(n int64, kind string) string {
		if n == 1 {
			return fmt.Sprintf("1 %s key", kind)
		}
		return fmt.Sprintf("%d %s keys", n, kind)
	}
	for _, g := range gaps {
		if g.Without > 0 {
			without = append(without, count(g.Without, g.Table.Kind))
		}
		if g.Other > 0 {
			other = append(other, count(g.Other, g.Table.Kind))
		}
	}
	var parts []string
	if len(without) > 0 {
		parts = append(parts, strings.Join(without, ", ")+" without escrow: run vaultd keys rewrap")
	}
	if len(other) > 0 {
		parts = append(parts, strings.Join(other, ", ")+" escrowed to other recipients: check VAULT_ESCROW_RECIPIENTS_FILE, or run vaultd keys rewrap --escrow-change to replace them")
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// keysRetire retires the masters named, or every retiring one, refusing
// any that keys are still wrapped to; the key file of a retired master in
// <data>/keys is deleted.
func (a *app) keysRetire(ctx context.Context, fps []string, stdout io.Writer) error {
	tables := supervision.KeyTables()
	if len(fps) == 0 {
		st, err := a.keys.Status(ctx, tables...)
		if err != nil {
			return err
		}
		for _, m := range st {
			if m.State == vault.MasterRetiring {
				fps = append(fps, m.Fingerprint)
			}
		}
		if len(fps) == 0 {
			fmt.Fprintln(stdout, "no master to retire")
			return nil
		}
	}
	var errs []error
	for _, fp := range fps {
		if err := a.keys.Retire(ctx, fp, tables...); err != nil {
			_ = a.keysEvent(context.WithoutCancel(ctx), "keys.retire", audit.Denied, "master/"+fp, err.Error())
			errs = append(errs, err)
			continue
		}
		if err := a.keysEvent(ctx, "keys.retire", audit.Allowed, "master/"+fp, "retired"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "master %s retired\n", fp)
		a.deleteKeyFile(fp, stdout)
	}
	if len(errs) > 0 {
		return exitError{1, errors.Join(errs...).Error()}
	}
	return nil
}

// deleteKeyFile removes the key file of master fp from <data>/keys, if it
// is there; files given by VAULT_MASTER_KEY_FILE are the operator's to
// remove.
func (a *app) deleteKeyFile(fp string, stdout io.Writer) {
	unseal, err := unsealIdentities(a.cfg, a.log)
	if err != nil {
		return
	}
	paths, _ := filepath.Glob(filepath.Join(a.cfg.keyDir(), crypt.MasterFilePattern))
	for _, p := range paths {
		if m, err := crypt.LoadMasterFile(p, unseal); err == nil && m.Fingerprint() == fp {
			if err := os.Remove(p); err == nil {
				fmt.Fprintf(stdout, "deleted %s\n", p)
			}
		}
	}
}

// warnEscrow logs, at start, an instance whose escrow recipients differ
// from those of the stored keys. Serving is not refused (reads are
// unaffected), but every key the instance creates gets its set, not the
// vault's, which is how a forgotten VAULT_ESCROW_RECIPIENTS_FILE shows.
func (a *app) warnEscrow(ctx context.Context, log *slog.Logger) error {
	// One count per table answers both warnings.
	gaps, err := a.keys.EscrowGaps(ctx, supervision.KeyTables()...)
	if err != nil {
		return err
	}
	if err := a.keys.EscrowChange(gaps); err != nil {
		log.Warn("this instance's escrow recipients (VAULT_ESCROW_RECIPIENTS_FILE) differ from those of the stored keys; the keys it creates get its set", "err", err)
		return nil
	}
	// Keys without escrow are lost with their master: say so at start too.
	if note := escrowGapNote(gaps); note != "" {
		log.Warn("some keys are not wrapped to the escrow recipients: they are lost if the master key is", "keys", strings.Trim(note, " ()"))
	}
	return nil
}
