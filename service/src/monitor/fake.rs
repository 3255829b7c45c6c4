//! A fake GPU set for tests and the sampler benchmark: deterministic readings, pids
//! that a test places on a device, queries that a device fails, and a count of the
//! calls each query received (to check that a failing query is not asked again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::gpu::{
    Clock, DeviceRef, DriverInfo, EccKind, GpuError, GpuInfo, GpuQuery, GpuSource, MemoryInfo,
    Utilization,
};

/// One fake GPU (or MIG instance); every reading is a plain field.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeGpu {
    pub name: String,
    pub uuid: String,
    pub utilization: Utilization,
    pub memory: MemoryInfo,
    pub temperature: u32,
    pub power_mw: u32,
    pub power_limit_mw: u32,
    pub sm_clock: u32,
    pub memory_clock: u32,
    pub graphics_clock: u32,
    pub corrected_errors: u64,
    pub uncorrected_errors: u64,
    pub fan_speed: u32,
    pub encoder_utilization: u32,
    pub pcie_link_gen: u32,
    pub pcie_link_width: u32,
    pub pids: Vec<u32>,
    /// Queries this device answers with the given error.
    pub failing: Vec<(GpuQuery, GpuError)>,
    /// MIG instances by slot (readings other than memory and pids are ignored).
    pub mig: Vec<(u32, FakeGpu)>,
}

impl FakeGpu {
    /// GPU `i` with readings derived from `i`, so each device's values differ:
    /// utilisation 50+i / 20+i %, 10 GiB (+i GiB) of 80 GiB used, 60+i °C,
    /// (200+i) W of a 400 W limit, clocks 1400+i / 1500+i / 1600+i MHz, i and 0
    /// ECC errors, fan 30+i %, encoder i %, PCIe gen 4 x16.
    pub fn numbered(i: u32) -> FakeGpu {
        const GIB: u64 = 1 << 30;
        FakeGpu {
            name: "Fake H100 80GB HBM3".into(),
            uuid: format!("GPU-00000000-0000-0000-0000-{i:012}"),
            utilization: Utilization {
                gpu: 50 + i,
                memory: 20 + i,
            },
            memory: MemoryInfo {
                used: (10 + i as u64) * GIB,
                total: 80 * GIB,
            },
            temperature: 60 + i,
            power_mw: (200 + i) * 1000,
            power_limit_mw: 400_000,
            sm_clock: 1400 + i,
            memory_clock: 1500 + i,
            graphics_clock: 1600 + i,
            corrected_errors: i as u64,
            uncorrected_errors: 0,
            fan_speed: 30 + i,
            encoder_utilization: i,
            pcie_link_gen: 4,
            pcie_link_width: 16,
            pids: Vec::new(),
            failing: Vec::new(),
            mig: Vec::new(),
        }
    }

