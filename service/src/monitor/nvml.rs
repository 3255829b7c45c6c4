//! The real [`GpuSource`]: NVIDIA's NVML, loaded at run time (`libnvidia-ml.so.1`)
//! through `nvml-wrapper`. NVML is initialised once per process and shared by the
//! sampler and [`super::system_info`]; without the library or a driver there is one
//! info line and no GPU metrics.
//!
//! MIG: when a GPU's current MIG mode is enabled, each populated MIG device slot
//! (`nvmlDeviceGetMigDeviceHandleByIndex` over `0..nvmlDeviceGetMaxMigDeviceCount`)
//! becomes a device of its own, labelled `{gpu}.mig.{slot}`, asked for memory and
//! running processes (the queries NVML answers per MIG instance). The parent GPU is
//! asked everything as usual; what it does not answer in MIG mode (utilisation, for
//! one) is switched off with one line like any unsupported query.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::OnceLock;

use nvml_wrapper::enum_wrappers::device::{
    Clock as NvClock, EccCounter, MemoryError, TemperatureSensor,
};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

use super::gpu::{
    Clock, DeviceRef, DriverInfo, EccKind, GpuError, GpuInfo, GpuSource, MemoryInfo, Utilization,
};

/// The library names tried in order: the versioned name is what the driver
/// installs; the unversioned one only comes with development packages.
const LIBRARIES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

/// `NVML_DEVICE_MIG_ENABLE`: the value of a MIG mode that is on.
const MIG_ENABLED: u32 = 1;

static NVML: OnceLock<Option<Nvml>> = OnceLock::new();

/// NVML, initialised on first call; `None` (after one info line) when there is no
/// library, no driver or no permission.
fn shared() -> Option<&'static Nvml> {
    NVML.get_or_init(|| {
        let mut last = None;
        for lib in LIBRARIES {
            match Nvml::builder().lib_path(OsStr::new(lib)).init() {
                Ok(nvml) => return Some(nvml),
                Err(e) => last = Some(e),
            }
        }
        let error = last.map(|e| e.to_string()).unwrap_or_default();
        tracing::info!(%error, "NVML not available (no NVIDIA driver?): no GPU metrics");
        None
    })
    .as_ref()
}

fn map_err(e: NvmlError) -> GpuError {
    match e {
        NvmlError::NotSupported => GpuError::NotSupported,
        NvmlError::GpuLost => GpuError::Lost,
        other => GpuError::Failed(other.to_string()),
    }
}

/// NVML devices, with their handles kept across samples.
pub struct NvmlSource {
    nvml: &'static Nvml,
    handles: HashMap<DeviceRef, Device<'static>>,
}

/// NVML as a sampler's GPU source (`gpu::Probe`), when the driver is there.
/// Blocking: call it off the async runtime.
pub fn source() -> Option<Box<dyn GpuSource>> {
    NvmlSource::probe().map(|s| Box::new(s) as Box<dyn GpuSource>)
}

impl NvmlSource {
    /// Loads and initialises NVML (once per process); `None` when it is not there.
    /// Blocking: call it off the async runtime.
    pub fn probe() -> Option<NvmlSource> {
        shared().map(|nvml| NvmlSource {
            nvml,
            handles: HashMap::new(),
        })
    }

    fn device(&mut self, dev: DeviceRef) -> Result<&Device<'static>, GpuError> {
        if !self.handles.contains_key(&dev) {
            let gpu = self.nvml.device_by_index(dev.index).map_err(map_err)?;
            let handle = match dev.mig {
                None => gpu,
                Some(slot) => gpu.mig_device_by_index(slot).map_err(map_err)?,
            };
            self.handles.insert(dev, handle);
        }
        Ok(&self.handles[&dev])
    }
}

impl GpuSource for NvmlSource {
    fn device_count(&mut self) -> Result<u32, GpuError> {
        self.nvml.device_count().map_err(map_err)
    }

