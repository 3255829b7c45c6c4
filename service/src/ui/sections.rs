//! Which section of the run page a chart goes in: history metrics by their
//! prefix, system metrics by device (the keys are `monitor::names`' with
//! `system.` in front).

/// The section of a history key: the top-level key of a nested one (`val` for
/// `val.loss`), else the part before the first `/` (`train` for `train/loss`),
/// else the general section.
pub fn history_section(key: &str, top: &str) -> String {
    if top != key {
        return top.to_owned();
    }
    match key.split_once('/') {
        Some((prefix, _)) if !prefix.is_empty() => prefix.to_owned(),
        _ => "Charts".to_owned(),
    }
}

/// The section of a system metric key.
pub fn system_section(key: &str) -> String {
    let k = key.strip_prefix("system.").unwrap_or(key);
    if let Some(rest) = k.strip_prefix("gpu.process.") {
        return format!("GPU {} (this process)", leading_index(rest));
    }
    if let Some(rest) = k.strip_prefix("gpu.") {
        return format!("GPU {}", leading_index(rest));
    }
    let section = if k == "cpu" || k.starts_with("cpu.") || k == "proc.cpu.threads" {
        "CPU"
    } else if k == "memory_percent" || k.starts_with("proc.memory.") {
        "Memory"
    } else if k.starts_with("disk.") {
        "Disk"
    } else if k.starts_with("network.") {
        "Network"
    } else {
        "Other"
    };
    section.to_owned()
}

/// `0` of `0.temp`.
fn leading_index(rest: &str) -> &str {
    rest.split('.').next().unwrap_or(rest)
}

/// Where a section goes on the page: history sections alphabetically with the
/// general one first; system sections CPU, memory, disk, network, then GPUs.
pub fn section_rank(section: &str) -> (u8, String) {
    let rank = match section {
        "Charts" | "CPU" => 0,
        "Memory" => 1,
        "Disk" => 2,
        "Network" => 3,
        s if s.starts_with("GPU ") => 4,
        "Other" => 5,
        _ => 1,
    };
    (rank, section.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_by_prefix_and_by_device() {
        assert_eq!(history_section("train/loss", "train/loss"), "train");
        assert_eq!(history_section("val.loss", "val"), "val");
        assert_eq!(history_section("loss", "loss"), "Charts");
        assert_eq!(history_section("/odd", "/odd"), "Charts");
        assert_eq!(system_section("system.cpu"), "CPU");
        assert_eq!(system_section("system.cpu.3.cpu_percent"), "CPU");
        assert_eq!(system_section("system.proc.memory.rssMB"), "Memory");
        assert_eq!(system_section("system.disk./.usagePercent"), "Disk");
        assert_eq!(system_section("system.network.sent"), "Network");
        assert_eq!(system_section("system.gpu.1.temp"), "GPU 1");
        assert_eq!(
            system_section("system.gpu.process.0.gpu"),
            "GPU 0 (this process)"
        );
        assert!(section_rank("GPU 0") > section_rank("Network"));
    }
}
