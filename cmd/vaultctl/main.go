// Command vaultctl is crvault's client CLI. Its audit verify subcommand
// checks an exported audit log offline, with no server and no database: it
// rebuilds the Merkle tree from the export, checks the signed checkpoint
// (and optionally consistency with an older one) and names the first bad
// entry.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault/supervision"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage:
  vaultctl audit verify --export FILE --checkpoint FILE --key KEY [--old-checkpoint FILE]
  vaultctl evidence verify --file FILE --key KEY

KEY is the checkpoint verifier key (as printed by "vaultd audit pubkey") or a file holding it.
Exit status: 0 verified, 1 verification failed, 2 usage or I/O error.
`

// run returns the exit status so tests drive the real code path.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) >= 2 && args[0] == "evidence" && args[1] == "verify" {
		return evidenceVerify(args[2:], stdout, stderr)
	}
	if len(args) < 2 || args[0] != "audit" || args[1] != "verify" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("vaultctl audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	exportPath := fs.String("export", "", "NDJSON export (GET /api/v1/audit/export); - for stdin")
	ckPath := fs.String("checkpoint", "", "signed checkpoint (GET /api/v1/audit/checkpoint)")
	key := fs.String("key", "", "checkpoint verifier key, or a file holding it")
	oldPath := fs.String("old-checkpoint", "", "an older checkpoint that must be a prefix of the log")
	if err := fs.Parse(args[2:]); err != nil {
		return 2
	}
	if *exportPath == "" || *ckPath == "" || *key == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ck, err := os.ReadFile(*ckPath)
	if err != nil {
		fmt.Fprintf(stderr, "vaultctl: read checkpoint: %v\n", err)
		return 2
	}
	var old []byte
	if *oldPath != "" {
		if old, err = os.ReadFile(*oldPath); err != nil {
			fmt.Fprintf(stderr, "vaultctl: read old checkpoint: %v\n", err)
			return 2
		}
	}
	vkey, err := readKey(*key)
	if err != nil {
		fmt.Fprintf(stderr, "vaultctl: %v\n", err)
		return 2
	}
	in, err := openInput(*exportPath)
	if err != nil {
		fmt.Fprintf(stderr, "vaultctl: open export: %v\n", err)
		return 2
	}
	defer in.Close()
	rep, err := audit.VerifyExport(bufio.NewReaderSize(in, 1<<20), ck, vkey, old)
	var ve *audit.VerifyError
	switch {
	case errors.As(err, &ve):
		if ve.Seq > 0 {
			fmt.Fprintf(stdout, "FAIL: first bad entry seq %d: %s\n", ve.Seq, ve.Reason)
		} else {
			fmt.Fprintf(stdout, "FAIL: %s\n", ve.Reason)
		}
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "vaultctl: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "OK: events %d..%d verified, tree size %d, root %s, checkpoints matched %d\n",
		rep.From, rep.To, rep.TreeSize, rep.Root, rep.Checkpoints)
	if rep.Covered < rep.TreeSize {
		fmt.Fprintf(stdout, "note: events %d..%d are chained but newer than the checkpoint (size %d)\n",
			rep.Covered+1, rep.TreeSize, rep.Covered)
	}
	return 0
}

// readKey accepts the key text itself or a file holding it.
func readKey(k string) (string, error) {
	if b, err := os.ReadFile(k); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if strings.Count(k, "+") >= 2 {
		return strings.TrimSpace(k), nil
	} else {
		return "", fmt.Errorf("read key: %w", err)
	}
}

// evidenceVerify checks a complaint's evidence bundle (GET
// /complaints/{id}/evidence?format=file): the checkpoint's signature and
// every event's inclusion proof against it.
func evidenceVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vaultctl evidence verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("file", "", "evidence bundle; - for stdin")
	key := fs.String("key", "", "checkpoint verifier key, or a file holding it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || *key == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	vkey, err := readKey(*key)
	if err != nil {
		fmt.Fprintf(stderr, "vaultctl: %v\n", err)
		return 2
	}
	in, err := openInput(*path)
	if err != nil {
		fmt.Fprintf(stderr, "vaultctl: open evidence: %v\n", err)
		return 2
	}
	defer in.Close()
	rep, err := supervision.VerifyEvidence(in, vkey)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "OK: complaint %s: %d events proven in the log of size %d, %d newer than the checkpoint\n",
		rep.ComplaintID, rep.Proven, rep.TreeSize, rep.Pending)
	return 0
}

// openInput opens a file, or standard input for "-".
func openInput(path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	return os.Open(path)
}
