package runcore

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
