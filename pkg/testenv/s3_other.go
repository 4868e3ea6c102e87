//go:build !linux

package testenv

import "syscall"

func lockThreadForChild()   {}
func unlockThreadForChild() {}

// childProcAttr: without Linux's parent-death signal the server outlives a
// killed test binary; Main stops it on a normal exit.
func childProcAttr() *syscall.SysProcAttr { return nil }

// userXattrsWork says no, so that versitygw keeps metadata in a sidecar
// directory, which works on every filesystem.
func userXattrsWork(string) bool { return false }

// processAlive says yes, so that no directory is swept without a way to
// check its owner.
func processAlive(int) bool { return true }
