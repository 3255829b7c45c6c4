//! GPUs behind a trait: [`GpuSource`] is what the sampler asks (one method per NVML
//! query), `nvml::NvmlSource` answers it from the driver and `fake::FakeGpus`
//! from a table (both implement it; this module names neither). [`GpuSampler`]
//! turns answers into metrics and switches a query off for a device, with one log
//! line, the first time the device fails it.

use std::collections::HashSet;

use super::names::{self, GpuMetric};

/// Which device a query is about: a physical GPU, or one MIG instance of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceRef {
    /// NVML index of the physical GPU.
    pub index: u32,
    /// MIG device slot on that GPU (`nvmlDeviceGetMigDeviceHandleByIndex`), if any.
    pub mig: Option<u32>,
}

impl DeviceRef {
    pub const fn gpu(index: u32) -> DeviceRef {
        DeviceRef { index, mig: None }
    }

    pub const fn mig(index: u32, slot: u32) -> DeviceRef {
        DeviceRef {
            index,
            mig: Some(slot),
        }
    }

    /// The `{i}` of `gpu.{i}.*`: `3`, or `3.mig.1` for a MIG instance.
    pub fn label(self) -> String {
        match self.mig {
            None => self.index.to_string(),
            Some(slot) => names::mig_label(self.index, slot),
        }
    }
}

/// Why a query gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// The device does not have this counter (a data-centre GPU has no fan, a MIG
    /// instance no utilisation counter).
    #[error("not supported by this device")]
    NotSupported,
    /// The device fell off the bus: every query on it is switched off.
    #[error("the GPU is lost (fell off the bus or stopped answering)")]
    Lost,
    /// Any other driver error, in the driver's words.
    #[error("{0}")]
    Failed(String),
}

/// One NVML query: the unit that is switched off when a device fails it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GpuQuery {
    Utilization,
    Memory,
    Temperature,
    Power,
    PowerLimit,
    SmClock,
    MemoryClock,
    GraphicsClock,
    CorrectedErrors,
    UncorrectedErrors,
    FanSpeed,
    EncoderUtilization,
    PcieLinkGen,
    PcieLinkWidth,
    /// The device's running compute and graphics processes (for `gpu.process.*`).
    Processes,
}

impl GpuQuery {
    /// The queries asked of a physical GPU.
    pub const GPU: [GpuQuery; 15] = [
        GpuQuery::Utilization,
        GpuQuery::Memory,
        GpuQuery::Temperature,
        GpuQuery::Power,
        GpuQuery::PowerLimit,
        GpuQuery::SmClock,
        GpuQuery::MemoryClock,
        GpuQuery::GraphicsClock,
        GpuQuery::CorrectedErrors,
        GpuQuery::UncorrectedErrors,
        GpuQuery::FanSpeed,
        GpuQuery::EncoderUtilization,
        GpuQuery::PcieLinkGen,
        GpuQuery::PcieLinkWidth,
        GpuQuery::Processes,
    ];

    /// The queries asked of a MIG instance: NVML answers memory and process lists
    /// per instance; utilisation, power, clocks and the rest belong to the parent.
    pub const MIG: [GpuQuery; 2] = [GpuQuery::Memory, GpuQuery::Processes];

    /// The metrics this query feeds (named in the switch-off log line).
    pub const fn metrics(self) -> &'static [GpuMetric] {
        use GpuMetric as M;
        match self {
            GpuQuery::Utilization => &[M::Gpu, M::Memory],
            GpuQuery::Memory => &[M::MemoryAllocated, M::MemoryAllocatedBytes],
            GpuQuery::Temperature => &[M::Temp],
            GpuQuery::Power => &[M::PowerWatts, M::PowerPercent],
            GpuQuery::PowerLimit => &[M::EnforcedPowerLimitWatts, M::PowerPercent],
            GpuQuery::SmClock => &[M::SmClock],
            GpuQuery::MemoryClock => &[M::MemoryClock],
            GpuQuery::GraphicsClock => &[M::GraphicsClock],
            GpuQuery::CorrectedErrors => &[M::CorrectedMemoryErrors],
            GpuQuery::UncorrectedErrors => &[M::UncorrectedMemoryErrors],
            GpuQuery::FanSpeed => &[M::FanSpeed],
            GpuQuery::EncoderUtilization => &[M::EncoderUtilization],
            GpuQuery::PcieLinkGen => &[M::PcieLinkGen],
            GpuQuery::PcieLinkWidth => &[M::PcieLinkWidth],
            GpuQuery::Processes => &[],
        }
    }

    const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// `nvmlDeviceGetUtilizationRates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utilization {
    /// % of the sample period during which a kernel ran.
    pub gpu: u32,
    /// % of the sample period during which memory was read or written.
    pub memory: u32,
}

