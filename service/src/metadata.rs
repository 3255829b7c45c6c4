//! System metadata probed when a run starts (`metadata.json`): where the run ran.

use serde_json::{json, Map, Value};

use crate::proto::v1::InitRequest;

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Total memory in bytes, from /proc/meminfo.
fn memory_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

/// The metadata document of a new run, as JSON text.
pub fn collect(init: &InitRequest) -> String {
    let mut m = Map::new();
    m.insert("runcore_version".into(), json!(env!("CARGO_PKG_VERSION")));
    m.insert(
        "host".into(),
        json!(read_trimmed("/proc/sys/kernel/hostname").unwrap_or_default()),
    );
    m.insert("os".into(), json!(std::env::consts::OS));
    m.insert("arch".into(), json!(std::env::consts::ARCH));
    if let Some(k) = read_trimmed("/proc/sys/kernel/osrelease") {
        m.insert("kernel".into(), json!(k));
    }
    if let Some(c) = cpu_model() {
        m.insert("cpu_model".into(), json!(c));
    }
    m.insert(
        "cpu_count".into(),
        json!(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)),
    );
    if let Some(mem) = memory_total() {
        m.insert("memory".into(), json!({ "total": mem }));
    }
    if let Some(c) = &init.client {
        m.insert(
            "client".into(),
            json!({ "pid": c.pid, "hostname": c.hostname, "boot_id": c.boot_id }),
        );
    }
    if !init.working_dir.is_empty() {
        m.insert("working_dir".into(), json!(init.working_dir));
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}
