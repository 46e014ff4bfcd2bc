//go:build !linux

package main

// hardenProcess has nothing to do where vaultd is not deployed (Linux
// only): development builds on other systems run as they are.
func hardenProcess() error { return nil }
