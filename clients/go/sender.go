package runcore

// The background sender: Log puts rows on a bounded queue (a full queue blocks Log:
// rows are never dropped for lack of room); one goroutine per run packs them into
// LogBatch messages, at most Options.BatchRows rows or maxBatchBytes each and never
// holding a row longer than Options.BatchInterval, numbers each batch with the next
// seq and writes it to the run's LogStream. A goroutine per stream reads the LogAcks
// and retires batches. At most Options.MaxInFlight batches await an ack; while that
// many do, the sender stops taking rows from the queue, which is the backpressure
// Log feels.
//
// What a broken stream means is the client contract's (classify, kind stream).
// When the sidecar went away (UNAVAILABLE, ...), the run reconnects (see
// Run.reconnect) and every unacknowledged batch is sent again, in order, on a new
// stream: the sidecar acknowledges the seqs it already holds as duplicates without
// applying them again, so each row lands exactly once; after ReconnectTimeout
// without an ack the sender gives up. INTERNAL and UNKNOWN are retried at most
// retryLimitedAttempts times in a row. A batch the sidecar refuses
// (INVALID_ARGUMENT, RESOURCE_EXHAUSTED) is reported lost through the next Log,
// Flush or Finish, and the batches after it are resent. A run the sidecar does not
// know (NOT_FOUND) is Init-ed again and the batches resent; a run it ended
// (FAILED_PRECONDITION: crashed, killed, ...) is reported (ErrRunEnded), never
// resumed. That, UNAUTHENTICATED and the like, or a reconnect that gives up makes
// every held and later row fail with the error.
//
// Once the sender has given up (dead), nothing is built or sent any more: rows still
// being packed and every later row are counted lost, and every flush waiter is
// released at once, so Flush and Finish return instead of waiting for acks that
// cannot come.

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// row is one Log call, ready to be packed.
type row struct {
	keys   []string
	vals   []float64
	values map[string]*pb.Value
	// size approximates the encoded size of values.
	size   int
	step   *int64
	commit *bool
	ts     float64
}

// item is what the queue carries: a row, or a flush marker.
type item struct {
	row *row
	// flush, when set, is closed once every row queued before it is acknowledged
	// (or reported lost).
	flush chan struct{}
}

type batch struct {
	msg  *pb.LogBatch
	rows int
}

type waiter struct {
	seq uint64
	ch  chan struct{}
}

type logStream struct {
	call   pb.RunService_LogStreamClient
	cancel context.CancelFunc
	// broken receives the reader's final error (io.EOF when the sidecar ended the
	// stream cleanly).
	broken chan error
}

type sender struct {
	run         *Run
	queue       chan item
	interval    time.Duration
	batchRows   int
	maxInFlight int
	// kick wakes the loop after an ack (room in the window).
	kick chan struct{}
	// done is closed when the loop has ended: the queue was closed and every
	// batch is acknowledged or reported lost.
	done chan struct{}

	mu sync.Mutex
	// window holds the batches built and not yet acknowledged, in seq order.
	window []*batch
	// sent counts the batches of window written to the current stream.
	sent    int
	nextSeq uint64
	waiters []waiter
	errs    []error
	dead    *Error
	// failures counts the stream breaks since the last ack (for the backoff);
	// failingSince is when the first of them happened; limited counts those whose
	// action is retry_limited.
	failures     int
	failingSince time.Time
	limited      int

	// Owned by the loop goroutine.
	stream  *logStream
	builder builder
	timer   *time.Timer
}

func newSender(r *Run, firstSeq uint64) *sender {
	s := &sender{
		run:         r,
		queue:       make(chan item, r.opts.BufferRows),
		interval:    r.opts.BatchInterval,
		batchRows:   r.opts.BatchRows,
		maxInFlight: r.opts.MaxInFlight,
		kick:        make(chan struct{}, 1),
		done:        make(chan struct{}),
		nextSeq:     firstSeq,
		builder:     builder{index: make(map[string]uint32)},
		timer:       time.NewTimer(time.Hour),
	}
	s.timer.Stop()
	go s.loop()
	return s
}

func (s *sender) loop() {
	defer close(s.done)
	closing := false
	for {
		s.mu.Lock()
		idle := len(s.window) == 0
		full := len(s.window) >= s.maxInFlight
		s.mu.Unlock()
		if closing && idle && s.builder.n() == 0 {
			s.closeStream()
			return
		}
		var in chan item
		if !closing && !full {
			in = s.queue
		}
		var broken chan error
		if s.stream != nil {
			broken = s.stream.broken
		}
		select {
		case it, ok := <-in:
			switch {
			case !ok:
				closing = true
				s.seal()
			case it.flush != nil:
				s.seal()
				s.addWaiter(it.flush)
			default:
				s.add(it.row)
			}
		case <-s.timer.C:
			s.seal()
		case <-s.kick:
		case err := <-broken:
			s.onBroken(err)
		}
		s.pump()
	}
}

