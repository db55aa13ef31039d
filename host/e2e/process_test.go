package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx", for the test schemas
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluicehq/sluice/host/config"
)

// sluiceBin is the sluice binary, built once by TestMain for every test.
var sluiceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	code := 1
	if err := buildSluice(sluiceBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildSluice builds ./host/cmd/sluice from the module root into out.
func buildSluice(out string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, "build", "-o", out, "./host/cmd/sluice")
	cmd.Dir = filepath.Join("..", "..") // the module root, seen from host/e2e
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building sluice: %w\n%s", err, b)
	}
	return nil
}

const (
	adminToken = "e2e-admin-token"
	model      = "gpt-4o-mini"
)

// freeAddr is a loopback address with a port free a moment ago. The gateway
// is given explicit ports because it does not print back the ones the kernel
// picks for 127.0.0.1:0.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// baseConfig is a gateway of its own: SQLite and in-process limits in a fresh
// data folder, free ports, a known admin token, no demo client, no plugins,
// and the mock upstream serving one model. Every client is on tier "open"
// (no limits) unless created on a tier a test adds.
func baseConfig(t testing.TB) *config.Config {
	t.Helper()
	c := config.Default()
	c.DataDir = t.TempDir()
	c.Server.Listen, c.Server.AdminListen = freeAddr(t), freeAddr(t)
	c.Server.AdminToken = adminToken
	c.Server.ShutdownTimeout = config.Duration(10 * time.Second)
	// One line per request would bury a failing test's own messages.
	c.Server.AccessLog = false
	c.Auth.CacheTTL = config.Duration(time.Second)
	c.Reload.Watch = false
	c.Plugins = []config.Plugin{}
	c.Upstreams = []config.Upstream{{Name: "mock", Type: "mock"}}
	c.Models = []config.Model{{Name: model, Upstream: "mock", InputPerMillion: 0.15, OutputPerMillion: 0.60}}
	c.Tiers = map[string]config.Tier{"open": {Models: []string{"*"}}}
	c.DefaultTier = "open"
	c.Departments = map[string]config.Budget{}
	c.Demo.Enabled = false
	return c
}

// useRedis points cfg's limiter at rds. The round-trip timeout is raised
// from its default of 200ms: on a busy two-core machine, dialing a cold
// connection pool under a burst of requests has been seen to take longer,
// and one failed call makes the limiter follow its fail mode for a while
// (503 limits_unavailable under deny). These tests are about counting.
func useRedis(cfg *config.Config, rds *redisServer, failMode string) {
	cfg.Limits.Backend = "redis"
	cfg.Limits.Redis.URL = rds.url()
	cfg.Limits.Redis.FailMode = failMode
	cfg.Limits.Redis.Timeout = config.Duration(time.Second)
}

// replicaOf is cfg for a second gateway process: the same store, limits and
// tiers, its own ports and data folder.
func replicaOf(t testing.TB, cfg *config.Config) *config.Config {
	t.Helper()
	r := *cfg
	r.DataDir = t.TempDir()
	r.Server.Listen, r.Server.AdminListen = freeAddr(t), freeAddr(t)
	return &r
}

// gateway is a sluice process serving one configuration file.
type gateway struct {
	t       testing.TB
	cfg     *config.Config
	cfgPath string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	state   *os.ProcessState
}

// startGateway writes cfg to a file in its data folder, runs `sluice serve`
// on it and waits until both listeners answer. The process is killed at the
// end of the test if it is still running, and its log is shown if the test
// failed.
func startGateway(t testing.TB, cfg *config.Config) *gateway {
	t.Helper()
	raw, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, cfg: cfg, cfgPath: filepath.Join(cfg.DataDir, "sluice.yaml"),
		logPath: filepath.Join(cfg.DataDir, "sluice.log"), exited: make(chan struct{})}
	if err := os.WriteFile(g.cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	g.cmd = exec.Command(sluiceBin, "serve", "--config", g.cfgPath)
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	if err := g.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() {
		g.cmd.Wait()
		g.state = g.cmd.ProcessState
		logf.Close()
		close(g.exited)
	}()
	t.Cleanup(func() {
		if g.alive() {
			g.cmd.Process.Kill()
			<-g.exited
		}
		if t.Failed() {
			t.Logf("log of the gateway on %s:\n%s", cfg.Server.Listen, g.logTail(40))
		}
	})
	g.waitReady()
	return g
}