/// `nvmlDeviceGetMemoryInfo`, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryInfo {
    pub used: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Sm,
    Memory,
    Graphics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EccKind {
    Corrected,
    Uncorrected,
}

/// Facts about one device for `metadata.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuInfo {
    pub name: String,
    pub uuid: String,
    pub memory_total: u64,
    pub architecture: Option<String>,
    pub cuda_cores: Option<u32>,
    /// "major.minor".
    pub compute_capability: Option<String>,
}

/// Driver facts for `metadata.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverInfo {
    pub driver_version: Option<String>,
    /// The CUDA version the driver supports, "major.minor".
    pub cuda_version: Option<String>,
}

/// Where GPU readings come from. Every method may block (NVML calls do), so the
/// sampler calls them on its own thread only. A method that a device cannot answer
/// returns [`GpuError::NotSupported`]; the sampler then stops asking that device.
pub trait GpuSource: Send {
    /// Physical GPUs, indexed `0..count` as NVML indexes them.
    fn device_count(&mut self) -> Result<u32, GpuError>;
    /// The MIG slots populated on GPU `index`; empty when MIG is off.
    fn mig_slots(&mut self, index: u32) -> Result<Vec<u32>, GpuError>;
    fn utilization(&mut self, dev: DeviceRef) -> Result<Utilization, GpuError>;
    fn memory(&mut self, dev: DeviceRef) -> Result<MemoryInfo, GpuError>;
    /// Core temperature, °C.
    fn temperature(&mut self, dev: DeviceRef) -> Result<u32, GpuError>;
    /// Power draw, mW.
    fn power_usage_mw(&mut self, dev: DeviceRef) -> Result<u32, GpuError>;
    /// The power limit the driver enforces, mW.
    fn enforced_power_limit_mw(&mut self, dev: DeviceRef) -> Result<u32, GpuError>;
    fn clock_mhz(&mut self, dev: DeviceRef, clock: Clock) -> Result<u32, GpuError>;
    /// Lifetime (aggregate) ECC error count over all memory locations.
    fn memory_errors(&mut self, dev: DeviceRef, kind: EccKind) -> Result<u64, GpuError>;
    /// Fan 0, % of its maximum speed.
    fn fan_speed(&mut self, dev: DeviceRef) -> Result<u32, GpuError>;
    /// Video encoder utilisation, %.
    fn encoder_utilization(&mut self, dev: DeviceRef) -> Result<u32, GpuError>;
    fn pcie_link_gen(&mut self, dev: DeviceRef) -> Result<u32, GpuError>;
    fn pcie_link_width(&mut self, dev: DeviceRef) -> Result<u32, GpuError>;
    /// Pids of the compute and graphics processes running on the device, as the
    /// driver sees them (host pid namespace).
    fn processes(&mut self, dev: DeviceRef) -> Result<Vec<u32>, GpuError>;
    fn info(&mut self, dev: DeviceRef) -> Result<GpuInfo, GpuError>;
    fn driver(&mut self) -> DriverInfo;
}

/// One device as the sampler tracks it.
struct Device {
    dev: DeviceRef,
    label: String,
    /// Position in `devices` of the physical parent of a MIG instance.
    parent: Option<usize>,
    queries: &'static [GpuQuery],
    /// Bits of the queries switched off for this device.
    off: u32,
    /// The device fell off the bus: nothing more is asked of it.
    lost: bool,
    /// `gpu.{label}.{suffix}`, by [`GpuMetric`] position: built once, cloned per sample.
    keys: Vec<String>,
    /// `gpu.process.{label}.{suffix}`.
    process_keys: Vec<String>,
}

impl Device {
    fn new(dev: DeviceRef, parent: Option<usize>) -> Device {
        let label = dev.label();
        let keys = GpuMetric::ALL
            .iter()
            .map(|&m| names::gpu_key(&label, m))
            .collect();
        let process_keys = GpuMetric::ALL
            .iter()
            .map(|&m| names::gpu_process_key(&label, m))
            .collect();
        Device {
            dev,
            label,
            parent,
            queries: if dev.mig.is_some() {
                &GpuQuery::MIG
            } else {
                &GpuQuery::GPU
            },
            off: 0,
            lost: false,
            keys,
            process_keys,
        }
    }

    fn wants(&self, q: GpuQuery) -> bool {
        !self.lost && self.off & q.bit() == 0 && self.queries.contains(&q)
    }
}

/// How a sampler given no source finds the machine's GPUs: called once, on the
/// sampler's thread, at the first tick (the monitor passes `nvml::source`).
pub type Probe = fn() -> Option<Box<dyn GpuSource>>;

enum State {
    /// Probe on first use (on the sampler thread).
    Unprobed(Probe),
    /// No NVML or no devices: no GPU metrics.
    Absent,
    /// A source whose devices are listed on first use.
    Source(Box<dyn GpuSource>),
    Ready {
        source: Box<dyn GpuSource>,
        devices: Vec<Device>,
    },
}

