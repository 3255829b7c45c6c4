//! Artifact logging: a 1 GiB artifact of 1,000 files against plain `cp -r` of the
//! same files, logging it again unchanged, and a 10,000-file version with one
//! file changed. The sidecar runs in this process (`runcore::server::serve` on
//! 127.0.0.1:0), so the bytes this process reads (`rchar` of `/proc/self/io`,
//! which counts `read(2)` and the kernel copy alike) are the sidecar's reads of
//! the sources: hashing reads each file once, copying new content into the store
//! reads it a second time, so no file is read more than twice (2.00x the data);
//! an unchanged file is not read at all (its digests are cached by inode, size
//! and change times).
//!
//! ```text
//! cargo bench --bench artifacts                       # 1,000 x 1049 KiB (1 GiB) and 10,000 x 4 KiB
//! cargo bench --bench artifacts -- --files 100 --file-kib 1024 --small-files 1000
//! cargo bench --bench artifacts -- --fsync never      # blobs not fsynced (like cp)
//! ```
//!
//! Data lives under `$RUNCORE_BENCH_DIR` (default: the system temp dir), on one
//! file system, and is removed at the end: at most about twice the artifact's size
//! is on disk at once (the sources and the store).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runcore::proto::v1::add_artifact_files_request::Item;
use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{
    AddArtifactFilesRequest, AddArtifactFilesResponse, ArtifactFileSource, CommitArtifactRequest,
    CommitArtifactResponse, CreateArtifactRequest, InitRequest, SystemMetricsSettings,
};
use runcore::wal::FsyncPolicy;
use tonic::transport::Channel;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Client = RunServiceClient<Channel>;

struct Opts {
    files: usize,
    file_kib: usize,
    small_files: usize,
    fsync: String,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        files: 1000,
        file_kib: 1049,
        small_files: 10_000,
        fsync: "batch".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|e| format!("{s}: {e}"));
        match a.as_str() {
            "--bench" => {}
            "--files" => o.files = num(val("--files")?)?,
            "--file-kib" => o.file_kib = num(val("--file-kib")?)?,
            "--small-files" => o.small_files = num(val("--small-files")?)?,
            "--fsync" => o.fsync = val("--fsync")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// Writes `n` files of `bytes` each, distinct content, under `dir`.
fn make_files(dir: &Path, n: usize, bytes: usize, seed: u64) -> std::io::Result<()> {
    let mut state = seed | 1;
    let mut buf = vec![0u8; bytes];
    for i in 0..n {
        for word in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let b = state.to_le_bytes();
            word.copy_from_slice(&b[..word.len()]);
        }
        let sub = dir.join(format!("{:03}", i / 1000));
        std::fs::create_dir_all(&sub)?;
        std::fs::write(sub.join(format!("{i:05}.bin")), &buf)?;
    }
    Ok(())
}

/// Bytes this process has read through read(2) and friends.
fn rchar() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("rchar:").map(|v| v.trim().parse().ok()))
                .flatten()
        })
        .unwrap_or(0)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Logs every file under `src` as artifact `name`; the replies and the time taken.
