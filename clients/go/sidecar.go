package runcore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// Environment variables the client reads (the sidecar reads its own RUNCORE_* ones).
const (
	// EnvAddress is the address of a running sidecar: unix:///path/to.sock or
	// tcp://127.0.0.1:PORT.
	EnvAddress = "RUNCORE_ADDRESS"
	// EnvBin is the runcore binary to spawn when no address is given.
	EnvBin = "RUNCORE_BIN"
	// EnvDataDir is the data dir of a spawned sidecar.
	EnvDataDir = "RUNCORE_DATA_DIR"
	// EnvAuthToken is the bearer token of a sidecar started with --auth-token.
	EnvAuthToken = "RUNCORE_AUTH_TOKEN"
)

// bearer sends a sidecar's auth token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: the sidecar is on loopback or a unix socket,
// or behind TLS configured through Options.DialOptions.
func (bearer) RequireTransportSecurity() bool { return false }

// serviceName is the service whose health the client waits for.
const serviceName = "runcore.v1.RunService"

// maxSocketPath is the longest unix socket path used (sun_path is 108 bytes with
// the NUL on Linux, 104 on macOS).
const maxSocketPath = 100

// stopGrace is how long Close gives a spawned sidecar to exit after SIGTERM.
const stopGrace = 15 * time.Second

// sidecar is one connection to one sidecar, shared by every run of this process
// that logs to it.
type sidecar struct {
	address string
	// origin says how the address was found, for error messages.
	origin  string
	conn    *grpc.ClientConn
	client  pb.RunServiceClient
	health  healthpb.HealthClient
	spawned *spawned // nil when this process did not start the sidecar

	mu sync.Mutex
	// generation is bumped by every recover(): runs re-attach when it changed.
	generation uint64
}

// registry holds this process's connections, keyed by address (or by binary and
// data dir for a spawned sidecar).
var registry struct {
	sync.Mutex
	byKey map[string]*sidecar
}

// getSidecar returns the connection for a new run: to opts.Address, else to
// $RUNCORE_ADDRESS, else to this process's spawned sidecar (started on first use).
func getSidecar(ctx context.Context, opts *Options) (*sidecar, error) {
	address, origin := opts.Address, "Options.Address"
	if address == "" {
		address, origin = os.Getenv(EnvAddress), EnvAddress
	}
	registry.Lock()
	defer registry.Unlock()
	if registry.byKey == nil {
		registry.byKey = make(map[string]*sidecar)
	}
	if address != "" {
		token := opts.AuthToken
		if token == "" {
			token = os.Getenv(EnvAuthToken)
		}
		// One connection per address and token: a connection carries its token.
		key := address + "\x00" + token
		if sc := registry.byKey[key]; sc != nil {
			return sc, nil
		}
		dialOpts := opts.DialOptions
		if token != "" {
			dialOpts = append([]grpc.DialOption{grpc.WithPerRPCCredentials(bearer(token))}, dialOpts...)
		}
		sc, err := dial(address, origin, nil, dialOpts)
		if err != nil {
			return nil, err
		}
		if err := sc.waitHealthy(ctx); err != nil {
			sc.close()
			return nil, fmt.Errorf("%w: %v; %s names it: start it (runcore serve --listen %s) or unset %s to let the client spawn its own",
				ErrNoSidecar, err, origin, address, EnvAddress)
		}
		registry.byKey[key] = sc
		return sc, nil
	}
	binary, binOrigin, err := findBinary(opts.Binary)
	if err != nil {
		return nil, err
	}
	dataDir := opts.DataDir
	if dataDir == "" {
		dataDir = os.Getenv(EnvDataDir)
	}
	if dataDir == "" {
		dataDir = "runcore-data"
	}
	if dataDir, err = filepath.Abs(dataDir); err != nil {
		return nil, fmt.Errorf("%w: data dir: %v", ErrNoSidecar, err)
	}
	key := "spawn:" + binary + "\x00" + dataDir
	if sc := registry.byKey[key]; sc != nil {
		return sc, nil
	}
	sc, err := spawn(ctx, binary, binOrigin, dataDir, opts.DialOptions)
	if err != nil {
		return nil, err
	}
	registry.byKey[key] = sc
	return sc, nil
}

