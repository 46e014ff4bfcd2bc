package witness

import (
	"encoding/hex"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// A checkpoint is kept under a name that says its size and, since this
// release, its tree root: "checkpoint-<size digits>-<root, 64 lower-case
// hex digits>". The size comes first, in fixed width, so names sort by size
// whichever naming they use; an earlier release's name ("checkpoint-<size
// digits>") sorts just before a new one of the same size. The root lets
// History pass the older checkpoints by name, without a read each (see
// audit.Held for why the name is enough).

// rootSuffix is what follows the size digits in the name of a checkpoint
// with root root.
func rootSuffix(root tlog.Hash) string { return "-" + hex.EncodeToString(root[:]) }

// parseRootSuffix reads what follows the size digits in a checkpoint's
// name: nothing (an earlier release's name: named false), or "-" and the
// root. Anything else (planted, or damaged) is not a root: the checkpoint
// is then read like an old one, and ok is false only when the name is not
// a checkpoint's at all.
func parseRootSuffix(rest string) (root tlog.Hash, named, ok bool) {
	if rest == "" {
		return tlog.Hash{}, false, true
	}
	h, isRoot := strings.CutPrefix(rest, "-")
	if !isRoot {
		return tlog.Hash{}, false, false
	}
	raw, err := hex.DecodeString(h)
	// Lower case only, so one root has one name.
	if err != nil || len(raw) != tlog.HashSize || hex.EncodeToString(raw) != h {
		return tlog.Hash{}, false, true
	}
	return tlog.Hash(raw), true, true
}