async fn log(
    c: &mut Client,
    name: &str,
    src: &Path,
) -> Result<(CommitArtifactResponse, AddArtifactFilesResponse, Duration), BoxError> {
    let t = Instant::now();
    let draft = c
        .create_artifact(CreateArtifactRequest {
            run_id: "bench".into(),
            name: name.into(),
            r#type: "dataset".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .draft_id;
    let msgs: Vec<AddArtifactFilesRequest> = files_under(src)
        .into_iter()
        .map(|p| AddArtifactFilesRequest {
            draft_id: draft.clone(),
            item: Some(Item::File(ArtifactFileSource {
                path: p.strip_prefix(src).unwrap_or(&p).display().to_string(),
                source: p.display().to_string(),
                sha256: String::new(),
            })),
        })
        .collect();
    let added = c
        .add_artifact_files(tokio_stream::iter(msgs))
        .await?
        .into_inner();
    let done = c
        .commit_artifact(CommitArtifactRequest { draft_id: draft })
        .await?
        .into_inner();
    Ok((done, added, t.elapsed()))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

async fn large(c: &mut Client, root: &Path, data_dir: &Path, o: &Opts) -> Result<(), BoxError> {
    let src = root.join("large");
    let size = (o.files * o.file_kib * 1024) as u64;
    make_files(&src, o.files, o.file_kib * 1024, 0x9e37_79b9)?;
    let copy = root.join("copy");
    let t = Instant::now();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(&copy)
        .status()?;
    let cp = t.elapsed();
    std::fs::remove_dir_all(&copy)?;
    if !status.success() {
        return Err("cp failed".into());
    }
    let before = rchar();
    let (done, added, took) = log(c, "large", &src).await?;
    let read1 = rchar() - before;
    let blobs = data_dir.join("artifacts").join("blobs");
    let stored = dir_bytes(&blobs);
    println!("1. {} files, {:.0} MiB:", o.files, mib(size));
    println!(
        "   cp -r                 {:>8.3} s  {:>8.1} MiB/s",
        cp.as_secs_f64(),
        mib(size) / cp.as_secs_f64()
    );
    println!(
        "   log_artifact          {:>8.3} s  {:>8.1} MiB/s  ({} {}, {:.0} MiB copied into the store, {:.2}x the data read)",
        took.as_secs_f64(),
        mib(size) / took.as_secs_f64(),
        done.artifact.as_ref().map(|a| a.version.as_str()).unwrap_or("?"),
        if done.existing { "existing" } else { "new" },
        mib(added.bytes_stored),
        read1 as f64 / size as f64,
    );
    let before = rchar();
    let (done, added, took) = log(c, "large", &src).await?;
    let read2 = rchar() - before;
    println!(
        "2. again, unchanged      {:>8.3} s                 ({} {}, {} bytes copied, {} bytes read, store {:.0} -> {:.0} MiB)",
        took.as_secs_f64(),
        done.artifact.as_ref().map(|a| a.version.as_str()).unwrap_or("?"),
        if done.existing { "existing" } else { "new" },
        added.bytes_stored,
        read2,
        mib(stored),
        mib(dir_bytes(&blobs)),
    );
    std::fs::remove_dir_all(&src)?;
    Ok(())
}

async fn many(c: &mut Client, root: &Path, data_dir: &Path, o: &Opts) -> Result<(), BoxError> {
    let src = root.join("many");
    make_files(&src, o.small_files, 4096, 0x5bd1_e995)?;
    let (_, _, first) = log(c, "many", &src).await?;
    let blobs = data_dir.join("artifacts").join("blobs");
    let count = files_under(&blobs).len();
    let changed = &files_under(&src)[o.small_files / 2];
    std::fs::write(changed, b"one changed file")?;
    let before = rchar();
    let (done, added, took) = log(c, "many", &src).await?;
    println!("3. {} files of 4 KiB:", o.small_files);
    println!("   first version          {:>8.3} s", first.as_secs_f64());
    println!(
        "   one file changed       {:>8.3} s  ({}, {} blob(s) added, {} bytes copied, {} bytes read)",
        took.as_secs_f64(),
        done.artifact.as_ref().map(|a| a.version.as_str()).unwrap_or("?"),
        files_under(&blobs).len() - count,
        added.bytes_stored,
        rchar() - before,
    );
    std::fs::remove_dir_all(&src)?;
    Ok(())
}

async fn bench(o: Opts) -> Result<(), BoxError> {
    let base = std::env::var_os("RUNCORE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(base)?;
    let data_dir = tmp.path().join("data");
    let mut config = runcore::config::ServeConfig::new(data_dir.clone());
    config.fsync = match o.fsync.as_str() {
        "always" => FsyncPolicy::Always,
        "batch" => FsyncPolicy::Batch,
        "never" => FsyncPolicy::Never,
        other => return Err(format!("--fsync {other}: always, batch or never").into()),
    };
    let listener = runcore::listen::Listener::bind(&config.listen, None).await?;
    let addr = listener.local_addr().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(runcore::server::serve(listener, config, async move {
        let _ = stopped.await;
    }));
    let mut c = Client::new(runcore::client::connect(&addr.parse()?).await?);
    c.init(InitRequest {
        id: "bench".into(),
        project: "bench".into(),
        system_metrics: Some(SystemMetricsSettings {
            disabled: true,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await?;
    println!(
        "artifact logging (fsync {}), data in {}",
        o.fsync,
        tmp.path().display()
    );
    large(&mut c, tmp.path(), &data_dir, &o).await?;
    many(&mut c, tmp.path(), &data_dir, &o).await?;
    let _ = stop.send(());
    served.await??;
    Ok(())
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("artifacts bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = rt.block_on(bench(opts)) {
        eprintln!("artifacts bench: {e}");
        std::process::exit(1);
    }
}
