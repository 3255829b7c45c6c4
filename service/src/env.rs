//! Every setting's environment variable and default, named once, and the
//! [`Secret`] type of credentials: read by `config` (`runcore serve`), `ui::config`
//! (`runcore ui`) and the CLI commands, which import this table rather than each
//! other.

pub const ENV_LISTEN: &str = "RUNCORE_LISTEN";
pub const ENV_PORT_FILE: &str = "RUNCORE_PORT_FILE";
pub const ENV_DATA_DIR: &str = "RUNCORE_DATA_DIR";
pub const ENV_LOG_FORMAT: &str = "RUNCORE_LOG_FORMAT";
pub const ENV_FSYNC: &str = "RUNCORE_FSYNC";
pub const ENV_SHUTDOWN_GRACE: &str = "RUNCORE_SHUTDOWN_GRACE";
pub const ENV_MAX_MESSAGE_BYTES: &str = "RUNCORE_MAX_MESSAGE_BYTES";
pub const ENV_MEMORY_BUDGET: &str = "RUNCORE_MEMORY_BUDGET";
pub const ENV_FLUSH_INTERVAL: &str = "RUNCORE_FLUSH_INTERVAL";
pub const ENV_CLIENT_TIMEOUT: &str = "RUNCORE_CLIENT_TIMEOUT";
pub const ENV_HEARTBEAT_INTERVAL: &str = "RUNCORE_HEARTBEAT_INTERVAL";
pub const ENV_PARENT_PID: &str = "RUNCORE_PARENT_PID";
pub const ENV_BACKEND: &str = "RUNCORE_BACKEND";
pub const ENV_AUTH_TOKEN: &str = "RUNCORE_AUTH_TOKEN";
pub const ENV_TLS_CERT: &str = "RUNCORE_TLS_CERT";
pub const ENV_TLS_KEY: &str = "RUNCORE_TLS_KEY";
pub const ENV_SOCKET_GROUP: &str = "RUNCORE_SOCKET_GROUP";
pub const ENV_FILES_ROOT: &str = "RUNCORE_FILES_ROOT";
pub const ENV_MAX_FILE_BYTES: &str = "RUNCORE_MAX_FILE_BYTES";
pub const ENV_MAX_RUNS_PER_CLIENT: &str = "RUNCORE_MAX_RUNS_PER_CLIENT";
pub const ENV_FINISH_TIMEOUT: &str = "RUNCORE_FINISH_TIMEOUT";
pub const ENV_WANDB_LISTEN: &str = "RUNCORE_WANDB_LISTEN";
pub const ENV_WANDB_PORT_FILE: &str = "RUNCORE_WANDB_PORT_FILE";
pub const ENV_IDLE_TIMEOUT: &str = "RUNCORE_IDLE_TIMEOUT";
pub const ENV_SHARED_DATA_DIR: &str = "RUNCORE_SHARED_DATA_DIR";
pub const ENV_INDEX_FINISHED_RUNS: &str = "RUNCORE_INDEX_FINISHED_RUNS";
pub const ENV_UI_LISTEN: &str = "RUNCORE_UI_LISTEN";
/// MLflow's own client variables.
pub const ENV_MLFLOW_URI: &str = "MLFLOW_TRACKING_URI";
pub const ENV_MLFLOW_TOKEN: &str = "MLFLOW_TRACKING_TOKEN";
pub const ENV_MLFLOW_USERNAME: &str = "MLFLOW_TRACKING_USERNAME";
pub const ENV_MLFLOW_PASSWORD: &str = "MLFLOW_TRACKING_PASSWORD";
/// W&B's own client variables.
pub const ENV_WANDB_BASE_URL: &str = "WANDB_BASE_URL";
pub const ENV_WANDB_API_KEY: &str = "WANDB_API_KEY";
/// Log filter (tracing's EnvFilter syntax), e.g. `info` or `runcore=debug`.
pub const ENV_LOG: &str = "RUNCORE_LOG";

pub const DEFAULT_LISTEN: &str = "tcp://127.0.0.1:50517";
pub const DEFAULT_DATA_DIR: &str = "./runcore-data";
pub const DEFAULT_UI_LISTEN: &str = "http://127.0.0.1:6007";
/// Shortest auth token accepted, by every listener.
pub const MIN_TOKEN: usize = 16;

/// A credential: shown as `<redacted>` in every Debug output and log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// An auth token shorter than [`MIN_TOKEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTooShort;

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// An auth token as given by a flag or environment variable: empty means
    /// none; one shorter than [`MIN_TOKEN`] is refused (every listener's rule).
    pub fn token(given: Option<String>) -> Result<Option<Secret>, TokenTooShort> {
        match given.filter(|t| !t.is_empty()) {
            Some(t) if t.len() < MIN_TOKEN => Err(TokenTooShort),
            t => Ok(t.map(Secret)),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_none_when_empty_and_refused_when_short() {
        assert_eq!(Secret::token(None), Ok(None));
        assert_eq!(Secret::token(Some(String::new())), Ok(None));
        assert_eq!(
            Secret::token(Some("k".repeat(MIN_TOKEN - 1))),
            Err(TokenTooShort)
        );
        let ok = Secret::token(Some("k".repeat(MIN_TOKEN))).unwrap().unwrap();
        assert_eq!(ok.expose().len(), MIN_TOKEN);
    }
}
