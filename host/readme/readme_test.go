package readme

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestReadme runs README.md's shell blocks against a fresh gateway and checks
// its configuration examples; see the package documentation for the rules.
func TestReadme(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "sluice")
	if _, err := os.Stat(bin); err != nil {
		if testing.Short() {
			t.Skip("bin/sluice is not built; `make test` builds it first")
		}
		t.Fatalf("bin/sluice is not built (%v): run `make build`, or `make test`, which builds it first", err)
	}
	markdown, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := Blocks(string(markdown))
	if err != nil {
		t.Fatal(err)
	}
	checkFirstBlock(t, blocks)

	var configs []Block
	sessions := map[string][]Block{} // setup name ("" for the default) → the blocks it runs, in order
	var setups []string
	for _, b := range blocks[1:] {
		switch KindOf(b.Lang) {
		case Unknown:
			t.Errorf("README.md:%d: a ```%s block: the doc test knows sh, bash, shell, console, yaml, go, python, json, rego and text; "+
				"name the block's language as one of them (see host/readme)", b.Line, b.Lang)
		case Config:
			if b.Marker.Skip == "" {
				configs = append(configs, b)
			}
		case Shell, Listing:
			if _, program := Program(b); b.Marker.Skip != "" || KindOf(b.Lang) == Listing && !program {
				continue
			}
			if _, ok := sessions[b.Marker.Setup]; !ok && b.Marker.Setup != "" {
				setups = append(setups, b.Marker.Setup)
			}
			sessions[b.Marker.Setup] = append(sessions[b.Marker.Setup], b)
		}
	}

	for _, name := range setups {
		prepared, _ := filepath.Glob(filepath.Join(root, "host", "readme", "testdata", name+".*"))
		if len(prepared) == 0 {
			t.Errorf("README.md names the setup %s, and host/readme/testdata has no %s.yaml or %s.sh to prepare it", name, name, name)
		}
	}
	t.Run("config", func(t *testing.T) { checkConfigs(t, bin, configs) })
	t.Run("make-run", func(t *testing.T) { runSession(t, root, bin, "", sessions[""]) })
	for _, name := range setups {
		t.Run("setup-"+name, func(t *testing.T) { runSession(t, root, bin, name, sessions[name]) })
	}
}

