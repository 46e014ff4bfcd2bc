// Package crypt is the vault's age envelope: it is the only package that holds
// key material, and it promises that a document's plaintext exists only in the
// streams it hands out, never on disk, in logs or in error strings.
//
// # Keys
//
// A [Master] is one hybrid post-quantum age identity (ML-KEM-768 + X25519,
// "mlkem768x25519"), kept in a file of mode 0600 or supplied through the
// environment. Each case has its own hybrid identity, the [CaseKey], which is
// stored only wrapped: age-encrypted to the master recipient (see
// [Master.NewCaseKey]). Every material is age-encrypted to its case's
// recipient. Classic X25519 keys are refused everywhere: the materials must
// resist "harvest now, decrypt later".
//
// # Detached headers
//
// An age file is header || nonce || STREAM chunks. [CaseKey.SealReader] splits
// it: the header (about 1.6 KB, it wraps the per-material file key to the case
// key) is returned by [SealReader.Header] for the database, and only the
// payload (the 16-byte nonce and the 64 KiB chunks) goes to the blob store,
// which reads it from the SealReader. Its size is known in advance:
// [PayloadSize]. Large payloads are read back a run of chunks at a time
// ([ChunkOpener]), small ones whole ([FileKey.OpenPayload]). Because every key lives in a database row and not
// in a blob, keys rotate without rewriting blobs:
//   - master rotation: [Master.Rewrap] re-encrypts each wrapped case key row;
//   - case key rotation: [CaseKey.RewrapHeader] re-encrypts each header row.
//
// # Crypto-shredding
//
// A material's file key exists only inside its header, wrapped to the case
// key, and the case key exists only wrapped to the master. So:
//   - deleting a case's wrapped case-key row makes every blob of that case
//     unreadable, for anyone, including holders of the master key;
//   - deleting one material's header row does the same for that one blob.
//
// The blobs may stay where they are (in S3 with object lock, in backups): they
// are noise without the row. Shredding is only as good as the deletion of the
// row, so the owner of the rows must also make sure no copy survives: SQLite
// keeps deleted bytes in free pages unless PRAGMA secure_delete is on (or the
// database is VACUUMed), PostgreSQL keeps dead tuples until VACUUM, and
// database backups and WAL archives keep them until they expire. This package
// therefore offers no Shred function; shredding is a row deletion by the owner
// of the data, plus that hygiene.
//
// # Confidential fields
//
// Short confidential values kept in rows rather than blobs (a case's title,
// a filename, a reason, a comment, a complaint's text) are sealed with
// [CaseKey.SealField]: XChaCha20-Poly1305 under a key derived (HKDF-SHA256)
// from the case identity, bound to a label naming table, column and row. A
// database administrator, a dump or a backup sees ciphertext of each value's
// length plus [FieldOverhead], and cannot move a sealed value to another row
// or column unnoticed. Being derived from the case key, field keys are
// shredded with it. [CaseKey.FieldMAC] gives a keyed hash for the equality
// lookups a sealed column cannot serve (which versions share a filename): it
// tells the database which values are equal within one case, and nothing
// else.
//
// # Row tags: who a caller is and what they may do
//
// A database administrator cannot read sealed values, but he can write rows,
// and some rows are decisions rather than data: who a session belongs to,
// what an account may do, who is assigned to a case. [CaseKey.RowTag] is a
// MAC over a row's table, id and deciding columns under a key derived from a
// vault key (the vault's "rows" key for the access tables, wrapped to the
// master key like every key), which the database never holds. A row he
// inserts, or whose deciding columns he edits, fails its tag and is refused
// as if it did not exist (package access says which columns each tag
// covers). Deletions are caught where a deletion would grant something: an
// assignment's tag names its own revoked or suspended state, so deleting
// the revocation or the declared conflict makes it refused, not active. What
// a tag cannot catch is a replay: an old genuine row put back as it was, tag
// and all (a session he saved before it was revoked, with its token, or an
// assignment row before its revocation together with the tag it had then).
// For that the audit trail is the record: every sign-in, grant and
// revocation is an event there. An assignment the trail says the office
// revoked, a user it recused, or a conflict its user declared, prevails
// over the tables before the access index decides anything, and at every
// notice and resync after (access.TrailEnds, read by vault.GrantEnds): a
// replayed assignment row grants nothing, is not listed, or stays
// suspended, and is logged and counted (crvault_access_trail_refusals_total).
// Only the server's own record that a change failed, naming the allowed
// event it undoes, takes an end back. A replayed session still works
// until its own expiry, for whoever also holds its token. Rows written before tags existed were
// tagged once at the upgrade, trusting them as they stood; that tagging is
// an event in the audit log (access.rows_tagged) and never runs again.
//
// # Row tags: keys and materials bound to their place
//
// A wrapped key is an age file of an identity, and a header an age file of a
// file key: neither names the row it belongs to, so a database administrator
// (who holds no key) could copy case A's wrapped key into case B's row, move
// A's materials under B, and have the vault decrypt A's documents for whoever
// may read case B. [CaseKey.RowTag] is a MAC, under a key derived from a
// CaseKey, over a row's table and deciding columns; the vault stores it
// beside the row and refuses a row whose tag does not check (vault/rowtags.go):
//   - each wrapped key carries a tag under itself over its table and row id,
//     checked when it is unwrapped: a copied key opens, but its tag names
//     the row it came from, and only its holder could make one for another;
//     rewrapping to a new master keeps the key, so the tag stays true;
//   - each material row carries a tag under its case key over its id, case,
//     kind, uploader, blob, size, hash and content type, and each segment
//     row one over its material, order, blob and place; a header is bound
//     through its blob, which no other header opens;
//   - each consent row (material_consents, which decides whether another
//     party may see a material) carries a tag under its case key over its
//     id, material, case, organisation, granter and state (live or
//     revoked): a consent inserted outside the vault gives no access, and
//     revoking re-tags it as revoked, so setting its revoked_at back to NULL
//     does not re-grant it.
//   - each upload session (a resumable upload in progress, or completed)
//     carries a tag under its case key over its id, case, owner, kind,
//     content type, item, declared size, status and the material it became,
//     re-made when a chunk declares the size and at completion; it is
//     checked at every chunk, read and listing and again at completion, so
//     a session edited between two chunks cannot be committed as a genuine
//     material of another kind, and a session cannot be pointed at another
//     material; one that fails is refused as an unknown upload (404). The
//     counters a chunk moves are left out: the hash state is sealed under a
//     label naming the offset, and each segment carries its own tag.
//   - who the parties of a case are (cases.operator_org and origin, and
//     its providers in case_providers) is bound by one tag on the case row
//     (parties_tag), under the vault's rows key rather than the case key:
//     party membership is decided over whole lists of cases, where one key
//     unwrap per row would cost too much, and it must outlive a shredded
//     case's key. The providers are fixed when the case is filed, so a
//     provider row inserted or deleted changes the list and fails the tag.
//     Every path where membership grants something checks it: a case's
//     facts (every case-scoped request and material read), the case list,
//     the subquery other services filter by (VisibleCaseIDs) and a party's
//     audit trail. A case whose tag fails has no parties: no organisation
//     sees anything of it (404, not listed, no events), and the office sees
//     it only once submitted, shown without its parties; the server logs
//     the row at ERROR and counts it (crvault_vault_row_tag_refusals_total).
//   - a member unit's proposal (proposals: which unit lists it, which party
//     approving it opens a case for, and its approval) and a provider's
//     commitment (supervision_commitments: its case, provider and operator)
//     carry a tag under the same rows key, checked per listed row and
//     before any action on one. One that fails is listed to no
//     organisation, and to the office (and, for commitments, inspectors)
//     without its organisations; acting on it answers not found. The
//     office's reports list re-checks the commitment each listed report
//     names, so a commitment moved onto one of the office's cases shows it
//     no report about a party's draft.
//   - a commitment's urges and findings (supervision_commitment_urges,
//     _changes: which commitment lists them, who wrote them and when, and a
//     finding's version and status) carry a tag under the same rows key;
//     one that fails is left out of its commitment for everyone, so one
//     moved under another commitment shows its note to nobody.
//   - a case's workflow status (cases.status) is bound by its own tag
//     (status_tag, under the rows key as the parties are) to the case id
//     and the number of the last event of its history (case_events),
//     which is read beside the row rather than stored on it: a status put
//     back with its older genuine tag fails once the history has grown.
//     Each transition writes the tag in the UPDATE that moves the status
//     and appends the events. A case whose status fails is refused to
//     everyone who may know of it (case_status_damaged), left out of every
//     list and never shredded by retention: what the status decides (a
//     member unit's reads end with the review, the office sees no draft,
//     which step is next) cannot be trusted.
//   - each event of a case's history (case_events: retention dates a
//     case's end from it, the clock and the stored due dates are replayed
//     from it, the parties read it) carries a tag under the same rows key
//     over its case, number, action, statuses, day, time (to the
//     microsecond), actor, role, days and answer, written in the statement
//     that appends it. A history is accepted only whole: every tag checks
//     and the events run 1..n without a gap, n being what the status tag
//     binds, so an event edited, inserted, copied from another case or
//     deleted is caught. One that fails answers case_status_damaged on
//     every route that reads the history (the history, the clock, every
//     transition, the offered actions, supplements, notices), is not
//     shredded by retention nor listed by its dry run (an end moved years
//     back would destroy the case and its blobs), and does not re-derive
//     its stored due dates; it leaves the deadlines list and the deadline
//     sweep, and its pending written notice waits until the history is
//     restored. Its reason and payload are sealed under labels naming the
//     case, number and column, so they are bound to it already; blanking
//     one is not caught.
//   - a case's stored due columns (cases.due_on, due_on_provisional,
//     due_phase, due_basis), which the deadlines list and the deadline
//     sweep read instead of replaying every history, carry a tag under the
//     rows key (due_tag) over the case id, each column (a NULL date told
//     apart) and the number of the history's last event, written by every
//     UPDATE that writes them. A row that fails (a deadline moved later,
//     cleared, invented, or swapped with another case's, tag and all) is
//     left out of the list and the sweep, logged and counted under
//     table=cases, and derived again from the history by the next read,
//     which tags it honestly. A hidden deadline lies outside the range the
//     list reads, so every read first checks the due tags of the open
//     cases. A re-derivation that meets a status or history that fails
//     stores no date and no tag, and tries again at each read.
//
// Not yet covered: an administrator who puts back an older status and tag
// and deletes the later events together is caught neither by the status
// tag nor by the events' (the history that remains is genuine and whole up
// to its end); the audit trail still records every transition; nor, for
// the same reason, older due columns put back with their tag and the later
// events. Nor is the office's VisibleCaseIDs subquery over its filed
// cases checked row by row. Nor a commitment's status columns (status,
// status_note, status_by, version), which the findings' history (tagged)
// contradicts, nor a report's own links (link_case, commitment,
// link_commitment): a report re-linked in the database to one of the
// office's cases is listed to the office.
//
// What a tag cannot do: it cannot tell an old genuine row put back from the
// current one (a replay: a material deleted and restored from a dump, a key
// row of a case that was since given a new key), nor notice a row deleted
// (which only loses data: a deleted key row is a shredded case, a deleted
// consent one withdrawn). Rows written
// before tags existed are tagged once, on trust, when the first tagging vaultd
// starts (the audit log records it, and no later start tags anything), so an
// edit made before that upgrade is blessed with the rest; and an older binary
// still running beside a newer one writes untagged rows that the newer one
// refuses.
//
// # Threat model of unwrapped keys in memory
//
// Unwrapping a case key costs a hybrid post-quantum decryption (about half a
// millisecond), and a list of 50 cases would need 50. The vault therefore
// keeps unwrapped case keys in a small bounded in-memory cache with a short
// time to live (vault.Keyring: 1024 keys, one minute, by default). The
// trade-off: an attacker who can read the server's memory (a core dump, a
// debugger, a swap file) finds the keys of the cases used in the last minute
// besides the master key it holds anyway, which gains little; and a case
// crypto-shredded by deleting its key row stays readable through an
// instance that cached its key until that entry expires (at most the time to
// live). Keys never leave memory: the cache is not persisted and never
// logged. Setting the time to live negative turns the cache off.
//
// The same cache keeps materials' file keys ([CaseKey.OpenHeader], a
// [FileKey]), under the same bound and time to live: opening a header is
// another hybrid decapsulation, and most of the CPU and allocations of a
// small read. This adds nothing to what memory already exposes: a file key
// opens one material, which the case key cached beside it opens anyway;
// and it does not stretch the window of a shredded case, because a read
// still needs the case key first (and forgetting a case drops every cached
// file key). A material shredded alone (its header row deleted) cannot be
// named by a read any more, so its cached file key is unreachable until it
// expires.
//
// Small documents are decrypted in memory ([CaseKey.OpenPayload], up to
// [MaxInPlacePayload]) into buffers the vault pools; the vault wipes a
// buffer before it returns it to the pool, so plaintext does not outlive
// its read there either.
//
// # Cached ciphertext
//
// The vault also keeps the ciphertext of small materials read more than
// once (64 MiB and one minute by default; [FileKey.OpenPayloadTo] decrypts
// it without changing it), so that a document many reviewers open is not
// fetched from the store each time. Only ciphertext is kept, and only after
// it authenticated; every read still passes the access decision and the
// audit log and authenticates every chunk. What it costs: memory holds
// ciphertext that the keys cached beside it can open (no more than those
// keys already expose), and damage to, or loss of, a stored blob is seen by
// an instance that cached it only when the entry expires, at most a minute
// later. A purged case's blobs leave this instance's cache with them; on
// other instances they expire unreachable, since no row names them and
// their key is gone.
package crypt
