//! The web UI as a process: `runcore ui` (port file, the URL it prints, SIGTERM)
//! and `runcore serve --ui-listen` (a sidecar showing its own live runs), and the
//! loopback rule for both.

mod support;

use std::process::{Command, Stdio};

use support::*;

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn runcore_ui_serves_a_data_dir_until_sigterm() {
    let sidecar = Sidecar::start();
    let mut c = sidecar.client().await;
    start_run(&mut c, "r1").await;
    let port_file = sidecar.root.join("ui.url");
    let child = Command::new(BIN)
        .args(["ui", "--listen", "http://127.0.0.1:0", "--data-dir"])
        .arg(&sidecar.data_dir)
        .arg("--port-file")
        .arg(&port_file)
        .env("RUNCORE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let url = wait_for(|| {
        std::fs::read_to_string(&port_file)
            .ok()
            .filter(|s| s.ends_with('\n'))
    });
    let url = url.trim();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );
    let runs: serde_json::Value = wait_for_async(|| async {
        let r = http()
            .get(format!("{url}api/projects/p/runs"))
            .send()
            .await
            .ok()?;
        let runs: serde_json::Value = r.json().await.ok()?;
        (runs[0]["id"] == "r1").then_some(runs)
    })
    .await;
    assert_eq!(runs[0]["state"], "running");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(url), "{stdout}");
}

#[tokio::test]
async fn serve_ui_listen_shows_the_sidecars_live_runs() {
    let port = free_port();
    let listen = format!("http://127.0.0.1:{port}");
    let mut sidecar = Sidecar::start_with(Transport::Tcp, &["--ui-listen", &listen]);
    let mut c = sidecar.client().await;
    start_run(&mut c, "live").await;
    c.log(log_req("live", &[("loss", 1.0)], None, None))
        .await
        .unwrap();
    let url = format!("{listen}/api/runs/p/live/series?key=loss");
    let series: serde_json::Value = wait_for_async(|| async {
        let r = http().get(&url).send().await.ok()?;
        (r.status() == 200).then_some(())?;
        r.json().await.ok()
    })
    .await;
    assert_eq!(series["y"][0], 1.0);
    let page = http()
        .get(format!("{listen}/runs/p/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    c.finish(runcore::proto::v1::FinishRequest {
        run_id: "live".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        sidecar.terminate(),
        Some(0),
        "the UI stops with the sidecar"
    );
    assert!(http().get(&listen).send().await.is_err(), "the UI is gone");
}

#[test]
fn off_loopback_needs_a_token_for_both_commands() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["ui", "--listen", "http://0.0.0.0:0"],
        vec!["serve", "--ui-listen", "http://0.0.0.0:0"],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("RUNCORE_AUTH_TOKEN")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--auth-token"), "{args:?}: {err}");
    }
}
