//! System metadata probed when a run starts (`metadata.json`): where the run ran.
//!
//! Host and OS facts, the hardware from [`monitor::system_info`] (CPU counts and
//! quota, memory and its cgroup limit, the root disk, GPUs, driver and CUDA
//! version), and the container or scheduler around the sidecar: Docker/Podman,
//! Kubernetes (pod, namespace, node from the downward-API variables) and Slurm
//! (every `SLURM_*` variable). Blocking: it reads /proc, /sys and NVML.

use serde_json::{json, Map, Value};

use crate::monitor;
use crate::proto::v1::InitRequest;

/// Downward-API variables commonly set for a pod's name, namespace and node
/// (Kubernetes has no fixed names for them), first match wins.
const K8S_POD: [&str; 3] = ["POD_NAME", "K8S_POD_NAME", "MY_POD_NAME"];
const K8S_NAMESPACE: [&str; 3] = ["POD_NAMESPACE", "K8S_NAMESPACE", "MY_POD_NAMESPACE"];
const K8S_NODE: [&str; 3] = ["NODE_NAME", "K8S_NODE_NAME", "MY_NODE_NAME"];
/// Set in every Kubernetes container.
const K8S_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";
/// Where a pod's service account states its namespace.
const K8S_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
const SLURM_PREFIX: &str = "SLURM_";

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

/// Kubernetes and Slurm context from environment variables: `kubernetes` (pod,
/// namespace, node; the pod defaults to `HOSTNAME`, which Kubernetes sets to it)
/// and `slurm` (each `SLURM_X` as `x`).
pub fn scheduler_context(vars: impl IntoIterator<Item = (String, String)>) -> Map<String, Value> {
    let vars: Vec<(String, String)> = vars.into_iter().collect();
    let var = |names: &[&str]| {
        names.iter().find_map(|n| {
            vars.iter()
                .find(|(k, v)| k == n && !v.is_empty())
                .map(|(_, v)| v.clone())
        })
    };
    let mut m = Map::new();
    if var(&[K8S_SERVICE_HOST]).is_some() {
        let mut k = Map::new();
        if let Some(pod) = var(&K8S_POD).or_else(|| var(&["HOSTNAME"])) {
            k.insert("pod".into(), json!(pod));
        }
        if let Some(ns) = var(&K8S_NAMESPACE).or_else(|| read_trimmed(K8S_NAMESPACE_FILE)) {
            k.insert("namespace".into(), json!(ns));
        }
        if let Some(node) = var(&K8S_NODE) {
            k.insert("node".into(), json!(node));
        }
        m.insert("kubernetes".into(), Value::Object(k));
    }
    let mut slurm: Vec<(String, String)> = vars
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(SLURM_PREFIX)?;
            (!key.is_empty()).then(|| (key.to_ascii_lowercase(), v.clone()))
        })
        .collect();
    if !slurm.is_empty() {
        slurm.sort();
        let slurm: Map<String, Value> = slurm.into_iter().map(|(k, v)| (k, json!(v))).collect();
        m.insert("slurm".into(), Value::Object(slurm));
    }
    m
}

/// "docker" or "podman" when their marker file exists.
fn container_runtime() -> Option<&'static str> {
    if std::path::Path::new("/.dockerenv").exists() {
        Some("docker")
    } else if std::path::Path::new("/run/.containerenv").exists() {
        Some("podman")
    } else {
        None
    }
}

/// The metadata document of a new run, as JSON text. Blocking (see the module).
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
    // Hardware facts; their `memory` (same total, plus any cgroup limit) replaces
    // the one above, which stays as the fallback.
    if let Value::Object(hw) = monitor::system_info() {
        m.extend(hw);
    }
    if let Some(rt) = container_runtime() {
        m.insert("container".into(), json!(rt));
    }
    m.extend(scheduler_context(std::env::vars_os().filter_map(
        |(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)),
    )));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kubernetes_from_the_downward_api() {
        let m = scheduler_context(vars(&[
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("HOSTNAME", "trainer-0"),
            ("POD_NAMESPACE", "ml"),
            ("MY_NODE_NAME", "gpu-node-7"),
        ]));
        assert_eq!(
            Value::Object(m),
            json!({ "kubernetes": { "pod": "trainer-0", "namespace": "ml", "node": "gpu-node-7" } })
        );
        // Outside Kubernetes the same names mean nothing.
        assert!(scheduler_context(vars(&[("POD_NAME", "x")])).is_empty());
    }

    #[test]
    fn slurm_variables_are_kept_lowercased() {
        let m = scheduler_context(vars(&[
            ("SLURM_JOB_ID", "4242"),
            ("SLURM_NODELIST", "node[01-04]"),
            ("SLURM_", "ignored"),
            ("PATH", "/bin"),
        ]));
        assert_eq!(
            Value::Object(m),
            json!({ "slurm": { "job_id": "4242", "nodelist": "node[01-04]" } })
        );
    }

    #[test]
    fn collect_writes_the_old_keys_and_the_hardware() {
        let init = InitRequest {
            working_dir: "/tmp/w".into(),
            ..Default::default()
        };
        let v: Value = serde_json::from_str(&collect(&init)).unwrap();
        assert_eq!(v["os"], std::env::consts::OS);
        assert!(v["cpu_count"].as_u64().unwrap() >= 1);
        assert!(v["memory"]["total"].as_u64().unwrap() > 0);
        assert!(v["disk"]["/"]["total"].as_u64().unwrap() > 0);
        assert_eq!(v["working_dir"], "/tmp/w");
        // No GPU here: no GPU keys, and no error either.
        if crate::monitor::nvml::NvmlSource::probe().is_none() {
            assert!(v.get("gpu_count").is_none());
        }
    }
}
