//! etcd's v3 API (the part AkiDB uses, `proto/etcd/`) compiled with protox: no system protoc.

const PROTOS: &[&str] = &["etcd/mvccpb.proto", "etcd/etcdserverpb.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .type_attribute(".", "#[allow(clippy::all)]")
        .compile_fds(fds)?;
    Ok(())
}
