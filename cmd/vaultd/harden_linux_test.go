package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestVaultdLeavesNoCoreDump (review h29b): a crash of vaultd must not write
// its memory, documents and keys included, to a core file. The real binary,
// serving, has a core size limit of zero, whatever it inherited.
func TestVaultdLeavesNoCoreDump(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	s.start()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max core file size"); ok {
			if f := strings.Fields(rest); len(f) < 2 || f[0] != "0" || f[1] != "0" {
				t.Fatalf("vaultd's core file size limit: %q, want 0 0", strings.TrimSpace(rest))
			}
			return
		}
	}
	t.Fatalf("no core size limit in /proc/<pid>/limits:\n%s", b)
}

// TestHardenProcess: hardenProcess makes the process not dumpable (no
// debugger or /proc/<pid>/mem for other processes of its user) and sets the
// core size limit, soft and hard, to zero. It runs in a child (this test
// binary again, stopped in TestMain): hardening this process would hand the
// limit down to every vaultd the other tests start, and hide a vaultd that
// does not set it.
func TestHardenProcess(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), hardenChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "dumpable=0 core=0/0" {
		t.Fatalf("after hardenProcess: %q, want dumpable=0 core=0/0", got)
	}
}

// hardenChildEnv makes TestMain run hardenChild instead of the tests.
const hardenChildEnv = "CRVAULT_TEST_HARDEN_CHILD"

func hardenChild() int {
	if err := hardenProcess(); err != nil {
		fmt.Println(err)
		return 1
	}
	d, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_GET_DUMPABLE, 0, 0)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &rl); err != nil || errno != 0 {
		fmt.Println(err, errno)
		return 1
	}
	fmt.Printf("dumpable=%d core=%d/%d\n", d, rl.Cur, rl.Max)
	return 0
}
