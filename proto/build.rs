const PROTOS: &[&str] = &[
    "akidb/v1/common.proto",
    "akidb/v1/collection.proto",
    "akidb/v1/ingest.proto",
    "akidb/v1/query.proto",
    "akidb/v1/storage.proto",
    "akidb/v1/telemetry.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=akidb");
    println!("cargo:rerun-if-changed=google");
    // With comments (the OpenAPI document's descriptions) and the options as written (the
    // `google.api.http` rules, which prost_types' descriptors would drop).
    let mut compiler = protox::Compiler::new(["."])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("akidb_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    // The generated Rust keeps no proto comments (as before): rustdoc would take their
    // indented lines for doctests.
    let mut fds = compiler.file_descriptor_set();
    for f in &mut fds.file {
        f.source_code_info = None;
    }
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .type_attribute(".", "#[allow(clippy::all)]")
        .codec_path("crate::codec::Codec")
        .compile_fds(fds)?;
    Ok(())
}
