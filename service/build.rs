//! Generates the Rust code for proto/ with a vendored protoc, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // The build script is its own single-threaded process, and prost reads PROTOC.
    #[allow(clippy::disallowed_methods)]
    std::env::set_var("PROTOC", protoc);
    // Read at run time: env!() would freeze the path of the tree the build script was
    // first compiled in, and a copy of the tree sharing the target dir would then
    // read the wrong protos.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let descriptor =
        std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("runcore_descriptor.bin");
    tonic_prost_build::configure()
        .btree_map(".")
        .file_descriptor_set_path(&descriptor)
        .compile_protos(
            &[
                root.join("runcore/v1/runcore.proto"),
                root.join("runcore/wal/v1/wal.proto"),
                root.join("runcore/wandb/v1/service.proto"),
            ],
            &[root],
        )?;
    println!("cargo:rerun-if-changed=../proto");
    Ok(())
}
