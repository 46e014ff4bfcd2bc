// Package witness keeps the audit log's newest signed checkpoint where the
// database administrator cannot rewrite it, for audit.Options.Witnesses:
//
//   - S3 writes each checkpoint as a new object under COMPLIANCE-mode object
//     lock (WORM) in a bucket created with object lock enabled: nobody, the
//     holder of the vault's S3 credentials included, can delete or replace
//     it before its retention ends, and the newest is kept under lock while
//     the vault runs. It refuses a bucket without object lock.
//   - Dir keeps the newest checkpoint in a directory, which should be on a
//     mount or machine the database administrator cannot write. It never goes
//     backwards: a smaller checkpoint than the one it holds is refused.
//
// A witness does not check signatures or consistency itself: the audit log
// does that (it holds the verifier key and the tree); a witness orders what
// it keeps by tree size and refuses to go backwards, across processes too.
// Its History hands the log every checkpoint it still holds, for
// verification to check them all: the older S3 objects are what a holder of
// the signing key and the S3 credentials cannot take back. Each is named
// after its size and tree root (names.go), so History reads only the newest
// and those named by earlier releases, without a root, and passes the rest
// by name (audit.Held says why the name is enough).
package witness
