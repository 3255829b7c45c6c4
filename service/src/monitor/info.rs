//! Hardware facts for `metadata.json`: CPUs, memory, the root disk and the GPUs.

use serde_json::{json, Map, Value};
use sysinfo::System;

use super::cgroup::Cgroup;
use super::gpu::{DeviceRef, GpuSource};
use super::host::Host;
use super::nvml::NvmlSource;

/// CPU, memory (with the container's limits), disk and GPU facts. Blocking (the
/// first call loads NVML): call it off the async runtime.
pub fn system_info() -> Value {
    let mut nvml = NvmlSource::probe();
    system_info_with(nvml.as_mut().map(|s| s as &mut dyn GpuSource))
}

/// [`system_info`] with the GPU facts from `gpu` (none when `None`).
pub fn system_info_with(gpu: Option<&mut dyn GpuSource>) -> Value {
    let mut m = Map::new();
    if let Ok(n) = System::physical_core_count() {
        m.insert("cpu_count_physical".into(), json!(n));
    }
    let cgroup = Cgroup::of(None);
    if let Some(limit) = cgroup.as_ref().and_then(Cgroup::cpu_limit) {
        m.insert("cpu_limit".into(), json!(limit));
    }
    if let Ok(mut host) = Host::new() {
        let tick = host.tick();
        let mut memory = Map::new();
        memory.insert("total".into(), json!(tick.memory_total));
        if let Some(mem) = cgroup
            .as_ref()
            .and_then(Cgroup::memory)
            .filter(|mem| mem.limit < tick.memory_total)
        {
            memory.insert("limit".into(), json!(mem.limit));
        }
        m.insert("memory".into(), Value::Object(memory));
        if let Some(u) = host
            .resolve_disk(std::path::Path::new("/"))
            .ok()
            .and_then(|mount| host.disk_usage(&mount))
        {
            m.insert(
                "disk".into(),
                json!({ "/": { "total": u.total, "used": u.used } }),
            );
        }
    }
    if let Some(gpu) = gpu {
        gpu_info(gpu, &mut m);
    }
    Value::Object(m)
}

/// `gpu` (the first device's name, as W&B has it), `gpu_count`, `gpu_devices`
/// (name, memory, uuid, architecture, CUDA cores, compute capability and MIG
/// instances of each), `driver_version`, `cuda_version`.
fn gpu_info(gpu: &mut dyn GpuSource, m: &mut Map<String, Value>) {
    let Ok(count) = gpu.device_count() else {
        return;
    };
    if count == 0 {
        return;
    }
    let mut devices = Vec::new();
    for index in 0..count {
        let Ok(info) = gpu.info(DeviceRef::gpu(index)) else {
            continue;
        };
        let mut d = json!({
            "index": index,
            "name": info.name,
            "memory_total": info.memory_total,
            "uuid": info.uuid,
        });
        if let Some(a) = info.architecture {
            d["architecture"] = json!(a);
        }
        if let Some(c) = info.cuda_cores {
            d["cuda_cores"] = json!(c);
        }
        if let Some(c) = info.compute_capability {
            d["compute_capability"] = json!(c);
        }
        let migs: Vec<Value> = gpu
            .mig_slots(index)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|slot| {
                let i = gpu.info(DeviceRef::mig(index, slot)).ok()?;
                Some(json!({
                    "slot": slot,
                    "name": i.name,
                    "memory_total": i.memory_total,
                    "uuid": i.uuid,
                }))
            })
            .collect();
        if !migs.is_empty() {
            d["mig"] = Value::Array(migs);
        }
        devices.push(d);
    }
    if let Some(first) = devices.first() {
        m.insert("gpu".into(), first["name"].clone());
    }
    m.insert("gpu_count".into(), json!(count));
    m.insert("gpu_devices".into(), Value::Array(devices));
    let driver = gpu.driver();
    if let Some(v) = driver.driver_version {
        m.insert("driver_version".into(), json!(v));
    }
    if let Some(v) = driver.cuda_version {
        m.insert("cuda_version".into(), json!(v));
    }
}