// checkFirstBlock holds the README to its opening: the two commands a
// newcomer needs, right under the title.
func checkFirstBlock(t *testing.T, blocks []Block) {
	t.Helper()
	if len(blocks) == 0 || blocks[0].Line > 3 || KindOf(blocks[0].Lang) != Shell {
		t.Fatal("README.md must open, under its title, with a shell block of `make run` and `make test`")
	}
	steps, err := Steps(blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	var commands []string
	for _, s := range steps {
		command, _, _ := strings.Cut(s.Command, "#")
		commands = append(commands, strings.TrimSpace(command))
	}
	if strings.Join(commands, "; ") != "make run; make test" {
		t.Fatalf("README.md's first block runs %q, want `make run` and `make test`", commands)
	}
}

// checkConfigs checks each configuration example as `sluice config check`
// would a file of it, with every ${VAR} it names set.
func checkConfigs(t *testing.T, bin string, configs []Block) {
	dir := t.TempDir()
	envVar := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`)
	for _, b := range configs {
		t.Run(fmt.Sprintf("line-%d", b.Line), func(t *testing.T) {
			t.Parallel() // each check loads every plugin: seconds of waiting on a busy machine
			file := filepath.Join(dir, fmt.Sprintf("readme-%d.yaml", b.Line))
			if err := os.WriteFile(file, []byte(b.Text), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "config", "check", "--quiet", file)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "OPENAI_API_KEY=")
			for _, m := range envVar.FindAllStringSubmatch(b.Text, -1) {
				cmd.Env = append(cmd.Env, m[1]+"=placeholder-"+strings.ToLower(m[1]))
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("README.md:%d: the configuration example does not pass `sluice config check` (%v):\n%s", b.Line, err, out)
			}
		})
	}
}

// runSession runs blocks in one bash session against a gateway of their own:
// the `make run` one, or setup's.
func runSession(t *testing.T, root, bin, setup string, blocks []Block) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	// ./bin/sluice, as in a clone where `make build` ran, and sluice on the PATH.
	if err := os.Symlink(bin, filepath.Join(dir, "bin", "sluice")); err != nil {
		t.Fatal(err)
	}
	var config string
	if setup != "" {
		// The setup's configuration as a reader keeps one: sluice.yaml,
		// whose data folder is beside it.
		if yaml, err := os.ReadFile(filepath.Join(root, "host", "readme", "testdata", setup+".yaml")); err == nil {
			config = filepath.Join(dir, "sluice.yaml")
			if err := os.WriteFile(config, yaml, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	gw := startGateway(t, bin, dir, config)
	sh := startShell(t, dir, gw)
	if setup != "" {
		prelude := filepath.Join(root, "host", "readme", "testdata", setup+".sh")
		if _, err := os.Stat(prelude); err == nil {
			if ran := sh.run(t, "source "+strconv.Quote(prelude)+"\n"); ran.Exit != 0 {
				t.Fatalf("testdata/%s.sh: exit status %d:\n%s", setup, ran.Exit, ran.Output)
			}
		}
	}
	for _, b := range blocks {
		steps, err := sh.steps(b, root)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, step := range steps {
			ran := sh.run(t, sh.prepare(step.Command))
			if testing.Verbose() {
				t.Logf("README.md:%d: $ %s\n%s", step.Line, strings.TrimSpace(step.Command), ran.Output)
			}
			if err := Check(step.Expect, ran); err != nil {
				t.Errorf("README.md:%d: %v\n$ %s", step.Line, err, strings.TrimSpace(step.Command))
			}
			sh.remember(ran)
		}
	}
	if t.Failed() {
		t.Logf("the gateway's log:\n%s", gw.log.String())
	}
}

// gateway is a `sluice serve` on free ports.
type gateway struct {
	listen, admin string
	log           lockedBuffer
}

// startGateway serves from dir as `make run` does (no configuration file
// unless config is set), on free ports, and waits until it is ready.
func startGateway(t *testing.T, bin, dir, config string) *gateway {
	t.Helper()
	gw := &gateway{listen: freeAddr(t), admin: freeAddr(t)}
	args := []string{"serve", "--listen", gw.listen, "--admin-listen", gw.admin}
	if config != "" {
		args = append(args, "--config", config)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OPENAI_API_KEY=") // the built-in mock, whatever the machine has set
	cmd.Stdout = io.Discard
	cmd.Stderr = &gw.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get("http://" + gw.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return gw
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice serve was not ready within 2 minutes:\n%s", gw.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shell is one bash session, a reader's terminal: what a command sets stays
// set for the next.
type shell struct {
	dir     string
	gw      *gateway
	stdin   io.Writer
	lines   chan string
	lastKey string
}

// keyID is how a key's id is printed; placeholderKey how the README writes one.
var (
	keyID          = regexp.MustCompile(`key_[0-9a-f]{12}`)
	placeholderKey = "key_0123456789ab"
	readmeAddr     = regexp.MustCompile(`\b(127\.0\.0\.1|localhost):(8080|8081)\b`)
)

// marker starts the lines the session writes for the test, never for a reader.
const marker = "\x1e"

func startShell(t *testing.T, dir string, gw *gateway) *shell {
	t.Helper()
	cmd := exec.Command("bash", "--noprofile", "--norc")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(dir, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"), "TERM=dumb")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w // one stream, in the order a terminal shows it
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	sh := &shell{dir: dir, gw: gw, stdin: stdin, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			sh.lines <- sc.Text()
		}
		close(sh.lines)
	}()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
		r.Close()
	})
	// curl as a terminal shows it (no progress meter), telling the test
	// each status on standard error.
	if ran := sh.run(t, "set -o pipefail\n"+
		`curl() { command curl -sS -w $'%{stderr}\n`+marker+`status %{http_code}\n' "$@"; }`+"\n"); ran.Exit != 0 {
		t.Fatalf("bash: %s", ran.Output)
	}
	return sh
}

// prepare points a README command at the test's gateway and at the key a
// reader would have copied.
func (sh *shell) prepare(command string) string {
	command = readmeAddr.ReplaceAllStringFunc(command, func(addr string) string {
		host, port, _ := strings.Cut(addr, ":")
		gw := sh.gw.listen
		if port == "8081" {
			gw = sh.gw.admin
		}
		_, gwPort, _ := strings.Cut(gw, ":")
		return host + ":" + gwPort
	})
	if sh.lastKey != "" {
		command = strings.ReplaceAll(command, placeholderKey, sh.lastKey)
	}
	return command
}

// steps are the commands of a shell block, or, for a Go program, those that
// run it as its reader would: its `// export` lines first, then `go run` in
// the module, whose go.mod has the clients it imports.
func (sh *shell) steps(b Block, root string) ([]Step, error) {
	exports, program := Program(b)
	if !program {
		return Steps(b)
	}
	file := filepath.Join(sh.dir, fmt.Sprintf("readme-%d", b.Line), "main.go")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, []byte(sh.prepare(b.Text)), 0o600); err != nil {
		return nil, err
	}
	var steps []Step
	for _, export := range exports {
		steps = append(steps, Step{Line: b.Line, Command: export + "\n"})
	}
	return append(steps, Step{Line: b.Line, Command: "go -C " + strconv.Quote(root) + " run " + strconv.Quote(file) + "\n"}), nil
}

// remember notes the last key id a command printed.
func (sh *shell) remember(ran Ran) {
	if ids := keyID.FindAllString(ran.Output, -1); len(ids) > 0 {
		sh.lastKey = ids[len(ids)-1]
	}
}

// run runs command in the session and collects what it printed.
func (sh *shell) run(t *testing.T, command string) Ran {
	t.Helper()
	fmt.Fprintf(sh.stdin, "%s\n__rc=$?; printf '\\n%send %%d\\n' \"$__rc\"\n", command, marker)
	var ran Ran
	var out []string
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case line, ok := <-sh.lines:
			if !ok {
				t.Fatalf("bash ended while running:\n%s\n%s", command, strings.Join(out, "\n"))
			}
			if rest, ok := strings.CutPrefix(line, marker+"status "); ok {
				status, _ := strconv.Atoi(rest)
				ran.Statuses = append(ran.Statuses, status)
				continue
			}
			if rest, ok := strings.CutPrefix(line, marker+"end "); ok {
				ran.Exit, _ = strconv.Atoi(rest)
				ran.Output = strings.TrimSpace(strings.Join(out, "\n"))
				return ran
			}
			out = append(out, line)
		case <-timeout:
			t.Fatalf("still running after 2 minutes:\n%s\n%s", command, strings.Join(out, "\n"))
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lockedBuffer is the gateway's log, written while a failing test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
