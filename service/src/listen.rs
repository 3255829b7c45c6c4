//! The sidecar's listeners: a TCP address, or a unix socket bound so that no
//! other user can ever connect (see [`Listener::bind`]). A leaf: the gRPC server
//! and the W&B listener both take a bound [`Listener`].

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener, UnixStream};

use crate::config::ListenAddr;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("another process is listening on {0}; stop it or choose another --listen path")]
    SocketInUse(PathBuf),
    #[error(
        "--listen {0}: the path exists and is not a socket; it is left alone: choose another path"
    )]
    NotASocket(PathBuf),
}

/// A bound listener.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds an address. A unix socket is created with mode 0600 (only this user
    /// can connect), or 0660 with `group`; a stale socket file left by a dead
    /// sidecar is replaced.
    pub async fn bind(addr: &ListenAddr, group: Option<&str>) -> Result<Self, BindError> {
        let bind_err = |source| BindError::Bind {
            addr: addr.to_string(),
            source,
        };
        match addr {
            ListenAddr::Tcp(a) => Ok(Listener::Tcp(TcpListener::bind(a).await.map_err(bind_err)?)),
            ListenAddr::Unix(path) => {
                let listener = bind_unix(path, group).await?;
                Ok(Listener::Unix(listener, path.clone()))
            }
        }
    }

    /// The address clients reach, with the real port for `:0`.
    pub fn local_addr(&self) -> ListenAddr {
        match self {
            Listener::Tcp(l) => ListenAddr::Tcp(
                l.local_addr()
                    .unwrap_or_else(|_| ([127, 0, 0, 1], 0).into()),
            ),
            Listener::Unix(_, p) => ListenAddr::Unix(p.clone()),
        }
    }
}

/// Binds a unix socket at `path` with no moment at which another user could
/// connect: the socket is made in a private (0700) directory beside `path`, given
/// its mode (and group), then renamed into place. A stale socket left by a dead
/// sidecar is replaced; a path that is not a socket is refused, never removed.
async fn bind_unix(path: &Path, group: Option<&str>) -> Result<UnixListener, BindError> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
    let bind_err = |source| BindError::Bind {
        addr: format!("unix://{}", path.display()),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(BindError::SocketInUse(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(bind_err)?;
        }
        Ok(_) => return Err(BindError::NotASocket(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_err(e)),
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(bind_err)?;
    let private = parent.join(format!(
        ".rc{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(bind_err)?;
    let made = private.join("s");
    let bound = (|| {
        let listener = UnixListener::bind(&made)?;
        let mode = match group {
            Some(g) => {
                let gid = group_id(g).ok_or_else(|| {
                    io::Error::other(format!("--socket-group {g}: no such group"))
                })?;
                std::os::unix::fs::chown(&made, None, Some(gid))?;
                0o660
            }
            None => 0o600,
        };
        std::fs::set_permissions(&made, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&made, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&made);
    let _ = std::fs::remove_dir(&private);
    bound.map_err(bind_err)
}

/// A group's id, from a number or a name in /etc/group.
fn group_id(group: &str) -> Option<u32> {
    if let Ok(gid) = group.parse() {
        return Some(gid);
    }
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == group).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}
