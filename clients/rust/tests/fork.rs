//! The crate's runtime survives fork: a child process (the Python client forks
//! with the native core loaded) makes calls on a runtime of its own, never on the
//! parent's, whose threads it does not have.

// Polling a child process for its exit is what a test of fork has to do.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use runcore_client::{Code, Connection};

const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const PATIENCE: Duration = Duration::from_secs(30);

/// A unix socket nobody listens on: a call there goes through the runtime (its
/// channel worker, the socket connect, the timer) and ends UNAVAILABLE.
fn absent_socket() -> String {
    let dir = std::env::temp_dir();
    format!(
        "unix://{}/runcore-fork-{}.sock",
        dir.display(),
        std::process::id()
    )
}

fn unavailable_there(address: &str) -> bool {
    let answer = Connection::new(address, None)
        .and_then(|c| c.health("runcore.v1.RunService", CALL_TIMEOUT));
    matches!(answer, Err(status) if status.code == Code::Unavailable)
}

#[test]
fn a_forked_child_makes_calls_on_a_runtime_of_its_own() {
    let address = absent_socket();
    // The parent's runtime exists and works before the fork.
    assert!(unavailable_there(&address));

    // SAFETY: the child only makes a new connection and calls on it, then leaves
    // with _exit (no unwinding, no atexit handlers of the test harness).
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        let code = if unavailable_there(&address) { 0 } else { 1 };
        // SAFETY: ends the child at once, as a forked child of a threaded process must.
        unsafe { libc::_exit(code) };
    }

    let deadline = Instant::now() + PATIENCE;
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child, status written into a local.
        let done = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if done == child {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: our own child.
            unsafe { libc::kill(child, libc::SIGKILL) };
            panic!("the forked child hung: it must not wait on the parent's runtime");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child's call failed (status {status})"
    );
    // The parent's runtime still works after the fork.
    assert!(unavailable_there(&address));
}
