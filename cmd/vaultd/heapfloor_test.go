package main

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"testing"
)

// TestHeapFloor checks, in a fresh process as vaultd's own start is, that the
// ballast raises the collector's target to the floor without becoming
// resident, that an operator's GOGC is left alone, and that an operator's
// GOMEMLIMIT gets no ballast to count against it.
func TestHeapFloor(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), heapFloorChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	fields := map[string]int64{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				fields[k] = n
			}
		}
	}
	for _, k := range []string{"operator_gogc", "memlimit_gogc", "ballast_len", "rss_growth", "goal"} {
		if _, ok := fields[k]; !ok {
			t.Fatalf("child did not report %s:\n%s", k, out)
		}
	}
	if fields["operator_gogc"] != 200 {
		t.Errorf("with GOGC=200 set, the collector runs at %d%%", fields["operator_gogc"])
	}
	if fields["memlimit_gogc"] != gcPercent {
		t.Errorf("with GOMEMLIMIT set and GOGC unset, the collector runs at %d%%, want %d%%", fields["memlimit_gogc"], gcPercent)
	}
	if fields["ballast_len"] != heapFloor {
		t.Errorf("ballast of %d bytes, want %d", fields["ballast_len"], heapFloor)
	}
	// Some pages of the process are touched by the allocation's bookkeeping;
	// a ballast that became resident would add all of its 64 MiB.
	if g := fields["rss_growth"]; g > 8<<20 {
		t.Errorf("the ballast made the resident set grow by %d MiB", g>>20)
	}
	if want := int64(heapFloor) * (100 + gcPercent) / 100; fields["goal"] < want {
		t.Errorf("collector's heap goal %d MiB, want at least %d MiB", fields["goal"]>>20, want>>20)
	}
}

// heapFloorChildEnv makes the test binary run heapFloorChild from TestMain,
// before anything else has used the heap.
const heapFloorChildEnv = "CRVAULT_HEAP_FLOOR_CHILD"

// heapFloorChild reports what tuneGC did to this process on stdout, one
// key=value a line, and returns the exit status.
func heapFloorChild() int {
	debug.SetGCPercent(200)
	if b := tuneGC("200", ""); b != nil {
		os.Stdout.WriteString("operator's GOGC got a ballast\n")
		return 1
	}
	os.Stdout.WriteString("operator_gogc=" + strconv.Itoa(debug.SetGCPercent(200)) + "\n")
	if b := tuneGC("", "1GiB"); b != nil {
		os.Stdout.WriteString("operator's GOMEMLIMIT got a ballast\n")
		return 1
	}
	os.Stdout.WriteString("memlimit_gogc=" + strconv.Itoa(debug.SetGCPercent(200)) + "\n")
	before := residentBytes()
	ballast := tuneGC("", "")
	after := residentBytes()
	if before < 0 || after < 0 {
		os.Stdout.WriteString("no VmRSS in /proc/self/status\n")
		return 1
	}
	runtime.GC()
	s := []rtmetrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	rtmetrics.Read(s)
	os.Stdout.WriteString("ballast_len=" + strconv.Itoa(len(ballast)) + "\n")
	os.Stdout.WriteString("rss_growth=" + strconv.FormatInt(after-before, 10) + "\n")
	os.Stdout.WriteString("goal=" + strconv.FormatUint(s[0].Value.Uint64(), 10) + "\n")
	runtime.KeepAlive(ballast)
	return 0
}

// residentBytes is the process's resident set (VmRSS), or -1.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(v)), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}
