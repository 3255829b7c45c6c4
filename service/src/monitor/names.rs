//! Every metric name the sampler emits, in one table: W&B's system-metric keys
//! without the `system.` prefix, so forwarded samples land on W&B's charts.

/// Process-tree CPU, % of the cores available to it (cgroup quota or cpuset when set).
pub const CPU: &str = "cpu";
/// Memory in use, % of the cgroup memory limit when one is set, else of the host.
pub const MEMORY_PERCENT: &str = "memory_percent";
/// Resident memory of the process tree, MiB.
pub const PROC_RSS_MB: &str = "proc.memory.rssMB";
/// Resident memory of the process tree, % of the memory available to it.
pub const PROC_MEMORY_PERCENT: &str = "proc.memory.percent";
/// Memory still available to the process (cgroup headroom or host available), MiB.
pub const PROC_AVAILABLE_MB: &str = "proc.memory.availableMB";
/// Threads of the process tree.
pub const PROC_THREADS: &str = "proc.cpu.threads";
/// MiB read from block devices since the watch started (host-wide).
pub const DISK_IN: &str = "disk.in";
/// MiB written to block devices since the watch started (host-wide).
pub const DISK_OUT: &str = "disk.out";
/// Bytes sent on all interfaces since the watch started.
pub const NETWORK_SENT: &str = "network.sent";
/// Bytes received on all interfaces since the watch started.
pub const NETWORK_RECV: &str = "network.recv";

/// `cpu.{i}.cpu_percent`: utilisation of host CPU `i` (opt-in).
pub fn cpu_core(i: usize) -> String {
    format!("cpu.{i}.cpu_percent")
}

/// `disk.{path}.usagePercent`, with the path as the run configured it.
pub fn disk_usage_percent(path: &str) -> String {
    format!("disk.{path}.usagePercent")
}

/// `disk.{path}.usageGB` (GiB in use on the filesystem holding `path`).
pub fn disk_usage_gb(path: &str) -> String {
    format!("disk.{path}.usageGB")
}

/// One per-device GPU metric: the `{suffix}` of `gpu.{i}.{suffix}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GpuMetric {
    /// Utilisation of the GPU's SMs over the driver's sample period, %.
    Gpu,
    /// Utilisation of the memory controller, %.
    Memory,
    /// Frame-buffer memory in use, % of total.
    MemoryAllocated,
    /// Frame-buffer memory in use, bytes.
    MemoryAllocatedBytes,
    /// Core temperature, °C.
    Temp,
    /// Power draw, W.
    PowerWatts,
    /// The power limit the driver enforces, W.
    EnforcedPowerLimitWatts,
    /// Power draw, % of the enforced limit.
    PowerPercent,
    /// SM clock, MHz.
    SmClock,
    /// Memory clock, MHz.
    MemoryClock,
    /// Graphics clock, MHz.
    GraphicsClock,
    /// Corrected ECC errors, lifetime aggregate.
    CorrectedMemoryErrors,
    /// Uncorrected ECC errors, lifetime aggregate.
    UncorrectedMemoryErrors,
    /// Fan 0 speed, % of maximum.
    FanSpeed,
    /// Video encoder utilisation, %.
    EncoderUtilization,
    /// Current PCIe link generation.
    PcieLinkGen,
    /// Current PCIe link width (lanes).
    PcieLinkWidth,
}

impl GpuMetric {
    /// Every per-device metric, in emission order.
    pub const ALL: [GpuMetric; 17] = [
        GpuMetric::Gpu,
        GpuMetric::Memory,
        GpuMetric::MemoryAllocated,
        GpuMetric::MemoryAllocatedBytes,
        GpuMetric::Temp,
        GpuMetric::PowerWatts,
        GpuMetric::EnforcedPowerLimitWatts,
        GpuMetric::PowerPercent,
        GpuMetric::SmClock,
        GpuMetric::MemoryClock,
        GpuMetric::GraphicsClock,
        GpuMetric::CorrectedMemoryErrors,
        GpuMetric::UncorrectedMemoryErrors,
        GpuMetric::FanSpeed,
        GpuMetric::EncoderUtilization,
        GpuMetric::PcieLinkGen,
        GpuMetric::PcieLinkWidth,
    ];

    /// The W&B key suffix.
    pub const fn suffix(self) -> &'static str {
        match self {
            GpuMetric::Gpu => "gpu",
            GpuMetric::Memory => "memory",
            GpuMetric::MemoryAllocated => "memoryAllocated",
            GpuMetric::MemoryAllocatedBytes => "memoryAllocatedBytes",
            GpuMetric::Temp => "temp",
            GpuMetric::PowerWatts => "powerWatts",
            GpuMetric::EnforcedPowerLimitWatts => "enforcedPowerLimitWatts",
            GpuMetric::PowerPercent => "powerPercent",
            GpuMetric::SmClock => "smClock",
            GpuMetric::MemoryClock => "memoryClock",
            GpuMetric::GraphicsClock => "graphicsClock",
            GpuMetric::CorrectedMemoryErrors => "correctedMemoryErrors",
            GpuMetric::UncorrectedMemoryErrors => "uncorrectedMemoryErrors",
            GpuMetric::FanSpeed => "fanSpeed",
            GpuMetric::EncoderUtilization => "encoderUtilization",
            GpuMetric::PcieLinkGen => "pcieLinkGen",
            GpuMetric::PcieLinkWidth => "pcieLinkWidth",
        }
    }
}

/// `gpu.{device}.{suffix}`; `device` is `0`, `1`, ... or `0.mig.1` for a MIG instance.
pub fn gpu_key(device: &str, metric: GpuMetric) -> String {
    format!("gpu.{device}.{}", metric.suffix())
}

/// `gpu.process.{device}.{suffix}`: the device's value, emitted for the devices whose
/// running-process lists include a pid of the watched tree (W&B's meaning of the key).
pub fn gpu_process_key(device: &str, metric: GpuMetric) -> String {
    format!("gpu.process.{device}.{}", metric.suffix())
}

/// The device label of MIG instance `slot` of GPU `index`.
pub fn mig_label(index: u32, slot: u32) -> String {
    format!("{index}.mig.{slot}")
}
