package supervision

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault"
)

// EvidenceFormat names an evidence bundle file.
const EvidenceFormat = "crvault-complaint-evidence"

// maxEvidenceEvents bounds one bundle; a complaint about more activity than
// this is better served by a full audit export.
const maxEvidenceEvents = 10000

// Evidence is a complaint's bundle of audit events. Each event whose seq is
// within the checkpoint's tree carries an inclusion proof against it; events
// appended after the latest checkpoint have none yet (Pending counts them)
// and are proven by fetching the bundle again once a checkpoint covers them.
//
// How to verify it without trusting the server (VerifyEvidence does this):
// check Checkpoint's signature with the key `vaultd audit pubkey` prints
// and read its tree size and root; for each event, check that the proof's
// tree size and root are the checkpoint's, that SHA-256(proof.leaf) is the
// event's hash, that the leaf is the canonical encoding of the event (see
// package audit), and that the RFC 6962 path leads from the leaf hash to
// the root.
type Evidence struct {
	Format     string          `json:"format"`
	Complaint  Complaint       `json:"complaint"`
	Checkpoint string          `json:"checkpoint"`
	TreeSize   int64           `json:"tree_size"`
	Events     []EvidenceEvent `json:"events"`
	Pending    int             `json:"pending"`
	Truncated  bool            `json:"truncated"`
}

// EvidenceEvent is one audit event and its inclusion proof (nil while no
// checkpoint covers it).
type EvidenceEvent struct {
	Event          audit.Event           `json:"event"`
	InclusionProof *audit.InclusionProof `json:"inclusion_proof"`
}

// ComplaintEvidence assembles the audit events of the complaint's subject on
// the complaint's case (reads, denials, everything the subject did there),
// plus the grants and revocations of the subject's assignments, each proven
// against the latest checkpoint (inspectors only). A complaint naming no
// subject gathers every material read on the case instead.
func (s *Service) ComplaintEvidence(ctx context.Context, a vault.Actor, id string) (Evidence, error) {
	r, history, err := s.complaint(ctx, a, id, "complaint.evidence", "resolve")
	if err != nil {
		return Evidence{}, err
	}
	if err := s.record(ctx, event(a, "complaint.evidence", audit.Allowed, r.CaseID, "complaint/"+id, "")); err != nil {
		return Evidence{}, err
	}
	c, err := s.toComplaint(ctx, a.P, r, history)
	if err != nil {
		return Evidence{}, err
	}
	cp, err := s.audit.Checkpoint(ctx)
	if err != nil {
		return Evidence{}, fmt.Errorf("latest checkpoint: %w", err)
	}
	parsed, err := audit.ParseCheckpoint(cp, s.audit.PublicKey())
	if err != nil {
		return Evidence{}, fmt.Errorf("parse own checkpoint: %w", err)
	}
	ev := Evidence{Format: EvidenceFormat, Complaint: c, Checkpoint: string(cp), TreeSize: parsed.Size, Events: []EvidenceEvent{}}
	var events []audit.Event
	add := func(f audit.Filter, keep func(audit.Event) bool) error {
		f.Limit = audit.MaxLimit
		for {
			page, next, err := s.audit.Query(ctx, f)
			if err != nil {
				return fmt.Errorf("query audit events: %w", err)
			}
			for _, e := range page {
				if keep == nil || keep(e) {
					events = append(events, e)
				}
			}
			if next == "" || len(events) >= maxEvidenceEvents {
				return nil
			}
			f.Cursor = next
		}
	}
	if r.Subject == "" {
		err = add(audit.Filter{CaseID: r.CaseID, Action: "material.read"}, nil)
	} else {
		err = add(audit.Filter{CaseID: r.CaseID, Actor: r.Subject}, nil)
		if err == nil {
			err = s.addGrants(ctx, r, add)
		}
	}
	if err != nil {
		return Evidence{}, err
	}
	sortEvents(events)
	if len(events) > maxEvidenceEvents {
		events, ev.Truncated = events[:maxEvidenceEvents], true
	}
	for _, e := range events {
		ee := EvidenceEvent{Event: e}
		if e.Seq <= parsed.Size {
			p, err := s.audit.InclusionProof(ctx, e.Seq, parsed.Size)
			if err != nil {
				return Evidence{}, fmt.Errorf("prove event %d: %w", e.Seq, err)
			}
			ee.InclusionProof = &p
		} else {
			ev.Pending++
		}
		ev.Events = append(ev.Events, ee)
	}
	return ev, nil
}

