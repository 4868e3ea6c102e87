package testenv

import (
	"errors"
	"path/filepath"
	"runtime"
	"syscall"
)

func lockThreadForChild()   { runtime.LockOSThread() }
func unlockThreadForChild() { runtime.UnlockOSThread() }

// childProcAttr has the kernel kill the server when the test binary dies,
// however it dies: go test has no global teardown.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// userXattrsWork reports whether files in dir take user extended
// attributes, which versitygw's posix backend uses for object metadata.
func userXattrsWork(dir string) bool {
	probe := filepath.Join(dir, ".xattr-probe")
	if err := syscall.Mkdir(probe, 0o700); err != nil {
		return false
	}
	defer syscall.Rmdir(probe)
	return syscall.Setxattr(probe, "user.takedown.probe", []byte("1"), 0) == nil
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