/// The readings of one device at one tick.
struct DeviceTick {
    device: usize,
    values: Vec<(GpuMetric, f64)>,
    /// Pids on the device; empty when the process list is switched off.
    pids: Vec<u32>,
}

/// All GPU readings of one tick, shared by every watch sampled at that tick.
#[derive(Default)]
pub struct GpuTick {
    devices: Vec<DeviceTick>,
}

/// Reads every device once per tick and remembers which queries each device
/// failed, so a failing query costs one call and one log line, not one per sample.
pub struct GpuSampler {
    state: State,
}

impl GpuSampler {
    /// Samples `source`, whose devices are listed on the first tick.
    pub fn new(source: Box<dyn GpuSource>) -> GpuSampler {
        GpuSampler {
            state: State::Source(source),
        }
    }

    /// Samples what `probe` finds on the first tick (no GPU metrics when it finds
    /// nothing).
    pub fn probing(probe: Probe) -> GpuSampler {
        GpuSampler {
            state: State::Unprobed(probe),
        }
    }

    fn ready(&mut self) -> Option<(&mut dyn GpuSource, &mut Vec<Device>)> {
        let state = std::mem::replace(&mut self.state, State::Absent);
        self.state = match state {
            State::Unprobed(probe) => match probe() {
                Some(s) => enumerate(s),
                None => State::Absent,
            },
            State::Source(s) => enumerate(s),
            other => other,
        };
        match &mut self.state {
            State::Ready { source, devices } => Some((source.as_mut(), devices)),
            _ => None,
        }
    }

    /// Reads every device. `want_processes`: some watch has a process tree, so the
    /// running-process lists are worth asking for.
    pub fn tick(&mut self, want_processes: bool) -> GpuTick {
        let Some((source, devices)) = self.ready() else {
            return GpuTick::default();
        };
        let mut tick = GpuTick {
            devices: Vec::with_capacity(devices.len()),
        };
        for (i, d) in devices.iter_mut().enumerate() {
            if d.lost {
                continue;
            }
            let values = read_device(source, d);
            let pids = if want_processes {
                probe(source, d, GpuQuery::Processes, |s, dev| s.processes(dev)).unwrap_or_default()
            } else {
                Vec::new()
            };
            if d.lost {
                continue;
            }
            tick.devices.push(DeviceTick {
                device: i,
                values,
                pids,
            });
        }
        tick
    }

    /// Appends one watch's GPU metrics: every device's `gpu.{i}.*`, then
    /// `gpu.process.{i}.*` for the devices that run a pid of `tree` (a MIG instance
    /// in use marks its parent GPU in use too).
    pub fn emit(&self, tick: &GpuTick, tree: Option<&HashSet<u32>>, out: &mut Vec<(String, f64)>) {
        let State::Ready { devices, .. } = &self.state else {
            return;
        };
        let mut used: HashSet<usize> = HashSet::new();
        for dt in &tick.devices {
            let d = &devices[dt.device];
            for &(m, v) in &dt.values {
                out.push((d.keys[m as usize].clone(), v));
            }
            if let Some(tree) = tree {
                if dt.pids.iter().any(|p| tree.contains(p)) {
                    used.insert(dt.device);
                    used.extend(d.parent);
                }
            }
        }
        for dt in tick.devices.iter().filter(|dt| used.contains(&dt.device)) {
            let d = &devices[dt.device];
            for &(m, v) in &dt.values {
                out.push((d.process_keys[m as usize].clone(), v));
            }
        }
    }

    /// Devices being sampled (physical and MIG), after the first tick.
    pub fn device_count(&self) -> usize {
        match &self.state {
            State::Ready { devices, .. } => devices.len(),
            _ => 0,
        }
    }
}

/// Lists the devices of a source; a source that cannot even count is absent.
fn enumerate(mut source: Box<dyn GpuSource>) -> State {
    let count = match source.device_count() {
        Ok(0) => {
            tracing::info!("no GPU found: no GPU metrics");
            return State::Absent;
        }
        Ok(n) => n,
        Err(e) => {
            tracing::info!(error = %e, "cannot count GPUs: no GPU metrics");
            return State::Absent;
        }
    };
    let mut devices = Vec::new();
    for index in 0..count {
        let parent = devices.len();
        devices.push(Device::new(DeviceRef::gpu(index), None));
        match source.mig_slots(index) {
            Ok(slots) => {
                for slot in slots {
                    devices.push(Device::new(DeviceRef::mig(index, slot), Some(parent)));
                }
            }
            Err(GpuError::NotSupported) => {}
            Err(e) => {
                tracing::info!(gpu = index, error = %e, "cannot list MIG instances: sampling the whole GPU only")
            }
        }
    }
    tracing::info!(
        gpus = count,
        devices = devices.len(),
        "sampling GPU metrics"
    );
    State::Ready { source, devices }
}