// addGrants adds the office's grants to and revocations of the subject's
// assignments on the case: who gave the subject access, and when it ended.
func (s *Service) addGrants(ctx context.Context, r complaintRow, add func(audit.Filter, func(audit.Event) bool) error) error {
	asgs, err := s.access.Assignments(ctx, r.CaseID)
	if err != nil {
		return fmt.Errorf("list assignments of case %s: %w", r.CaseID, err)
	}
	mine := map[string]bool{"user/" + r.Subject: true}
	for _, g := range asgs {
		if g.UserID == r.Subject {
			mine["assignment/"+g.ID] = true
		}
	}
	keep := func(e audit.Event) bool { return e.Actor != r.Subject && mine[e.Resource] }
	for _, act := range []string{"assignment.create", "assignment.revoke", "assignment.recuse"} {
		if err := add(audit.Filter{CaseID: r.CaseID, Action: act}, keep); err != nil {
			return err
		}
	}
	return nil
}

func sortEvents(es []audit.Event) {
	// insertion sort is enough: the slices are a few merged sorted runs
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Seq < es[j-1].Seq; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// EvidenceReport summarises a verified bundle.
type EvidenceReport struct {
	ComplaintID string `json:"complaint_id"`
	TreeSize    int64  `json:"tree_size"`
	Proven      int    `json:"proven"`  // events with a valid inclusion proof
	Pending     int    `json:"pending"` // events not yet covered by the checkpoint
}

// VerifyEvidence checks an evidence bundle (the JSON of GET
// /complaints/{id}/evidence, or its ?format=file download) offline with
// the checkpoint verifier key: the checkpoint's signature, and for every
// event that its leaf is the canonical encoding of exactly that event, that
// the leaf's hash is the event's hash, and that the inclusion proof leads
// to the checkpoint's root. It also checks that every event is on the
// complaint's case. It proves that each event is in the log the checkpoint
// commits to; it cannot prove that no event was left out (a full export
// verified with `vaultctl audit verify` does that).
func VerifyEvidence(r io.Reader, verifierKey string) (EvidenceReport, error) {
	var b Evidence
	dec := json.NewDecoder(io.LimitReader(r, 1<<30))
	if err := dec.Decode(&b); err != nil {
		return EvidenceReport{}, fmt.Errorf("decode evidence bundle: %w", err)
	}
	if b.Format != EvidenceFormat {
		return EvidenceReport{}, fmt.Errorf("not an evidence bundle (format %q)", b.Format)
	}
	cp, err := audit.ParseCheckpoint([]byte(b.Checkpoint), verifierKey)
	if err != nil {
		return EvidenceReport{}, fmt.Errorf("checkpoint: %w", err)
	}
	if cp.Size != b.TreeSize {
		return EvidenceReport{}, fmt.Errorf("bundle says tree size %d, checkpoint %d", b.TreeSize, cp.Size)
	}
	rep := EvidenceReport{ComplaintID: b.Complaint.ID, TreeSize: cp.Size}
	for i, ee := range b.Events {
		e := ee.Event
		if e.CaseID != b.Complaint.CaseID {
			return rep, fmt.Errorf("event %d (seq %d) is on case %q, not the complaint's", i, e.Seq, e.CaseID)
		}
		p := ee.InclusionProof
		if p == nil {
			if e.Seq <= cp.Size {
				return rep, fmt.Errorf("event seq %d is within the checkpoint but has no proof", e.Seq)
			}
			rep.Pending++
			continue
		}
		if p.Seq != e.Seq || p.TreeSize != cp.Size || p.Root != cp.Root {
			return rep, fmt.Errorf("event seq %d: proof is not against the bundle's checkpoint", e.Seq)
		}
		sum := sha256.Sum256([]byte(p.Leaf))
		if hex.EncodeToString(sum[:]) != e.Hash {
			return rep, fmt.Errorf("event seq %d: leaf does not hash to the event's hash", e.Seq)
		}
		var leaf struct {
			PrevHash string `json:"prev_hash"`
		}
		if err := json.Unmarshal([]byte(p.Leaf), &leaf); err != nil {
			return rep, fmt.Errorf("event seq %d: leaf: %w", e.Seq, err)
		}
		if !bytes.Equal(audit.Canonical(e, leaf.PrevHash), []byte(p.Leaf)) {
			return rep, fmt.Errorf("event seq %d: the event differs from its leaf", e.Seq)
		}
		if err := p.Check(); err != nil {
			return rep, fmt.Errorf("event seq %d: inclusion proof: %w", e.Seq, err)
		}
		rep.Proven++
	}
	return rep, nil
}
