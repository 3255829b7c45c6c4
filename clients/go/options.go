package runcore

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"google.golang.org/grpc"

	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// Resume says what Init does with a run id that exists (W&B's resume argument).
type Resume string

// Resume modes.
const (
	// ResumeNever (the default, also "") refuses an existing id: ALREADY_EXISTS.
	ResumeNever Resume = "never"
	// ResumeAllow continues the run if it exists, else creates it.
	ResumeAllow Resume = "allow"
	// ResumeMust continues the run; NOT_FOUND if it does not exist.
	ResumeMust Resume = "must"
)

// Options of a run (Init), and of the client that sends it. Every field is optional.
type Options struct {
	// Project; the sidecar's default is "uncategorized".
	Project string
	// Name is the display name; generated (adjective-noun-N) when empty.
	Name string
	// ID is 1..64 characters of [A-Za-z0-9_-]; generated (8 of [a-z0-9]) when empty.
	ID      string
	Entity  string
	Group   string
	JobType string
	Tags    []string
	Notes   string
	// Config is the run config: values as Log takes them, nested maps included.
	Config map[string]any
	// Resume: what to do when ID exists ("" is ResumeNever).
	Resume Resume

	// Address of a running sidecar (unix:///path/to.sock or tcp://127.0.0.1:PORT);
	// else $RUNCORE_ADDRESS; else this process spawns a private one (see Binary).
	Address string
	// AuthToken is the bearer token of a sidecar started with --auth-token; else
	// $RUNCORE_AUTH_TOKEN. Sent as `authorization: Bearer <token>` on every call.
	AuthToken string
	// Binary is the runcore binary to spawn; else $RUNCORE_BIN; else runcore on PATH.
	Binary string
	// DataDir of a spawned sidecar; else $RUNCORE_DATA_DIR; else ./runcore-data.
	DataDir string
	// WorkingDir is where relative Save globs and Media paths resolve (on the
	// sidecar's host); the process's working directory when empty.
	WorkingDir string
	// InitTimeout bounds finding or spawning the sidecar and waiting for it to
	// be healthy (30 s when 0); Init's ctx bounds the whole call.
	InitTimeout time.Duration

	// ClientTimeout is how long the run may show no sign of life before the sidecar
	// marks it crashed; the sidecar's --client-timeout (60 s) when 0.
	ClientTimeout time.Duration
	// HeartbeatInterval between the client's heartbeats; a quarter of the client
	// timeout, at most 15 s, when 0.
	HeartbeatInterval time.Duration
	// SystemMetrics asks the sidecar how to sample system metrics for the run.
	SystemMetrics *SystemMetrics

	// Shared joins a run that other processes write too (W&B's
	// settings.mode="shared"): each process has its own step counter, rows of one
	// step merge into one history row, and a second process may join. Without it,
	// Init of a run another live process has open fails (FAILED_PRECONDITION).
	Shared bool
	// Label names this process among the run's writers (W&B's x_label, e.g.
	// "rank-3"); its system metrics are keyed "system.<key>/l:<label>".
	Label string
	// Primary (W&B's x_primary; true when nil): this process's Finish, or its
	// death, ends the run for every writer.
	Primary *bool
	// UpdateFinishState (W&B's x_update_finish_state; true when nil): this
	// process's Finish sets the run's final state. With Primary and
	// UpdateFinishState both false, Finish ends only this writer.
	UpdateFinishState *bool
	// WriterID names this process as a writer of the run (its batch numbers,
	// liveness and system metrics are its own); random when empty. The same id
	// again resumes the same writer.
	WriterID string

	// BatchRows is the most rows per LogStream batch (1024 when 0).
	BatchRows int
	// BatchInterval is the longest a logged row waits before it is sent (20 ms when 0).
	BatchInterval time.Duration
	// BufferRows is how many rows Log may queue before it blocks until the sidecar
	// has caught up (16384 when 0). Log never drops rows for lack of room.
	BufferRows int
	// MaxInFlight is how many batches may await their acknowledgement (32 when 0).
	MaxInFlight int
	// ReconnectTimeout is how long the client keeps trying to reach a sidecar
	// that went away (restarting one it spawned) before it gives up on the rows
	// it holds and reports them lost (2 minutes when 0).
	ReconnectTimeout time.Duration

	// OnDropped is called (from a background goroutine) for each row the sidecar
	// did not apply, such as a row with a step smaller than the run's current
	// step. When nil, the first one per run is logged with log/slog.
	OnDropped func(DroppedRow)
	// DialOptions are added to the client's gRPC dial options.
	DialOptions []grpc.DialOption
}

// SystemMetrics are the sidecar's system-metrics settings for a run.
type SystemMetrics struct {
	// Interval between samples; the sidecar's default is 15 s, the least 0.1 s.
	Interval time.Duration
	Disabled bool
	// PerCPU also samples each CPU's utilisation.
	PerCPU bool
	// DiskPaths to report usage of; the sidecar's default is "/".
	DiskPaths []string
}

// DroppedRow is a logged row the sidecar did not apply, and why.
type DroppedRow struct {
	// Step the row asked for.
	Step int64
	// CurrentStep is the run's step when the row arrived.
	CurrentStep int64
	Reason      string
}

const (
	defaultInitTimeout      = 30 * time.Second
	defaultBatchRows        = 1024
	defaultBatchInterval    = 20 * time.Millisecond
	defaultBufferRows       = 16384
	defaultMaxInFlight      = 32
	defaultReconnectTimeout = 2 * time.Minute
	maxHeartbeatInterval    = 15 * time.Second
	minHeartbeatInterval    = 50 * time.Millisecond
	// maxBatchBytes bounds a batch's size; the sidecar's default limit is 16 MiB.
	maxBatchBytes = 4 << 20
)

func (o *Options) withDefaults() {
	if o.WriterID == "" {
		o.WriterID = randomWriterID()
	}
	if o.InitTimeout <= 0 {
		o.InitTimeout = defaultInitTimeout
	}
	if o.BatchRows <= 0 {
		o.BatchRows = defaultBatchRows
	}
	if o.BatchInterval <= 0 {
		o.BatchInterval = defaultBatchInterval
	}
	if o.BufferRows <= 0 {
		o.BufferRows = defaultBufferRows
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = defaultMaxInFlight
	}
	if o.ReconnectTimeout <= 0 {
		o.ReconnectTimeout = defaultReconnectTimeout
	}
}

// heartbeatInterval is the interval for a run whose client timeout is timeout.
func (o *Options) heartbeatInterval(timeout time.Duration) time.Duration {
	if o.HeartbeatInterval > 0 {
		return o.HeartbeatInterval
	}
	return min(max(timeout/4, minHeartbeatInterval), maxHeartbeatInterval)
}

func (r Resume) proto() (pb.Resume, bool) {
	switch r {
	case "", ResumeNever:
		return pb.Resume_RESUME_NEVER, true
	case ResumeAllow:
		return pb.Resume_RESUME_ALLOW, true
	case ResumeMust:
		return pb.Resume_RESUME_MUST, true
	}
	return pb.Resume_RESUME_UNSPECIFIED, false
}

// randomWriterID is 16 random bytes in hex: unique to this process's run object.
func randomWriterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writerSettings is how this process takes part in the run.
func (o *Options) writerSettings() *pb.WriterSettings {
	return &pb.WriterSettings{
		Shared:            o.Shared,
		Label:             o.Label,
		Primary:           o.Primary,
		UpdateFinishState: o.UpdateFinishState,
	}
}
