package stack

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// proc is one child process that can be started, killed and started again
// with the same command line, its output appended to one log file.
type proc struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string

	mu       sync.Mutex
	running  *run
	starts   int
	crashes  int // exits nobody asked for
	lastExit error
}

type run struct {
	cmd      *exec.Cmd
	exited   chan struct{}
	expected bool // set before a kill or stop, so the exit is not a crash
}

// start runs the process. On Linux the kernel kills it when the test binary
// dies (Pdeathsig): go test has no teardown when it is killed itself.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running != nil {
		return nil
	}
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(log, "=== start %d at %s\n", p.starts, time.Now().Format(time.RFC3339Nano))
	r := &run{exited: make(chan struct{})}
	started := make(chan error, 1)
	// The child's parent-death signal fires when the thread that forked it
	// exits, so the goroutine that starts it holds its thread until the
	// child is gone.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer log.Close()
		r.cmd = exec.Command(p.bin, p.args...)
		r.cmd.Env = append(os.Environ(), p.env...)
		r.cmd.Stdout, r.cmd.Stderr = log, log
		r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := r.cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s: %w", p.name, err)
			return
		}
		started <- nil
		err := r.cmd.Wait()
		p.mu.Lock()
		p.lastExit = err
		if !r.expected {
			p.crashes++
			fmt.Fprintf(log, "=== %s exited on its own: %v\n", p.name, err)
		}
		if p.running == r {
			p.running = nil
		}
		p.mu.Unlock()
		close(r.exited)
	}()
	if err := <-started; err != nil {
		return err
	}
	p.running = r
	return nil
}

// signal sends sig and waits up to grace for the exit, then kills.
func (p *proc) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	r := p.running
	if r != nil {
		r.expected = true
	}
	p.mu.Unlock()
	if r == nil {
		return
	}
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.exited:
		return
	case <-time.After(grace):
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
}

// kill is kill -9: no chance to finish anything.
func (p *proc) kill() { p.signal(syscall.SIGKILL, time.Minute) }

// stop is a graceful stop (SIGTERM), killed after 30 s.
func (p *proc) stop() { p.signal(syscall.SIGTERM, 30*time.Second) }

func (p *proc) isRunning() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running != nil
}

func (p *proc) crashCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.crashes
}
