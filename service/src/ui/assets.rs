//! The page's files, built into the binary: the HTML shell, the scripts and
//! styles in `assets/`, and the chart library (uPlot, MIT, vendored under
//! `assets/vendor/` by scripts/vendor-ui.sh). Nothing is loaded from elsewhere.

use std::sync::OnceLock;

/// The HTML every page starts from.
pub const SHELL: &str = include_str!("assets/index.html");

pub struct Asset {
    pub name: &'static str,
    pub mime: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:literal) => {
        Asset {
            name: $name,
            mime: $mime,
            bytes: include_bytes!(concat!("assets/", $name)),
        }
    };
}

static ASSETS: [Asset; 13] = [
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("util.js", "text/javascript; charset=utf-8"),
    asset!("chart.js", "text/javascript; charset=utf-8"),
    asset!("projects.js", "text/javascript; charset=utf-8"),
    asset!("runs.js", "text/javascript; charset=utf-8"),
    asset!("run.js", "text/javascript; charset=utf-8"),
    asset!("media.js", "text/javascript; charset=utf-8"),
    asset!("compare.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/uPlot.min.css", "text/css; charset=utf-8"),
    asset!("vendor/uPlot.LICENSE", "text/plain; charset=utf-8"),
];

impl Asset {
    /// A validator for conditional requests: a hash of the content.
    pub fn etag(&self) -> String {
        static TAGS: OnceLock<Vec<String>> = OnceLock::new();
        let tags = TAGS.get_or_init(|| {
            ASSETS
                .iter()
                .map(|a| {
                    let h = a.bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
                    });
                    format!("\"{h:016x}\"")
                })
                .collect()
        });
        ASSETS
            .iter()
            .position(|a| a.name == self.name)
            .and_then(|i| tags.get(i).cloned())
            .unwrap_or_default()
    }
}

pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JS: &str = "text/javascript; charset=utf-8";

    #[test]
    fn every_asset_is_there_and_scripts_are_scripts() {
        for a in &ASSETS {
            assert!(!a.bytes.is_empty(), "{}", a.name);
            assert!(a.name.ends_with(".js") == (a.mime == JS), "{}", a.name);
        }
        assert!(find("vendor/uPlot.iife.min.js").is_some());
        assert!(find("../Cargo.toml").is_none());
        assert_ne!(
            find("app.js").unwrap().etag(),
            find("run.js").unwrap().etag()
        );
        assert!(SHELL.contains("/assets/app.js"));
    }
}
