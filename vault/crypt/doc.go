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
// An age file is header || nonce || STREAM chunks. [CaseKey.Encrypt] splits it:
// the header (about 1.6 KB, it wraps the per-material file key to the case key)
// is returned by [Sealer.Header] for the database, and only the payload (the
// 16-byte nonce and the 64 KiB chunks) goes to the blob store. Its size is known
// in advance: [PayloadSize]. Because every key lives in a database row and not
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
package crypt