func (s *sender) add(r *row) {
	s.mu.Lock()
	dead := s.dead
	if dead != nil {
		dead.Lost++
	}
	s.mu.Unlock()
	if dead != nil {
		return
	}
	if s.builder.n() > 0 && s.builder.size+r.size > maxBatchBytes {
		s.seal()
	}
	s.builder.add(r)
	if s.builder.n() == 1 {
		s.timer.Reset(s.interval)
	}
	if s.builder.n() >= s.batchRows || s.builder.size >= maxBatchBytes {
		s.seal()
	}
}

// seal turns the rows being built into the next batch of the window (or, once the
// sender is dead, counts them lost: nothing would ever retire that batch).
func (s *sender) seal() {
	if s.builder.n() == 0 {
		return
	}
	s.timer.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead != nil {
		s.dead.Lost += s.builder.n()
		s.builder.reset()
		return
	}
	msg := &pb.LogBatch{RunId: s.run.id, Seq: s.nextSeq, Keys: s.builder.keys, Rows: s.builder.rows, WriterId: s.run.opts.WriterID}
	s.nextSeq++
	s.window = append(s.window, &batch{msg: msg, rows: len(msg.Rows)})
	s.builder.reset()
}

func (s *sender) addWaiter(ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiters = append(s.waiters, waiter{seq: s.nextSeq - 1, ch: ch})
	s.notifyLocked()
}