/// Runs one query unless it is switched off; on failure switches it off for the
/// device (or the whole device when it is lost) with one info line.
fn probe<T>(
    source: &mut dyn GpuSource,
    d: &mut Device,
    q: GpuQuery,
    f: impl FnOnce(&mut dyn GpuSource, DeviceRef) -> Result<T, GpuError>,
) -> Option<T> {
    if !d.wants(q) {
        return None;
    }
    match f(source, d.dev) {
        Ok(v) => Some(v),
        Err(GpuError::Lost) => {
            d.lost = true;
            tracing::info!(device = %d.label, "GPU lost: all its metrics are switched off");
            None
        }
        Err(e) => {
            d.off |= q.bit();
            let metrics: Vec<&str> = q.metrics().iter().map(|m| m.suffix()).collect();
            tracing::info!(
                device = %d.label,
                query = ?q,
                metrics = %metrics.join(","),
                error = %e,
                "GPU metric switched off for this device"
            );
            None
        }
    }
}

/// A query that yields one number, the metric it feeds, and how to ask it.
type Scalar = (
    GpuQuery,
    GpuMetric,
    fn(&mut dyn GpuSource, DeviceRef) -> Result<u64, GpuError>,
);

const SCALARS: &[Scalar] = &[
    (GpuQuery::SmClock, GpuMetric::SmClock, |s, d| {
        s.clock_mhz(d, Clock::Sm).map(u64::from)
    }),
    (GpuQuery::MemoryClock, GpuMetric::MemoryClock, |s, d| {
        s.clock_mhz(d, Clock::Memory).map(u64::from)
    }),
    (GpuQuery::GraphicsClock, GpuMetric::GraphicsClock, |s, d| {
        s.clock_mhz(d, Clock::Graphics).map(u64::from)
    }),
    (
        GpuQuery::CorrectedErrors,
        GpuMetric::CorrectedMemoryErrors,
        |s, d| s.memory_errors(d, EccKind::Corrected),
    ),
    (
        GpuQuery::UncorrectedErrors,
        GpuMetric::UncorrectedMemoryErrors,
        |s, d| s.memory_errors(d, EccKind::Uncorrected),
    ),
    (GpuQuery::FanSpeed, GpuMetric::FanSpeed, |s, d| {
        s.fan_speed(d).map(u64::from)
    }),
    (
        GpuQuery::EncoderUtilization,
        GpuMetric::EncoderUtilization,
        |s, d| s.encoder_utilization(d).map(u64::from),
    ),
    (GpuQuery::PcieLinkGen, GpuMetric::PcieLinkGen, |s, d| {
        s.pcie_link_gen(d).map(u64::from)
    }),
    (GpuQuery::PcieLinkWidth, GpuMetric::PcieLinkWidth, |s, d| {
        s.pcie_link_width(d).map(u64::from)
    }),
];

fn read_device(source: &mut dyn GpuSource, d: &mut Device) -> Vec<(GpuMetric, f64)> {
    use GpuMetric as M;
    let mut v: Vec<(GpuMetric, f64)> = Vec::with_capacity(GpuMetric::ALL.len());
    if let Some(u) = probe(source, d, GpuQuery::Utilization, |s, dev| {
        s.utilization(dev)
    }) {
        v.push((M::Gpu, u.gpu as f64));
        v.push((M::Memory, u.memory as f64));
    }
    if let Some(m) = probe(source, d, GpuQuery::Memory, |s, dev| s.memory(dev)) {
        if m.total > 0 {
            v.push((M::MemoryAllocated, m.used as f64 / m.total as f64 * 100.0));
        }
        v.push((M::MemoryAllocatedBytes, m.used as f64));
    }
    if let Some(t) = probe(source, d, GpuQuery::Temperature, |s, dev| {
        s.temperature(dev)
    }) {
        v.push((M::Temp, t as f64));
    }
    let power = probe(source, d, GpuQuery::Power, |s, dev| s.power_usage_mw(dev));
    let limit = probe(source, d, GpuQuery::PowerLimit, |s, dev| {
        s.enforced_power_limit_mw(dev)
    });
    if let Some(p) = power {
        v.push((M::PowerWatts, p as f64 / 1000.0));
    }
    if let Some(l) = limit {
        v.push((M::EnforcedPowerLimitWatts, l as f64 / 1000.0));
    }
    if let (Some(p), Some(l)) = (power, limit) {
        if l > 0 {
            v.push((M::PowerPercent, p as f64 / l as f64 * 100.0));
        }
    }
    for &(q, m, read) in SCALARS {
        if let Some(x) = probe(source, d, q, read) {
            v.push((m, x as f64));
        }
    }
    v.sort_by_key(|&(m, _)| m);
    v
}
