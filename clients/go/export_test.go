package runcore

import "google.golang.org/grpc/codes"

// SidecarPID is the pid of the sidecar this process spawned for r, or 0 when r logs
// to a sidecar it did not spawn (for tests that kill it).
func SidecarPID(r *Run) int {
	sp := r.sc.spawned
	if sp == nil {
		return 0
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.cmd == nil || sp.cmd.Process == nil {
		return 0
	}
	return sp.cmd.Process.Pid
}

// SpawnDir is the private temp dir of r's spawned sidecar ("" when not spawned).
func SpawnDir(r *Run) string {
	if r.sc.spawned == nil {
		return ""
	}
	return r.sc.spawned.dir
}

// StepMirror drives the client's mirror of the step rules (Run.advance, what Step
// reports) without a sidecar, for the shared vectors.
type StepMirror struct{ r Run }

// Log applies one Log call; false when the row is at a smaller step (dropped).
func (m *StepMirror) Log(hasData bool, step *int64, commit *bool) bool {
	return m.r.advance(hasData, step, commit)
}

// Finish applies Finish, which commits the pending row.
func (m *StepMirror) Finish() { m.r.commitPending() }

// Step is what Run.Step would say.
func (m *StepMirror) Step() int64 { return m.r.step }

// Classify is the contract's action (its name) for a call of kind "init", "unary",
// "stream" or "api" that ended with code.
func Classify(code codes.Code, kind string) string {
	k := map[string]callKind{"init": kindInit, "unary": kindUnary, "stream": kindStream, "api": kindAPI}[kind]
	return string(classify(code, k))
}

// Contract constants, checked against tests/vectors/status_contract.json.
const (
	RetryLimitedAttempts    = retryLimitedAttempts
	DefaultReconnectTimeout = defaultReconnectTimeout
)

// Actions are the contract's action names.
var Actions = []string{string(actNone), string(actRetry), string(actRetryLimited), string(actReinit),
	string(actEnded), string(actDropBatch), string(actFail), string(actStop)}