// Close closes every connection of this process and stops the sidecars it spawned
// (SIGTERM, then waits for them to exit). Call it after every run has finished,
// typically with defer in main. A later Init connects (or spawns) again.
// Without Close, a spawned sidecar exits on its own when this process exits (it
// watches the process through --parent-pid).
func Close() error {
	registry.Lock()
	all := registry.byKey
	registry.byKey = nil
	registry.Unlock()
	var errs []error
	for _, sc := range all {
		if err := sc.close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func findBinary(explicit string) (path, origin string, err error) {
	tried := []string{EnvAddress + " is not set"}
	for _, c := range []struct{ origin, path string }{
		{"Options.Binary", explicit},
		{EnvBin, os.Getenv(EnvBin)},
	} {
		if c.path == "" {
			continue
		}
		if st, err := os.Stat(c.path); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			abs, err := filepath.Abs(c.path)
			if err != nil {
				return "", "", fmt.Errorf("%w: %v", ErrNoSidecar, err)
			}
			return abs, c.origin + "=" + c.path, nil
		}
		tried = append(tried, fmt.Sprintf("%s=%s is not an executable file", c.origin, c.path))
		return "", "", noSidecar(tried)
	}
	tried = append(tried, EnvBin+" is not set")
	if p, err := exec.LookPath("runcore"); err == nil {
		return p, "runcore on PATH", nil
	}
	tried = append(tried, fmt.Sprintf("no 'runcore' on PATH (%s)", os.Getenv("PATH")))
	return "", "", noSidecar(tried)
}

func noSidecar(tried []string) error {
	return fmt.Errorf("%w to log to: %s. Set %s to a running sidecar (unix:///path/to.sock or tcp://127.0.0.1:PORT), "+
		"or %s to the runcore binary (build it with `cargo build`), or put runcore on PATH",
		ErrNoSidecar, strings.Join(tried, "; "), EnvAddress, EnvBin)
}

// grpcTarget turns a runcore address (unix:///p, tcp://h:p or h:p) into a gRPC target.
func grpcTarget(address string) string {
	if strings.HasPrefix(address, "unix:") {
		return address
	}
	return strings.TrimPrefix(address, "tcp://")
}

func dial(address, origin string, sp *spawned, extra []grpc.DialOption) (*sidecar, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Reconnect quickly after a sidecar restart instead of gRPC's 1 s..120 s.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
		// Summaries and configs can be large; the sidecar bounds what it accepts.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
	}
	conn, err := grpc.NewClient(grpcTarget(address), append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: bad address %q (%s): %v", ErrNoSidecar, address, origin, err)
	}
	return &sidecar{
		address: address,
		origin:  origin,
		conn:    conn,
		client:  pb.NewRunServiceClient(conn),
		health:  healthpb.NewHealthClient(conn),
		spawned: sp,
	}, nil
}

func (sc *sidecar) describe() string { return sc.address + " (" + sc.origin + ")" }

// errExited says that a spawned sidecar exited while the client waited for it.
var errExited = errors.New("the runcore sidecar exited")

// waitHealthy waits until the sidecar's health check says SERVING.
func (sc *sidecar) waitHealthy(ctx context.Context) error {
	delay := 20 * time.Millisecond
	for {
		problem := sc.checkHealth(ctx)
		if problem == "" {
			return nil
		}
		if sp := sc.spawned; sp != nil && !sp.alive() {
			return fmt.Errorf("%w: %s; its log %s ends with:\n%s", errExited, sc.describe(), sp.logPath, logTail(sp.logPath))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the runcore sidecar at %s did not answer its health check (%s) in time: %s", sc.describe(), serviceName, problem)
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
		// Try to connect now rather than after gRPC's reconnect backoff.
		sc.conn.ResetConnectBackoff()
	}
}

// checkHealth returns "" when SERVING, else what is wrong. A check waits for the
// connection (at most 2 s), but not for a spawned sidecar that has exited.
func (sc *sidecar) checkHealth(ctx context.Context) string {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if sp := sc.spawned; sp != nil {
		if exited := sp.exitedChan(); exited != nil {
			go func() {
				select {
				case <-exited:
					cancel()
				case <-cctx.Done():
				}
			}()
		}
	}
	resp, err := sc.health.Check(cctx, &healthpb.HealthCheckRequest{Service: serviceName}, grpc.WaitForReady(true))
	if err != nil {
		return err.Error()
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return "health status " + resp.GetStatus().String()
	}
	return ""
}

// gen is the connection's generation, to pass to recover.
func (sc *sidecar) gen() uint64 {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.generation
}

// recover waits until the sidecar serves again, restarting it when this process
// spawned it and it died; a no-op when another caller recovered since seen.
func (sc *sidecar) recover(ctx context.Context, seen uint64) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.generation != seen {
		return nil
	}
	if sc.conn.GetState() == connectivity.Shutdown {
		return status.Error(codes.FailedPrecondition, "the connection to the sidecar was closed by runcore.Close; call Close only after Finish")
	}
	for {
		if sp := sc.spawned; sp != nil && !sp.alive() {
			if _, err := sp.start(ctx); err != nil {
				return err
			}
			sc.conn.ResetConnectBackoff()
		}
		err := sc.waitHealthy(ctx)
		if err == nil {
			break
		}
		// A spawned sidecar seen alive just before it was reaped: start it again.
		if !errors.Is(err, errExited) || ctx.Err() != nil {
			return err
		}
	}
	sc.generation++
	return nil
}

