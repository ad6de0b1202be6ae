use prost::Message;

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
    let fds = protox::compile(PROTOS, ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("akidb_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .type_attribute(".", "#[allow(clippy::all)]")
        .codec_path("crate::codec::Codec")
        .compile_fds(fds)?;
    Ok(())
}
