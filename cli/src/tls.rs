//! `akidb tls init` and `akidb up --tls`: a local CA and the certificates the services serve
//! and call with (rcgen; ECDSA P-256).
//!
//! One directory holds `ca.pem` (what clients check the services against: `--ca-cert`),
//! `ca.key` (kept to sign more, mode 0600), `server.pem`/`server.key` (every service's ports;
//! named for `localhost`, `127.0.0.1`, `::1` and the hosts asked for; also its client
//! certificate towards storage and the aggregator, which ask for one) and
//! `client.pem`/`client.key` (for an operator's `akidb --client-cert` against storage). Files
//! that exist are kept, so `akidb up --tls` starts with the same CA every time.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, clap::Args)]
pub struct TlsInitArgs {
    /// Directory to write the CA and certificates to (made if missing; existing files are
    /// kept).
    #[arg(long)]
    pub dir: PathBuf,
    /// Names and addresses the server certificate is for, besides localhost, 127.0.0.1 and
    /// ::1 (repeat, or comma-separated).
    #[arg(long = "host", value_delimiter = ',')]
    pub hosts: Vec<String>,
}

/// Where the files of one TLS directory are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsFiles {
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}

pub fn init(a: &TlsInitArgs) -> anyhow::Result<()> {
    let files = ensure(&a.dir, &a.hosts)?;
    println!(
        "CA certificate (clients: --ca-cert / AKIDB_CA_CERT): {}",
        files.ca.display()
    );
    println!(
        "service certificate and key (--tls-cert, --tls-key): {} {}",
        files.server_cert.display(),
        files.server_key.display()
    );
    println!(
        "client certificate and key (mTLS; akidb --client-cert, --client-key): {} {}",
        files.client_cert.display(),
        files.client_key.display()
    );
    Ok(())
}

/// Write a new file readable by its owner only.
pub fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(pem.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn write_public(path: &Path, pem: &str) -> anyhow::Result<()> {
    std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))
}

/// The CA and certificates in `dir`, made where missing. The server certificate is made
/// anew when a host it lacks is asked for.
pub fn ensure(dir: &Path, hosts: &[String]) -> anyhow::Result<TlsFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = TlsFiles::in_dir(dir);
    let ca_key_path = dir.join("ca.key");
    // The CA's parameters are always these: with its key they sign as the CA did (same
    // subject, same key identifier).
    let ca_params = || -> anyhow::Result<CertificateParams> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name
            .push(DnType::CommonName, "AkiDB local CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ok(p)
    };
    let ca_key = if files.ca.exists() && ca_key_path.exists() {
        KeyPair::from_pem(&std::fs::read_to_string(&ca_key_path)?)
            .with_context(|| format!("{} is not a PEM private key", ca_key_path.display()))?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        let _ = std::fs::remove_file(&ca_key_path);
        write_private(&ca_key_path, &key.serialize_pem())?;
        write_public(&files.ca, &cert.pem())?;
        // A new CA: certificates of an old one are of no use.
        for f in [&files.server_cert, &files.client_cert] {
            let _ = std::fs::remove_file(f);
        }
        key
    };
    let issuer = Issuer::new(ca_params()?, ca_key);

    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for h in hosts {
        if !h.is_empty() && !names.contains(h) {
            names.push(h.clone());
        }
    }
    let names_file = dir.join("server.names");
    let current = std::fs::read_to_string(&names_file).unwrap_or_default();
    let covered = names.iter().all(|n| current.lines().any(|l| l == n));
    if !(covered && files.server_cert.exists() && files.server_key.exists()) {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(names.clone())?;
        p.distinguished_name.push(DnType::CommonName, "akidb");
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Every service also calls storage and the aggregator with it (mTLS).
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.signed_by(&key, &issuer)?;
        let _ = std::fs::remove_file(&files.server_key);
        write_private(&files.server_key, &key.serialize_pem())?;
        write_public(&files.server_cert, &cert.pem())?;
        write_public(&names_file, &(names.join("\n") + "\n"))?;
    }
    if !(files.client_cert.exists() && files.client_key.exists()) {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name
            .push(DnType::CommonName, "akidb operator");
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &issuer)?;
        let _ = std::fs::remove_file(&files.client_key);
        write_private(&files.client_key, &key.serialize_pem())?;
        write_public(&files.client_cert, &cert.pem())?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_keeps_the_ca_and_a_new_host_renews_the_server_certificate() {
        let d = tempfile::tempdir().unwrap();
        let f = ensure(d.path(), &[]).unwrap();
        let ca = std::fs::read(&f.ca).unwrap();
        let server = std::fs::read(&f.server_cert).unwrap();
        let client = std::fs::read(&f.client_cert).unwrap();
        let f = ensure(d.path(), &[]).unwrap();
        assert_eq!(std::fs::read(&f.ca).unwrap(), ca);
        assert_eq!(std::fs::read(&f.server_cert).unwrap(), server);
        let f = ensure(d.path(), &["db.example".into()]).unwrap();
        assert_eq!(std::fs::read(&f.ca).unwrap(), ca);
        assert_ne!(std::fs::read(&f.server_cert).unwrap(), server);
        assert_eq!(std::fs::read(&f.client_cert).unwrap(), client);
        use std::os::unix::fs::PermissionsExt;
        for k in ["ca.key", "server.key", "client.key"] {
            let mode = std::fs::metadata(d.path().join(k))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{k} readable by others");
        }
        // What the services load: a usable server configuration and client configuration.
        let args = akidb_instrumentation::tls::TlsArgs {
            tls_cert: Some(f.server_cert.clone()),
            tls_key: Some(f.server_key.clone()),
            tls_client_ca: Some(f.ca.clone()),
            ca_cert: Some(f.ca.clone()),
        };
        assert!(args.server().unwrap().is_some());
        args.client().unwrap();
        // The renewed certificate, signed by the CA as loaded again, chains to the CA file
        // and is for the new host.
        verify(&f, "db.example").unwrap();
        verify(&f, "localhost").unwrap();
        assert!(verify(&f, "other.example").is_err());
        let other = tempfile::tempdir().unwrap();
        let g = ensure(other.path(), &[]).unwrap();
        let mixed = TlsFiles { ca: g.ca, ..f };
        assert!(
            verify(&mixed, "localhost").is_err(),
            "another CA's certificate accepted"
        );
    }

    fn verify(f: &TlsFiles, name: &str) -> Result<(), rustls::Error> {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&f.ca).unwrap())
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let cert = CertificateDer::from_pem_file(&f.server_cert).unwrap();
        verifier
            .verify_server_cert(
                &cert,
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }
}