    fn check(&self, q: GpuQuery) -> Result<(), GpuError> {
        match self.failing.iter().find(|(f, _)| *f == q) {
            Some((_, e)) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

#[derive(Default)]
struct State {
    devices: Vec<FakeGpu>,
    calls: HashMap<(DeviceRef, GpuQuery), u64>,
}

/// A fake device set. Clones share state: a test keeps one clone to change readings
/// or read call counts while the sampler owns another.
#[derive(Clone, Default)]
pub struct FakeGpus {
    state: Arc<Mutex<State>>,
}

impl FakeGpus {
    /// `n` GPUs made by [`FakeGpu::numbered`].
    pub fn new(n: u32) -> FakeGpus {
        FakeGpus::with_devices((0..n).map(FakeGpu::numbered).collect())
    }

    pub fn with_devices(devices: Vec<FakeGpu>) -> FakeGpus {
        FakeGpus {
            state: Arc::new(Mutex::new(State {
                devices,
                calls: HashMap::new(),
            })),
        }
    }

    /// A boxed clone, ready for `Monitor::new(Some(..))`.
    pub fn boxed(&self) -> Box<dyn GpuSource> {
        Box::new(self.clone())
    }

    /// Changes the devices in place (readings, pids, failures).
    pub fn update(&self, f: impl FnOnce(&mut Vec<FakeGpu>)) {
        f(&mut self.lock().devices)
    }

    /// How many times `q` was asked of `dev`.
    pub fn calls(&self, dev: DeviceRef, q: GpuQuery) -> u64 {
        self.lock().calls.get(&(dev, q)).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts the call, finds the device and applies its failure list.
    fn ask<T>(
        &self,
        dev: DeviceRef,
        q: GpuQuery,
        f: impl FnOnce(&FakeGpu) -> T,
    ) -> Result<T, GpuError> {
        let mut st = self.lock();
        *st.calls.entry((dev, q)).or_default() += 1;
        let gpu = find(&st.devices, dev)?;
        gpu.check(q)?;
        Ok(f(gpu))
    }
}

fn find(devices: &[FakeGpu], dev: DeviceRef) -> Result<&FakeGpu, GpuError> {
    let gpu = devices
        .get(dev.index as usize)
        .ok_or_else(|| GpuError::Failed("invalid device index".into()))?;
    match dev.mig {
        None => Ok(gpu),
        Some(slot) => gpu
            .mig
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, g)| g)
            .ok_or_else(|| GpuError::Failed("no such MIG instance".into())),
    }
}

impl GpuSource for FakeGpus {
    fn device_count(&mut self) -> Result<u32, GpuError> {
        Ok(self.lock().devices.len() as u32)
    }

    fn mig_slots(&mut self, index: u32) -> Result<Vec<u32>, GpuError> {
        let st = self.lock();
        Ok(st
            .devices
            .get(index as usize)
            .map(|g| g.mig.iter().map(|(s, _)| *s).collect())
            .unwrap_or_default())
    }

    fn utilization(&mut self, dev: DeviceRef) -> Result<Utilization, GpuError> {
        self.ask(dev, GpuQuery::Utilization, |g| g.utilization)
    }

    fn memory(&mut self, dev: DeviceRef) -> Result<MemoryInfo, GpuError> {
        self.ask(dev, GpuQuery::Memory, |g| g.memory)
    }

    fn temperature(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.ask(dev, GpuQuery::Temperature, |g| g.temperature)
    }

    fn power_usage_mw(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.ask(dev, GpuQuery::Power, |g| g.power_mw)
    }

    fn enforced_power_limit_mw(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.ask(dev, GpuQuery::PowerLimit, |g| g.power_limit_mw)
    }

    fn clock_mhz(&mut self, dev: DeviceRef, clock: Clock) -> Result<u32, GpuError> {
        match clock {
            Clock::Sm => self.ask(dev, GpuQuery::SmClock, |g| g.sm_clock),
            Clock::Memory => self.ask(dev, GpuQuery::MemoryClock, |g| g.memory_clock),
            Clock::Graphics => self.ask(dev, GpuQuery::GraphicsClock, |g| g.graphics_clock),
        }
    }

    fn memory_errors(&mut self, dev: DeviceRef, kind: EccKind) -> Result<u64, GpuError> {
        match kind {
            EccKind::Corrected => self.ask(dev, GpuQuery::CorrectedErrors, |g| g.corrected_errors),
            EccKind::Uncorrected => {
                self.ask(dev, GpuQuery::UncorrectedErrors, |g| g.uncorrected_errors)
            }
        }
    }

    fn fan_speed(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.ask(dev, GpuQuery::FanSpeed, |g| g.fan_speed)
    }

    fn encoder_utilization(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.ask(dev, GpuQuery::EncoderUtilization, |g| g.encoder_utilization)
    }

    fn pcie_link_gen(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.ask(dev, GpuQuery::PcieLinkGen, |g| g.pcie_link_gen)
    }

    fn pcie_link_width(&mut self, dev: DeviceRef) -> Result<u32, GpuError> {
        self.ask(dev, GpuQuery::PcieLinkWidth, |g| g.pcie_link_width)
    }

    fn processes(&mut self, dev: DeviceRef) -> Result<Vec<u32>, GpuError> {
        self.ask(dev, GpuQuery::Processes, |g| g.pids.clone())
    }

    fn info(&mut self, dev: DeviceRef) -> Result<GpuInfo, GpuError> {
        let st = self.lock();
        let g = find(&st.devices, dev)?;
        Ok(GpuInfo {
            name: g.name.clone(),
            uuid: g.uuid.clone(),
            memory_total: g.memory.total,
            architecture: Some("Hopper".into()),
            cuda_cores: Some(16896),
            compute_capability: Some("9.0".into()),
        })
    }

    fn driver(&mut self) -> DriverInfo {
        DriverInfo {
            driver_version: Some("550.54.15".into()),
            cuda_version: Some("12.4".into()),
        }
    }
}
