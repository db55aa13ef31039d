package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// process is a server the benchmark started, with its output in a log file.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error // why it exited; read after exited is closed
}

// startProcess runs bin with args, its standard output and error going to logPath.
func startProcess(name, logPath, bin string, args ...string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// waitReady polls url with GET until it answers 200, the process exits, or
// the time runs out.
func (p *process) waitReady(ctx context.Context, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		status, _, err := fasthttp.GetTimeout(nil, url, time.Second)
		if err == nil && status == fasthttp.StatusOK {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready (%v); its output:\n%s", p.name, p.err, p.tail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer %s within %s; its output:\n%s", p.name, url, within, p.tail(20))
		}
	}
}

// signal asks the process to stop, as Ctrl-C would.
func (p *process) signal() {
	select {
	case <-p.exited:
	default:
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			p.cmd.Process.Kill()
		}
	}
}

// wait waits for the process to exit after signal, and kills it once grace
// has passed. It reports an exit that was not the clean one a stop asks for.
func (p *process) wait(grace time.Duration) error {
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within %s and was killed", p.name, grace)
	}
	var exit *exec.ExitError
	if p.err != nil && !(errors.As(p.err, &exit) && !exit.Exited()) {
		return fmt.Errorf("%s stopped with %v; its output:\n%s", p.name, p.err, p.tail(10))
	}
	return nil
}

// tail is the last n lines the process wrote.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return "(no output: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.ReplaceAll(string(bytes.Join(lines, []byte("\n"))), "\n", "\n    ")
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. The servers take their address on the command line or in a file, so
// the port is chosen here; another process taking it in between would make
// the server fail to start, which waitReady reports.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
