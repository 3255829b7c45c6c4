//! `runcore wandb-env` (the WANDB_SERVICE value for a sidecar's W&B listener) and
//! `runcore exec -- CMD...` (run any wandb or runcore script against a sidecar:
//! an existing one, or a private one started for the command).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use super::CliError;
use crate::config::ListenAddr;
use crate::wandb_service::{service_token, ENV_SERVICE};

/// How long a started sidecar may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection check may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the private sidecar may take to stop after the command ended.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

/// Where the W&B listener is: an address, or a sidecar's --wandb-port-file.
pub fn wandb_address(
    listen: Option<&str>,
    port_file: Option<&Path>,
) -> Result<ListenAddr, CliError> {
    let text = match (listen, port_file) {
        (Some(a), _) if !a.is_empty() => a.to_owned(),
        (_, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| CliError::Usage(format!("--port-file {}: {e}", f.display())))?
            .trim()
            .to_owned(),
        _ => {
            return Err(CliError::Usage(
                "name the sidecar's W&B listener: --wandb-listen ADDR (or RUNCORE_WANDB_LISTEN), or --port-file FILE (its --wandb-port-file)".into(),
            ))
        }
    };
    text.parse().map_err(CliError::Address)
}

/// Whether something accepts connections at `addr`.
async fn reachable(addr: &ListenAddr) -> bool {
    let connect = async {
        match addr {
            ListenAddr::Unix(p) => tokio::net::UnixStream::connect(p).await.is_ok(),
            ListenAddr::Tcp(a) => tokio::net::TcpStream::connect(a).await.is_ok(),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .unwrap_or(false)
}

/// `runcore wandb-env`: prints the WANDB_SERVICE value (or, with `export`, the
/// shell line) for a running sidecar's W&B listener.
pub async fn wandb_env(
    listen: Option<&str>,
    port_file: Option<&Path>,
    export: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let addr = wandb_address(listen, port_file)?;
    if !reachable(&addr).await {
        return Err(CliError::Usage(format!(
            "nothing accepts connections at {addr}; start the sidecar with `runcore serve --wandb-listen {addr}`"
        )));
    }
    let token = service_token(&addr, std::os::unix::process::parent_id());
    if export {
        writeln!(out, "export {ENV_SERVICE}='{token}'")?;
    } else {
        writeln!(out, "{token}")?;
    }
    Ok(())
}

/// What `runcore exec` runs the command against.
pub struct ExecArgs {
    /// An existing sidecar's gRPC address (RUNCORE_ADDRESS)...
    pub address: Option<String>,
    /// ...and its W&B listener: both reachable means that sidecar is used.
    pub wandb_listen: Option<String>,
    /// The data dir of a sidecar started for the command.
    pub data_dir: PathBuf,
    pub command: Vec<String>,
}

/// A sidecar started for one command, in its own directory of sockets.
struct Private {
    child: tokio::process::Child,
    dir: PathBuf,
}

impl Private {
    async fn start(data_dir: &Path) -> Result<(Private, String, ListenAddr), CliError> {
        let dir = std::env::temp_dir().join(format!(
            "runcore-exec-{}-{}",
            std::process::id(),
            crate::runs::random_id()
        ));
        std::fs::create_dir_all(&dir)?;
        let grpc = format!("unix://{}", dir.join("runcore.sock").display());
        let wandb = format!("unix://{}", dir.join("wandb.sock").display());
        let port_file = dir.join("wandb.addr");
        let exe = std::env::current_exe()?;
        let mut command = tokio::process::Command::new(exe);
        command
            .args(["serve", "--listen", &grpc, "--wandb-listen", &wandb])
            .arg("--wandb-port-file")
            .arg(&port_file)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .stdin(std::process::Stdio::null());
        // Quiet unless asked: its lines would mix with the command's.
        if std::env::var_os(crate::env::ENV_LOG).is_none() {
            command.env(crate::env::ENV_LOG, "warn");
        }
        let child = command.spawn()?;
        let mut private = Private { child, dir };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while !port_file.exists() {
            if let Some(status) = private.child.try_wait()? {
                private.cleanup();
                return Err(CliError::Usage(format!(
                    "the sidecar exited ({status}) before it listened; see its messages above"
                )));
            }
            if tokio::time::Instant::now() > deadline {
                private.stop().await;
                return Err(CliError::Usage(format!(
                    "the sidecar did not listen within {} s",
                    START_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let addr: ListenAddr = wandb.parse().map_err(CliError::Address)?;
        Ok((private, grpc, addr))
    }

    /// SIGTERM, then waits for the sidecar to flush and exit.
    async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
        self.cleanup();
    }

    fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `runcore exec -- CMD...`: runs the command with WANDB_SERVICE and
/// RUNCORE_ADDRESS pointing at a sidecar (the given one if both its addresses
/// answer, else a private one that stops after the command), and returns the
/// command's exit code (128 + signal for a signal).
pub async fn exec(args: ExecArgs) -> Result<u8, CliError> {
    let (program, rest) = args.command.split_first().ok_or_else(|| {
        CliError::Usage("exec needs a command: runcore exec -- python train.py".into())
    })?;
    let existing = match (&args.address, &args.wandb_listen) {
        (Some(a), Some(w)) if !a.is_empty() && !w.is_empty() => {
            let grpc: ListenAddr = a.parse().map_err(CliError::Address)?;
            let wandb: ListenAddr = w.parse().map_err(CliError::Address)?;
            (reachable(&grpc).await && reachable(&wandb).await).then(|| (a.clone(), wandb))
        }
        _ => None,
    };
    let (mut private, grpc, wandb) = match existing {
        Some((grpc, wandb)) => (None, grpc, wandb),
        None => {
            let (p, grpc, wandb) = Private::start(&args.data_dir).await?;
            (Some(p), grpc, wandb)
        }
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest)
        .env(ENV_SERVICE, service_token(&wandb, std::process::id()))
        .env(super::ENV_ADDRESS, &grpc);
    // With WANDB_SERVICE the SDK needs no wandb-core; offline keeps it from asking
    // W&B's servers for a login (runcore forwards to W&B itself, --backend wandb).
    if std::env::var_os("WANDB_MODE").is_none() {
        cmd.env("WANDB_MODE", "offline");
    }
    let status = match cmd.spawn() {
        Ok(mut child) => child.wait().await,
        Err(e) => Err(e),
    };
    if let Some(p) = private.as_mut() {
        p.stop().await;
    }
    let status = status.map_err(|e| CliError::Usage(format!("{program}: {e}")))?;
    Ok(exit_code(status))
}

/// The code a shell would report for the command's end.
fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c.clamp(0, 255) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        _ => 1,
    }
}
