package stack

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Services are the five services, in the order they are started.
var Services = []string{"audit-logger", "intake", "ncmec-reporter", "case-writer", "retraction"}

// natsServer is the pinned NATS server (pkg/go.mod) running the shipped
// deploy/nats/nats.conf, built like the services, so that a restart is a
// real process restart on the same store and CI needs no nats-server
// installed.
const natsServer = "takedown/pkg/cmd/localnats"

var build struct {
	once sync.Once
	dir  string
	err  error
}

// BinEnv names a directory of prebuilt service binaries (make build's
// ./bin, or a build of another commit) to test instead of building the
// working tree.
const BinEnv = "TAKEDOWN_E2E_BIN"

// binaries builds the services and the NATS server once per test binary,
// into a directory named after this process; directories of processes that
// are gone are removed first (go test has no global teardown to do it).
// It returns the directories of the services and of nats-server.
func binaries() (services, nats string, err error) {
	dir, err := buildOnce()
	if err != nil {
		return "", "", err
	}
	if pre := os.Getenv(BinEnv); pre != "" {
		return pre, dir, nil
	}
	return dir, dir, nil
}

func buildOnce() (string, error) {
	build.once.Do(func() {
		sweepStaleBinDirs()
		dir, err := os.MkdirTemp("", fmt.Sprintf("takedown-e2e-bin-%d-", os.Getpid()))
		if err != nil {
			build.err = err
			return
		}
		pkgs := []string{natsServer}
		if os.Getenv(BinEnv) == "" {
			for _, s := range Services {
				pkgs = append(pkgs, "takedown/services/"+s)
			}
		}
		cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		build.dir = dir
	})
	return build.dir, build.err
}

func sweepStaleBinDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "takedown-e2e-bin-*"))
	for _, d := range dirs {
		parts := strings.Split(filepath.Base(d), "-")
		if len(parts) < 4 {
			continue
		}
		pid, err := strconv.Atoi(parts[3])
		if err != nil || pid == os.Getpid() {
			continue
		}
		// Signal 0 probes whether the process exists.
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}
