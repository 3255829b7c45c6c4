//! `runcore ui` settings, and the listen-address rule shared with
//! `runcore serve --ui-listen`: loopback by default; any other address only with
//! an auth token, as for the gRPC listener.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::env::{
    Secret, DEFAULT_DATA_DIR, DEFAULT_UI_LISTEN, ENV_AUTH_TOKEN, ENV_DATA_DIR, ENV_UI_LISTEN,
    MIN_TOKEN,
};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UiConfigError {
    #[error("{flag} {given:?} is not http://IP:PORT (port 0 picks a free one)")]
    Listen { flag: &'static str, given: String },
    #[error("{flag} {addr} is reachable from other machines: set --auth-token (or {ENV_AUTH_TOKEN}) so that only people with the token get in, or listen on 127.0.0.1")]
    NotLoopback {
        flag: &'static str,
        addr: SocketAddr,
    },
    #[error("--auth-token must be at least {MIN_TOKEN} characters (e.g. `openssl rand -hex 32`)")]
    ShortToken,
}

/// Parses a UI address (`http://IP:PORT`, `IP:PORT`, `localhost:PORT`) and applies
/// the token rule. `flag` names the setting in messages.
pub fn parse_listen(
    flag: &'static str,
    given: &str,
    token: Option<&Secret>,
) -> Result<SocketAddr, UiConfigError> {
    let bad = || UiConfigError::Listen {
        flag,
        given: given.to_owned(),
    };
    let hostport = given.strip_prefix("http://").unwrap_or(given);
    let hostport = hostport.strip_suffix('/').unwrap_or(hostport);
    let hostport = match hostport.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => hostport.to_owned(),
    };
    let addr: SocketAddr = hostport.parse().map_err(|_| bad())?;
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(UiConfigError::NotLoopback { flag, addr });
    }
    Ok(addr)
}

/// `runcore ui` flags.
#[derive(Debug, Clone, Args)]
pub struct UiArgs {
    /// Directory of the local store to show.
    #[arg(long, env = ENV_DATA_DIR, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address to serve the UI on: http://IP:PORT (port 0 picks one). Addresses
    /// other than loopback need --auth-token.
    #[arg(long, env = ENV_UI_LISTEN, default_value = DEFAULT_UI_LISTEN)]
    pub listen: String,
    /// Open the UI in the default browser once it is serving.
    #[arg(long)]
    pub open: bool,
    /// Token a browser must present (open the UI once with ?token=..., which sets
    /// a cookie) or an API client (`authorization: Bearer <token>`). Required off
    /// loopback. Prefer the env var: a flag shows in the process list.
    #[arg(long, env = ENV_AUTH_TOKEN, hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Write the UI's URL to this file once listening, for programs that start it.
    #[arg(long)]
    pub port_file: Option<PathBuf>,
}

/// Validated `runcore ui` settings.
#[derive(Debug, Clone)]
pub struct UiConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub open: bool,
    pub auth_token: Option<Secret>,
    pub port_file: Option<PathBuf>,
}

/// A token given as a flag or env var: empty means none; too short is refused.
pub fn token(given: Option<String>) -> Result<Option<Secret>, UiConfigError> {
    Secret::token(given).map_err(|_| UiConfigError::ShortToken)
}

impl UiArgs {
    pub fn into_config(self) -> Result<UiConfig, UiConfigError> {
        let auth_token = token(self.auth_token)?;
        let listen = parse_listen("--listen", &self.listen, auth_token.as_ref())?;
        Ok(UiConfig {
            data_dir: self.data_dir,
            listen,
            open: self.open,
            auth_token,
            port_file: self.port_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_only_loopback_goes_without_a_token() {
        let p = |s: &str| parse_listen("--listen", s, None);
        assert_eq!(p("http://127.0.0.1:6007").unwrap().port(), 6007);
        assert_eq!(p("localhost:0").unwrap().ip().to_string(), "127.0.0.1");
        assert_eq!(p("http://[::1]:8/").unwrap().port(), 8);
        assert!(matches!(
            p("http://example.com:1"),
            Err(UiConfigError::Listen { .. })
        ));
        let err = p("http://0.0.0.0:6007").unwrap_err();
        assert!(err.to_string().contains("--auth-token"), "{err}");
        let secret = Secret::new("0123456789abcdef");
        assert!(parse_listen("--ui-listen", "0.0.0.0:1", Some(&secret)).is_ok());
        assert_eq!(token(Some("short".into())), Err(UiConfigError::ShortToken));
        assert_eq!(token(Some(String::new())), Ok(None));
    }
}
