package runcore

import (
	"math"
	"time"

	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// State is a run's state.
type State string

// Run states. An open run (running, preempting) ends in exactly one of the others.
const (
	StateUnknown    State = ""
	StateRunning    State = "running"
	StateFinished   State = "finished"
	StateFailed     State = "failed"
	StateCrashed    State = "crashed"
	StateKilled     State = "killed"
	StatePreempting State = "preempting"
	StatePreempted  State = "preempted"
)

func stateOf(s pb.RunState) State {
	switch s {
	case pb.RunState_RUN_STATE_RUNNING:
		return StateRunning
	case pb.RunState_RUN_STATE_FINISHED:
		return StateFinished
	case pb.RunState_RUN_STATE_FAILED:
		return StateFailed
	case pb.RunState_RUN_STATE_CRASHED:
		return StateCrashed
	case pb.RunState_RUN_STATE_KILLED:
		return StateKilled
	case pb.RunState_RUN_STATE_PREEMPTING:
		return StatePreempting
	case pb.RunState_RUN_STATE_PREEMPTED:
		return StatePreempted
	}
	return StateUnknown
}

// Open reports whether a run in this state still takes logs.
func (s State) Open() bool { return s == StateRunning || s == StatePreempting }

// RunInfo describes a run as the sidecar last reported it.
type RunInfo struct {
	ID      string
	Name    string
	Entity  string
	Project string
	Group   string
	JobType string
	Tags    []string
	Notes   string
	State   State
	// Path is entity/project/id (project/id without an entity).
	Path string
	// Dir is the run's files directory on the sidecar's host (W&B's run.dir).
	Dir       string
	StartTime time.Time
	// EndTime is zero while the run is open.
	EndTime time.Time
	// ExitCode is set once the run has ended.
	ExitCode *int
	// Step is the step the next committed row gets.
	Step int64
	// HistoryRows counts the committed history rows.
	HistoryRows int64
	// LastHeartbeat is when the sidecar last recorded a heartbeat for the run.
	LastHeartbeat time.Time
	Resumed       bool
	// ClientTimeout is how long the run may show no sign of life.
	ClientTimeout time.Duration
	// StopRequested: an operator asked the run to stop (runcore runs stop).
	StopRequested bool
}

func infoOf(p *pb.RunInfo) RunInfo {
	info := RunInfo{
		ID:            p.GetId(),
		Name:          p.GetName(),
		Entity:        p.GetEntity(),
		Project:       p.GetProject(),
		Group:         p.GetGroup(),
		JobType:       p.GetJobType(),
		Tags:          p.GetTags(),
		Notes:         p.GetNotes(),
		State:         stateOf(p.GetState()),
		Path:          p.GetPath(),
		Dir:           p.GetDir(),
		StartTime:     unixTime(p.GetStartTime()),
		EndTime:       unixTime(p.GetEndTime()),
		Step:          p.GetStep(),
		HistoryRows:   p.GetHistoryRows(),
		LastHeartbeat: unixTime(p.GetLastHeartbeat()),
		Resumed:       p.GetResumed(),
		ClientTimeout: seconds(p.GetClientTimeout()),
		StopRequested: p.GetStopRequested(),
	}
	if p.ExitCode != nil {
		code := int(p.GetExitCode())
		info.ExitCode = &code
	}
	return info
}

func unixTime(s float64) time.Time {
	if s <= 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return time.Time{}
	}
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(frac*1e9))
}

func seconds(s float64) time.Duration {
	if math.IsNaN(s) || s <= 0 {
		return 0
	}
	if s > math.MaxInt64/1e9 {
		return math.MaxInt64
	}
	return time.Duration(s * float64(time.Second))
}

// FinishResult is what Finish returns: the ended run and its final summary.
type FinishResult struct {
	Run     RunInfo
	Summary map[string]any
	// Backends says how far each remote backend has received the run: Finish
	// waits for them at most the sidecar's --finish-timeout, and what is pending
	// then is still delivered later. Empty with only the local store.
	Backends []BackendStatus
	// Writer is how this process's writer ended: the run's state, or, in a shared
	// run whose end this writer does not decide, its own (the run goes on).
	Writer State
}

// BackendStatus is how far a remote backend (W&B, MLflow) has received a run.
type BackendStatus struct {
	Backend string
	// PendingRecords and PendingBytes are not yet acknowledged by the backend.
	PendingRecords uint64
	PendingBytes   uint64
	// LastError is the last delivery error, empty after a success.
	LastError   string
	LastSuccess time.Time
}

func backendsOf(bs []*pb.BackendStatus) []BackendStatus {
	var out []BackendStatus
	for _, b := range bs {
		out = append(out, BackendStatus{
			Backend:        b.GetBackend(),
			PendingRecords: b.GetPendingRecords(),
			PendingBytes:   b.GetPendingBytes(),
			LastError:      b.GetLastError(),
			LastSuccess:    unixTime(b.GetLastSuccess()),
		})
	}
	return out
}

// MetricDefinition is a metric's definition as the sidecar holds it after
// DefineMetric (merged with earlier ones when WithOverwrite(false)).
type MetricDefinition struct {
	Name       string
	StepMetric string
	StepSync   bool
	Hidden     bool
	Summary    []string
	Goal       string
}

// AlertResult says what became of an alert.
type AlertResult struct {
	Sent bool
	// Throttled: an alert with the same title was sent less than its wait
	// duration ago; it is sent again after ThrottledUntil.
	Throttled      bool
	ThrottledUntil time.Time
}
