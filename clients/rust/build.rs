//! Generates the runcore.v1 messages and the RunService client from proto/ with a
//! vendored protoc, and the encoded descriptor set the Python core reflects on.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // The build script is its own single-threaded process, and prost reads PROTOC.
    #[allow(clippy::disallowed_methods)]
    std::env::set_var("PROTOC", protoc);
    // Read at run time, not with env!(), for the same reason as service/build.rs: a
    // copy of the tree sharing a target dir must read its own protos.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let descriptor =
        std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("runcore_descriptor.bin");
    tonic_prost_build::configure()
        .build_server(false)
        .btree_map(".")
        .file_descriptor_set_path(&descriptor)
        .compile_protos(&[root.join("runcore/v1/runcore.proto")], &[root])?;
    println!("cargo:rerun-if-changed=../../proto/runcore/v1");
    Ok(())
}
