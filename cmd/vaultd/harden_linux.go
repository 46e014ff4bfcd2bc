package main

import (
	"fmt"
	"syscall"
)

// hardenProcess keeps what vaultd holds in memory (documents being sent,
// unwrapped case keys, the master key) off the disk and away from other
// processes of its user:
//   - no core file (RLIMIT_CORE 0, soft and hard): a crash, or
//     GOTRACEBACK=crash, would otherwise write the process's memory,
//     plaintext included, wherever the system's core pattern says
//     (systemd-coredump keeps them);
//   - not dumpable (PR_SET_DUMPABLE 0): nor can a process of the same user
//     that is not root attach a debugger, or read /proc/<pid>/mem or
//     /proc/<pid>/environ (where VAULT_MASTER_KEY may be).
//
// Root keeps both powers: the host's administrator is trusted with the
// process, as vault/crypt's threat model says.
func hardenProcess() error {
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
		return fmt.Errorf("no core dumps: %w", err)
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0); errno != 0 {
		return fmt.Errorf("not dumpable: %w", errno)
	}
	return nil
}
