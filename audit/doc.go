// Package audit is crvault's append-only, tamper-evident audit trail.
//
// It promises:
//
//   - Fail closed. Append returns only once the event is durable in the
//     database; if it cannot be written the caller gets an error wrapping
//     ErrUnavailable and must refuse the request (503). Nothing is buffered
//     in memory past a failed commit.
//   - Append only. The code has no UPDATE or DELETE path; the database itself
//     refuses both (SQLite triggers, a PostgreSQL trigger, and the role setup
//     in deploy/postgres-roles.sql).
//   - Tamper evidence. Events are hash-chained and are the leaves of an
//     RFC 6962 / RFC 9162 Merkle tree (golang.org/x/mod/sumdb/tlog) whose
//     interior hashes are stored beside the events, so proofs never scan the
//     log. Signed checkpoints (C2SP tlog-checkpoint signed notes, Ed25519) are
//     made at least every Options.CheckpointEvery while events arrive and at
//     Close, and all are kept.
//   - No rollback. Each checkpoint is also handed to Witnesses the database
//     administrator does not control (an object-locked S3 bucket, a
//     directory elsewhere; see audit/witness), and outside parties can keep
//     their own (`vaultctl audit watch`). The writer refuses to open on a
//     log shorter than, or inconsistent with, any checkpoint it can see,
//     naming the first missing event; before signing it proves the tree
//     extends the newest checkpoint it knows, and if the database went
//     backwards under it, it halts: every append fails (ErrRolledBack) and
//     nothing more is signed.
//   - No rewrite of the unsigned tail. The events a writer committed since
//     the newest checkpoint are anchored by its own memory: it keeps the
//     root of the tree as it last committed it, and before it appends to a
//     head another process moved, and before it signs, it proves the
//     database's tree extends that root. A rewrite of those events halts it
//     even when the rewrite made the log longer (which looks like another
//     process's appends), and the tree it committed is then signed and
//     handed to the witnesses, which keep it as evidence whatever they
//     hold (Witness.Keep: another instance may have signed the rewrite
//     already), so that start-up and Verify refuse the rewritten log after
//     a restart too. What this cannot cover: the
//     events of a writer that died (kill -9, a crash) after its last
//     checkpoint, and, with several instances, another instance's events
//     that this one never built on; those are anchored by nothing until a
//     checkpoint covers them (Options.CheckpointEvery).
//   - Verification without trust in the server. Verify recomputes the chain,
//     the tree and every stored checkpoint, and checks every checkpoint the
//     witnesses hold, older ones included (a holder of the signing key can
//     add a newer one over a rewritten log, not remove those); VerifyExport
//     does the same offline from an NDJSON export, a checkpoint and the
//     verifier key.
//
// # Sequence numbers
//
// Seq starts at 1. The Merkle tree record index of an event is Seq-1, and a
// tree of size N holds events 1..N.
//
// # Canonical encoding
//
// The leaf of an event, and the input of its Hash, is this JSON object with
// exactly these keys in this order, no insignificant white space, strings
// escaped as Go's encoding/json does (including \u003c, \u003e, \u0026):
//
//	{"v":1,"seq":N,"time":T,"actor":S,"actor_org":S,"action":S,"outcome":S,
//	 "case_id":S,"resource":S,"purpose":S,"ip":S,"request_id":S,"detail":S,
//	 "prev_hash":H}
//
// T is the UTC time with microsecond precision in RFC 3339 form with
// trailing fractional zeros removed (Go's time.RFC3339Nano). H is the
// lower-case hex SHA-256 Hash of the predecessor, or 64 zeros for Seq 1.
// Hash = hex(SHA-256(canonical)); the Merkle leaf hash is
// SHA-256(0x00 || canonical) as RFC 6962 prescribes. Strings are stored as
// valid UTF-8 without NUL bytes (Append replaces invalid sequences), so the
// stored fields always re-encode to the same bytes.
//
// # Export format
//
// Export writes NDJSON. The first line is a header:
//
//	{"format":"crvault-audit-export","version":1,"from":F,"to":T,
//	 "prev_hash":H,"prefix":[{"index":I,"hash":B64},...]}
//
// where prev_hash is the Hash of event F-1 (zeros when F is 1) and prefix
// lists the stored tree hashes that summarise events 1..F-1 (the roots of
// its complete subtrees), so that a partial export can still be checked
// against a checkpoint. Each following line is one event: the fields of
// Event plus "prev_hash".
package audit