// waitReady polls /healthz on both listeners.
func (g *gateway) waitReady() {
	g.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{g.cfg.Server.AdminListen, g.cfg.Server.Listen} {
		for {
			resp, err := http.Get("http://" + addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if !g.alive() {
				g.t.Fatalf("sluice exited during its start (%v):\n%s", g.state, g.logTail(40))
			}
			if time.Now().After(deadline) {
				g.t.Fatalf("sluice did not answer on %s within 30s:\n%s", addr, g.logTail(40))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (g *gateway) alive() bool {
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// stop sends sig and waits for the process to exit, for at most a minute. It
// returns the exit code and how long the exit took from the signal.
func (g *gateway) stop(sig os.Signal) (code int, took time.Duration) {
	g.t.Helper()
	start := time.Now()
	if err := g.cmd.Process.Signal(sig); err != nil && g.alive() {
		g.t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-g.exited:
	case <-time.After(time.Minute):
		g.t.Fatalf("sluice did not exit within a minute of %v", sig)
	}
	return g.state.ExitCode(), time.Since(start)
}

// logTail is the last n lines of the process's log.
func (g *gateway) logTail(n int) string {
	b, _ := os.ReadFile(g.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// admin calls the admin API with the admin token.
func (g *gateway) admin(method, path, body string) (int, []byte) {
	g.t.Helper()
	req, err := http.NewRequest(method, "http://"+g.cfg.Server.AdminListen+path, strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// createClient creates a client on a tier and a key for it through the admin
// API, and returns the key and its id.
func (g *gateway) createClient(id, department, tier string) (key, keyID string) {
	g.t.Helper()
	body, _ := json.Marshal(map[string]string{"id": id, "department": department, "tier": tier})
	if status, b := g.admin("POST", "/admin/clients", string(body)); status != http.StatusCreated {
		g.t.Fatalf("create client %s: %d %s", id, status, b)
	}
	status, b := g.admin("POST", "/admin/keys", `{"client_id":"`+id+`"}`)
	if status != http.StatusCreated {
		g.t.Fatalf("create key for %s: %d %s", id, status, b)
	}
	var k struct{ Key, ID string }
	if err := json.Unmarshal(b, &k); err != nil || k.Key == "" {
		g.t.Fatalf("create key for %s: %v in %s", id, err, b)
	}
	return k.Key, k.ID
}

// usageRow is one row of a usage report, grouped by client or department.
type usageRow struct {
	Client      string `json:"client"`
	Department  string `json:"department"`
	Requests    int64  `json:"requests"`
	TotalTokens int64  `json:"total_tokens"`
}

// usage is the admin API's report of the ledger, grouped by groupBy and
// keyed by group. A gateway flushes its own ledger before it reports; the
// others named flush theirs first, for a ledger that replicas share.
func (g *gateway) usage(groupBy string, others ...*gateway) map[string]usageRow {
	g.t.Helper()
	var b []byte
	for _, r := range append(others, g) {
		var status int
		if status, b = r.admin("GET", "/admin/usage?format=json&group_by="+groupBy, ""); status != http.StatusOK {
			g.t.Fatalf("usage report: %d %s", status, b)
		}
	}
	return parseReport(g.t, b)
}

func parseReport(t testing.TB, b []byte) map[string]usageRow {
	t.Helper()
	var rows []usageRow
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatalf("usage report: %v in %s", err, b)
	}
	out := make(map[string]usageRow, len(rows))
	for _, r := range rows {
		out[r.Client+r.Department] = r
	}
	return out
}

// sluiceCLI runs a sluice subcommand and returns its standard output.
func sluiceCLI(t testing.TB, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(sluiceBin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// client is an OpenAI client of the gateway's API with key; it never retries,
// so that every call is one request.
func (g *gateway) client(key string) openai.Client {
	return openai.NewClient(option.WithBaseURL("http://"+g.cfg.Server.Listen+"/v1"),
		option.WithAPIKey(key), option.WithMaxRetries(0), option.WithRequestTimeout(30*time.Second))
}

// answer is what a caller saw of one chat completion.
type answer struct {
	status    int    // 0 when no answer came; err says why
	code, typ string // of an error answer
	message   string
	rawError  string // the error object as sent
	requestID string
	tokens    int64 // total tokens of a 200
	header    http.Header
	at        time.Time // when the answer (or the failure) came
	err       error
}

// outcome names an answer for counting: "200", "429 budget_exceeded", or
// "no answer".
func (a answer) outcome() string {
	switch {
	case a.status == 0:
		return "no answer"
	case a.code == "":
		return strconv.Itoa(a.status)
	}
	return fmt.Sprintf("%d %s", a.status, a.code)
}

// ask sends one short chat completion with max_tokens.
func ask(c openai.Client, maxTokens int64) answer {
	var resp *http.Response
	params := openai.ChatCompletionNewParams{
		Model:     model,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		MaxTokens: openai.Int(maxTokens),
	}
	out, err := c.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&resp))
	a := answer{at: time.Now()}
	var e *openai.Error
	switch {
	case err == nil:
		a.status, a.tokens = resp.StatusCode, out.Usage.TotalTokens
	case errors.As(err, &e):
		a.status, a.code, a.typ, a.message, a.rawError = e.StatusCode, e.Code, e.Type, e.Message, e.RawJSON()
		resp = e.Response
	default:
		a.err = err
		return a
	}
	a.header = resp.Header
	a.requestID = resp.Header.Get("x-request-id")
	return a
}

// askAll sends n requests at once, each through the next of clients in turn,
// and returns the answers in that order.
func askAll(clients []openai.Client, n int, maxTokens int64) []answer {
	out := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = ask(clients[i%len(clients)], maxTokens) })
	}
	wg.Wait()
	return out
}

// tally counts answers by outcome.
func tally(answers []answer) map[string]int {
	out := map[string]int{}
	for _, a := range answers {
		out[a.outcome()]++
	}
	return out
}

// load is a stream of requests from concurrent callers, each sending its next
// request when the previous one is answered.
type load struct {
	stopOnce sync.Once
	stopCh   chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	answers  []answer
}

// startLoad starts workers callers through c. With untilNoAnswer, a caller
// stops at its first request that gets no answer (the gateway has gone);
// otherwise it goes on until stop.
func startLoad(c openai.Client, workers int, maxTokens int64, untilNoAnswer bool) *load {
	l := &load{stopCh: make(chan struct{})}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stopCh:
					return
				default:
				}
				a := ask(c, maxTokens)
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
				if a.status == 0 && untilNoAnswer {
					return
				}
			}
		})
	}
	return l
}

// wait waits for the callers to stop on their own, at most d, then stops them.
func (l *load) wait(d time.Duration) []answer {
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
	return l.stop()
}

// stop stops the callers after their current request and returns every answer.
func (l *load) stop() []answer {
	l.stopOnce.Do(func() { close(l.stopCh) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answers
}

// redisServer is a redis-server process of one test, on a free port, without
// persistence: stopping it loses every count, as a crashed cache would.
type redisServer struct {
	t      testing.TB
	addr   string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startRedis starts a redis-server of the test's own. The gateway's
// configuration has no key prefix for the limiter, so tests that share a
// server could meet in it; a server per test also lets a test stop it.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		msg := "redis-server is not on the PATH (install it with scripts/ensure-packages redis-server)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	r := &redisServer{t: t, addr: freeAddr(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(func() {
		if r.running() {
			r.cmd.Process.Kill()
			<-r.exited
		}
	})
	return r
}

func (r *redisServer) url() string { return "redis://" + r.addr + "/0" }

func (r *redisServer) running() bool {
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// start starts the server on its port and waits until it answers PING.
func (r *redisServer) start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	r.exited = make(chan struct{})
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("redis-server: %v", err)
	}
	go func() { r.cmd.Wait(); close(r.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for !r.pong() {
		if !r.running() || time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server on %s did not start:\n%s", r.addr, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop kills the server, as a crash or a lost host would.
func (r *redisServer) stop() {
	r.t.Helper()
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

func (r *redisServer) pong() bool {
	reply, err := r.command("PING")
	return err == nil && reply == "+PONG"
}

// command sends one inline command and returns the first line of the reply.
func (r *redisServer) command(cmd string) (string, error) {
	conn, err := net.DialTimeout("tcp", r.addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(conn, cmd+"\r\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}
