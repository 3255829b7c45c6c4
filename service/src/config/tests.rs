//! Settings parsing and validation.

use super::*;

#[test]
fn listen_addresses_parse() {
    assert_eq!(
        "tcp://127.0.0.1:0".parse::<ListenAddr>().unwrap(),
        ListenAddr::Tcp("127.0.0.1:0".parse().unwrap())
    );
    assert_eq!(
        "localhost:5".parse::<ListenAddr>().unwrap(),
        ListenAddr::Tcp("127.0.0.1:5".parse().unwrap())
    );
    assert_eq!(
        "unix:///tmp/a.sock".parse::<ListenAddr>().unwrap(),
        ListenAddr::Unix("/tmp/a.sock".into())
    );
    assert!("unix://".parse::<ListenAddr>().is_err());
    assert!("tcp://nowhere".parse::<ListenAddr>().is_err());
}

#[test]
fn non_loopback_tcp_is_refused() {
    let args = ServeArgs {
        listen: "tcp://0.0.0.0:1".into(),
        port_file: None,
        data_dir: "d".into(),
        log_format: LogFormat::Text,
        fsync: FsyncPolicy::Batch,
        shutdown_grace: 1.0,
        max_message_bytes: 4096,
        memory_budget: crate::memory::DEFAULT_BUDGET_BYTES,
        flush_interval: 1.0,
        client_timeout: 60.0,
        heartbeat_interval: 30.0,
        parent_pid: None,
        backend: BackendArgs {
            backend: BackendKind::Local,
            mlflow_tracking_uri: None,
            wandb_base_url: DEFAULT_WANDB_BASE_URL.into(),
        },
        finish_timeout: 60.0,
        auth_token: None,
        tls_cert: None,
        tls_key: None,
        socket_group: None,
        files_root: Vec::new(),
        max_file_bytes: 1 << 30,
        max_runs_per_client: 64,
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        shared_data_dir: false,
        index_finished_runs: true,
        wandb_listen: None,
        wandb_port_file: None,
        ui_listen: None,
    };
    let ui_only = ServeArgs {
        listen: "tcp://127.0.0.1:1".into(),
        ui_listen: Some("http://0.0.0.0:6007".into()),
        ..args.clone()
    };
    let tiny_budget = ServeArgs {
        listen: "tcp://127.0.0.1:1".into(),
        memory_budget: 1000,
        ..args.clone()
    };
    let err = tiny_budget.into_config().unwrap_err();
    assert!(
        err.to_string().contains("--memory-budget must be at least"),
        "{err}"
    );
    let err = args.into_config().unwrap_err();
    assert!(err.to_string().contains("--auth-token"), "{err}");
    let err = ui_only.into_config().unwrap_err();
    assert!(err.to_string().contains("--ui-listen"), "{err}");
}