    fn mig_slots(&mut self, index: u32) -> Result<Vec<u32>, GpuError> {
        let gpu = self.device(DeviceRef::gpu(index))?;
        let mode = gpu.mig_mode().map_err(map_err)?;
        if mode.current != MIG_ENABLED {
            return Ok(Vec::new());
        }
        let max = gpu.mig_device_count().map_err(map_err)?;
        Ok((0..max)
            .filter(|&slot| gpu.mig_device_by_index(slot).is_ok())
            .collect())
    }

    fn utilization(&mut self, dev: DeviceRef) -> Result<Utilization, GpuError> {
        let u = self.device(dev)?.utilization_rates().map_err(map_err)?;
        Ok(Utilization {
            gpu: u.gpu,
            memory: u.memory,
        })
    }

    fn memory(&mut self, dev: DeviceRef) -> Result<MemoryInfo, GpuError> {
        let m = self.device(dev)?.memory_info().map_err(map_err)?;
        Ok(MemoryInfo {
            used: m.used,
            total: m.total,
        })
    }

    fn temperature(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.device(dev)?
            .temperature(TemperatureSensor::Gpu)
            .map_err(map_err)
    }

    fn power_usage_mw(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.device(dev)?.power_usage().map_err(map_err)
    }

    fn enforced_power_limit_mw(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.device(dev)?.enforced_power_limit().map_err(map_err)
    }

    fn clock_mhz(&mut self, dev: DeviceRef, clock: Clock) -> Result<u32, GpuError> {
        let clock = match clock {
            Clock::Sm => NvClock::SM,
            Clock::Memory => NvClock::Memory,
            Clock::Graphics => NvClock::Graphics,
        };
        self.device(dev)?.clock_info(clock).map_err(map_err)
    }

    fn memory_errors(&mut self, dev: DeviceRef, kind: EccKind) -> Result<u64, GpuError> {
        let kind = match kind {
            EccKind::Corrected => MemoryError::Corrected,
            EccKind::Uncorrected => MemoryError::Uncorrected,
        };
        self.device(dev)?
            .total_ecc_errors(kind, EccCounter::Aggregate)
            .map_err(map_err)
    }

    fn fan_speed(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.device(dev)?.fan_speed(0).map_err(map_err)
    }

    fn encoder_utilization(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        let u = self.device(dev)?.encoder_utilization().map_err(map_err)?;
        Ok(u.utilization)
    }

    fn pcie_link_gen(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.device(dev)?.current_pcie_link_gen().map_err(map_err)
    }

    fn pcie_link_width(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.device(dev)?.current_pcie_link_width().map_err(map_err)
    }

    /// Compute processes, plus graphics ones where the device lists them (a
    /// compute-only GPU answers NotSupported for those, which is not an error here).
    fn processes(&mut self, dev: DeviceRef) -> Result<Vec<u32>, GpuError> {
        let d = self.device(dev)?;
        let mut pids: Vec<u32> = d
            .running_compute_processes()
            .map_err(map_err)?
            .iter()
            .map(|p| p.pid)
            .collect();
        if let Ok(graphics) = d.running_graphics_processes() {
            pids.extend(graphics.iter().map(|p| p.pid));
        }
        Ok(pids)
    }

    fn info(&mut self, dev: DeviceRef) -> Result<GpuInfo, GpuError> {
        let d = self.device(dev)?;
        Ok(GpuInfo {
            name: d.name().map_err(map_err)?,
            uuid: d.uuid().unwrap_or_default(),
            memory_total: d.memory_info().map(|m| m.total).unwrap_or(0),
            architecture: d.architecture().ok().map(|a| a.to_string()),
            cuda_cores: d.num_cores().ok(),
            compute_capability: d
                .cuda_compute_capability()
                .ok()
                .map(|c| format!("{}.{}", c.major, c.minor)),
        })
    }

    fn driver(&mut self) -> DriverInfo {
        DriverInfo {
            driver_version: self.nvml.sys_driver_version().ok(),
            cuda_version: self.nvml.sys_cuda_driver_version().ok().map(|v| {
                format!(
                    "{}.{}",
                    nvml_wrapper::cuda_driver_version_major(v),
                    nvml_wrapper::cuda_driver_version_minor(v)
                )
            }),
        }
    }
}