// notifyLocked releases the flush waiters whose batches are all retired (all of
// them once the sender is dead).
func (s *sender) notifyLocked() {
	kept := s.waiters[:0]
	for _, w := range s.waiters {
		if s.dead != nil || len(s.window) == 0 || s.window[0].msg.Seq > w.seq {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(s.waiters[len(kept):])
	s.waiters = kept
}

// retireLocked removes the first n batches of the window.
func (s *sender) retireLocked(n int) {
	clear(s.window[:n])
	s.window = s.window[n:]
	s.sent = max(0, s.sent-n)
	s.notifyLocked()
}

// pump writes the batches not yet written to the current stream, opening one if
// there is none.
func (s *sender) pump() {
	for {
		s.mu.Lock()
		if s.dead != nil || s.sent >= len(s.window) {
			s.mu.Unlock()
			return
		}
		if s.stream == nil {
			s.mu.Unlock()
			s.open()
			continue
		}
		if s.stream.call == nil {
			// Not opened: the loop handles its error first.
			s.mu.Unlock()
			return
		}
		b := s.window[s.sent]
		s.sent++
		s.mu.Unlock()
		if err := s.stream.call.Send(b.msg); err != nil {
			// The stream is broken; its reader reports why, and the loop resends.
			return
		}
	}
}

func (s *sender) open() {
	ctx, cancel := context.WithCancel(context.Background())
	st := &logStream{cancel: cancel, broken: make(chan error, 1)}
	s.mu.Lock()
	s.sent = 0
	s.mu.Unlock()
	call, err := s.run.sc.client.LogStream(ctx)
	s.stream = st
	if err != nil {
		st.broken <- err
		return
	}
	st.call = call
	go s.readAcks(st)
}

func (s *sender) readAcks(st *logStream) {
	for {
		ack, err := st.call.Recv()
		if err != nil {
			st.broken <- err
			return
		}
		// Report drops before the batch is retired: a Flush that returns has seen
		// them.
		for _, d := range ack.GetDropped() {
			s.run.onDropped(d)
		}
		s.mu.Lock()
		n := 0
		for n < len(s.window) && s.window[n].msg.Seq <= ack.GetSeq() {
			n++
		}
		s.retireLocked(n)
		s.failures, s.failingSince, s.limited = 0, time.Time{}, 0
		s.mu.Unlock()
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// onBroken handles the end of a stream as the client contract says: the sidecar
// refused a batch, does not know or has ended the run, refused the client, failed
// inside, or went away.
func (s *sender) onBroken(err error) {
	if s.stream != nil {
		s.stream.cancel()
		s.stream = nil
	}
	s.mu.Lock()
	s.sent = 0
	pending := len(s.window)
	s.mu.Unlock()
	if errors.Is(err, io.EOF) {
		if pending == 0 {
			return
		}
		err = status.Error(codes.Unavailable, "the sidecar ended the log stream before acknowledging every batch")
	}
	code := status.Code(err)
	act := classify(code, kindStream)
	switch act {
	case actDropBatch:
		// The oldest unacknowledged batch is the one refused: acks of the batches
		// before it come first. Nothing of it was applied.
		s.mu.Lock()
		if len(s.window) > 0 {
			s.errs = append(s.errs, &Error{Op: "Log", RunID: s.run.id, Lost: s.window[0].rows, Err: err})
			s.retireLocked(1)
		}
		s.mu.Unlock()
		return
	case actReinit, actEnded:
		// Ask the sidecar about the run: one it does not know is Init-ed again (and
		// the batches resent); one it ended is reported, never resumed.
		ctx, cancel := context.WithTimeout(context.Background(), s.run.opts.ReconnectTimeout)
		aerr := s.run.attach(ctx, true)
		cancel()
		switch {
		case errors.Is(aerr, ErrRunEnded):
			s.die(aerr)
			return
		case aerr == nil && act == actReinit:
			return // the next pump opens a stream and resends
		case aerr == nil:
			s.die(err) // the run is open: the precondition was something else
			return
		}
		// The sidecar could not be asked: reconnect first (below).
	case actRetry:
	case actRetryLimited:
		s.mu.Lock()
		s.limited++
		limited := s.limited
		s.mu.Unlock()
		if limited >= retryLimitedAttempts {
			s.die(status.Errorf(code, "the log stream failed %d times in a row: %s", limited, status.Convert(err).Message()))
			return
		}
	default: // actStop
		s.die(err)
		return
	}
	s.mu.Lock()
	s.failures++
	if s.failingSince.IsZero() {
		s.failingSince = time.Now()
	}
	failures, since := s.failures, s.failingSince
	s.mu.Unlock()
	if failing := time.Since(since); failing > s.run.opts.ReconnectTimeout {
		s.die(status.Errorf(codes.Unavailable, "the log stream kept failing for %s without an acknowledgement; last: %s: %s",
			failing.Round(time.Millisecond), code, status.Convert(err).Message()))
		return
	}
	if failures > 1 {
		time.Sleep(min(time.Duration(failures)*50*time.Millisecond, time.Second))
	}
	if rerr := s.run.reconnect(context.Background(), err); rerr != nil {
		s.die(rerr)
	}
}

// die makes every batch held, every row being packed, and every later row fail
// with err, and releases every flush waiter.
func (s *sender) die(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lost := s.builder.n()
	s.builder.reset()
	s.timer.Stop()
	for _, b := range s.window {
		lost += b.rows
	}
	dead := &Error{Op: "Log", RunID: s.run.id, Lost: lost, Err: err}
	var ended *Error
	if errors.As(err, &ended) && ended.State != StateUnknown {
		dead.State, dead.Err = ended.State, ended.Err
	}
	s.dead = dead
	s.retireLocked(len(s.window))
}

// closeStream half-closes the stream and waits briefly for the sidecar to end it.
func (s *sender) closeStream() {
	st := s.stream
	if st == nil {
		return
	}
	s.stream = nil
	if st.call != nil && st.call.CloseSend() == nil {
		select {
		case <-st.broken:
		case <-time.After(5 * time.Second):
		}
	}
	st.cancel()
}

// put queues a row; it blocks while the queue is full.
func (s *sender) put(r *row) {
	s.queue <- item{row: r}
}

// takeErrs returns (and forgets) the errors of refused batches, and the error
// that ended the sender, if any (that one stays).
func (s *sender) takeErrs() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := s.errs
	s.errs = nil
	if s.dead != nil {
		dead := *s.dead // a copy: the loop goes on counting lost rows in s.dead
		errs = append(errs, &dead)
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

// deadErr is the error that ended the sender, or nil.
func (s *sender) deadErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead == nil {
		return nil
	}
	dead := *s.dead
	return &dead
}

// builder packs rows into one batch: a key table and the rows.
type builder struct {
	keys  []string
	index map[string]uint32
	rows  []*pb.Row
	size  int
}

func (b *builder) n() int { return len(b.rows) }

func (b *builder) add(r *row) {
	pr := &pb.Row{ScalarValues: r.vals, Values: r.values, Step: r.step, Commit: r.commit, Timestamp: r.ts}
	if len(r.keys) > 0 {
		idx := make([]uint32, len(r.keys))
		for i, k := range r.keys {
			j, ok := b.index[k]
			if !ok {
				j = uint32(len(b.keys))
				b.keys = append(b.keys, k)
				b.index[k] = j
				b.size += len(k) + 3
			}
			idx[i] = j
		}
		pr.ScalarKeys = idx
	}
	b.rows = append(b.rows, pr)
	b.size += r.size + 11*len(r.vals) + 24
}

func (b *builder) reset() {
	b.keys = nil
	b.rows = nil
	clear(b.index)
	b.size = 0
}