func (sc *sidecar) close() error {
	err := sc.conn.Close()
	if sc.spawned != nil {
		sc.spawned.stop()
	}
	return err
}

// spawned is a sidecar process this client started, and how to start it again.
type spawned struct {
	binary   string
	dir      string // private temp dir (0700): socket, port file, log
	portFile string
	logPath  string
	args     []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd exits
}

// spawn starts `runcore serve` on a unix socket in a private temp dir, with
// --port-file and --parent-pid, and waits until it is healthy.
func spawn(ctx context.Context, binary, origin, dataDir string, extra []grpc.DialOption) (*sidecar, error) {
	dir, err := os.MkdirTemp("", "runcore-") // mode 0700: only this user
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoSidecar, err)
	}
	listen := "tcp://127.0.0.1:0"
	if sock := filepath.Join(dir, "sidecar.sock"); len(sock) <= maxSocketPath {
		listen = "unix://" + sock
	}
	sp := &spawned{
		binary:   binary,
		dir:      dir,
		portFile: filepath.Join(dir, "address"),
		logPath:  filepath.Join(dir, "sidecar.log"),
	}
	// Every process of a job spawns its own sidecar on the same data dir (one run
	// per process, grouped): they share it, each run open in one of them.
	sp.args = []string{"serve", "--listen", listen, "--port-file", sp.portFile,
		"--data-dir", dataDir, "--parent-pid", fmt.Sprint(os.Getpid()), "--shared-data-dir"}
	address, err := sp.start(ctx)
	if err != nil {
		sp.stop()
		return nil, fmt.Errorf("%w: %v", ErrNoSidecar, err)
	}
	if strings.HasPrefix(listen, "tcp:") {
		// A restart must come back on the same address: keep the port it got.
		sp.args[2] = address
	}
	sc, err := dial(address, "spawned from "+origin+", data dir "+dataDir, sp, extra)
	if err != nil {
		sp.stop()
		return nil, err
	}
	if err := sc.waitHealthy(ctx); err != nil {
		sc.close()
		return nil, fmt.Errorf("%w: %v", ErrNoSidecar, err)
	}
	return sc, nil
}

// start starts the process and waits for its port file; returns the address.
func (sp *spawned) start(ctx context.Context) (string, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	_ = os.Remove(sp.portFile)
	logFile, err := os.OpenFile(sp.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(sp.binary, sp.args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = detached()
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		return "", fmt.Errorf("could not start the runcore sidecar %s: %v", sp.binary, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	sp.cmd, sp.exited = cmd, exited
	what := sp.binary + " " + strings.Join(sp.args, " ")
	for {
		// The sidecar writes the file atomically once it is listening.
		if b, err := os.ReadFile(sp.portFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b)), nil
		}
		select {
		case <-exited:
			return "", fmt.Errorf("the runcore sidecar (%s) exited with %v before it was listening; its log %s ends with:\n%s",
				what, cmd.ProcessState, sp.logPath, logTail(sp.logPath))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return "", fmt.Errorf("the runcore sidecar (%s) did not write its address to %s in time; its log %s ends with:\n%s",
				what, sp.portFile, sp.logPath, logTail(sp.logPath))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func exitedOr(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// exitedChan is closed when the current process exits (nil before a start).
func (sp *spawned) exitedChan() chan struct{} {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.exited
}

func (sp *spawned) alive() bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.exited != nil && !exitedOr(sp.exited)
}

// stop sends SIGTERM, waits up to stopGrace (then kills), and removes the temp dir.
func (sp *spawned) stop() {
	sp.mu.Lock()
	cmd, exited := sp.cmd, sp.exited
	sp.mu.Unlock()
	if cmd != nil && !exitedOr(exited) {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(stopGrace):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	_ = os.RemoveAll(sp.dir)
}

// logTail is the end of a spawned sidecar's log, for error messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const limit = 2000
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return strings.TrimSpace(string(b))
}
