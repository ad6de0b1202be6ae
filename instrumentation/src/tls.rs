//! TLS for every port and every call between the services: rustls (TLS 1.2 and 1.3 only,
//! ring), certificates and keys in PEM files.
//!
//! - A service with `--tls-cert`/`--tls-key` serves TLS on its gRPC port and its HTTP port;
//!   with `--tls-client-ca` its gRPC port also asks every client for a certificate signed by
//!   that CA (mTLS: what storage and the aggregator use so that only the other services reach
//!   them). A handshake has [`HANDSHAKE_TIMEOUT`] to finish.
//! - Every call a process makes ([`crate::transport::channel`], the aggregator's scrapes) to
//!   an `https://` address checks the peer's certificate and name against `--ca-cert` (or the
//!   public web roots without one) and presents the process's own certificate when it has one.
//!   An address without a scheme is `https://` when `--ca-cert` is set, `http://` otherwise.
//!
//! Protocol versions are rustls's: TLS 1.2 and 1.3, nothing older.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long a client has to complete a TLS handshake (and, on the HTTP ports, to send its
/// request headers) before the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS flags of every service.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Certificate chain (PEM) of this service's gRPC and HTTP ports; with `--tls-key`, both
    /// serve TLS only. Also presented to the services it calls, for mTLS.
    #[arg(long = "tls-cert", env = "AKIDB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `--tls-cert`.
    #[arg(long = "tls-key", env = "AKIDB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Accept on the gRPC port only clients with a certificate signed by this CA (PEM): mTLS.
    #[arg(
        long = "tls-client-ca",
        env = "AKIDB_TLS_CLIENT_CA",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// CA (PEM) that signed the certificates of the services this one calls; their
    /// addresses are then `https://` unless they say otherwise, and their names are checked.
    #[arg(long = "ca-cert", env = "AKIDB_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
}

/// What a service's ports serve with.
#[derive(Clone)]
pub struct ServerTls {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mtls", &self.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

/// What a process's calls to other services use.
#[derive(Clone, Default)]
pub struct ClientTls {
    ca: Option<Vec<u8>>,
    /// (certificate chain, key), presented when a server asks for a client certificate.
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca.is_some())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

impl TlsArgs {
    /// The server side, if `--tls-cert` is set; files are read (and checked) now.
    pub fn server(&self) -> anyhow::Result<Option<ServerTls>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let tls = ServerTls {
            cert: read(cert, "certificate (--tls-cert)")?,
            key: read(key, "key (--tls-key)")?,
            client_ca: match &self.tls_client_ca {
                Some(p) => Some(read(p, "client CA (--tls-client-ca)")?),
                None => None,
            },
        };
        // Build the rustls configuration once, so that a bad file stops the start with its
        // name (tonic's is built from the same files when the gRPC port starts).
        tls.rustls()?;
        Ok(Some(tls))
    }

    /// The client side: `--ca-cert`, and this service's certificate as its identity.
    pub fn client(&self) -> anyhow::Result<ClientTls> {
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        };
        ClientTls::from_files(self.ca_cert.as_deref(), identity)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(
    pem: &[u8],
    what: &str,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let v = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{what}: not a PEM certificate"))?;
    anyhow::ensure!(!v.is_empty(), "{what}: no certificate in the file");
    Ok(v)
}

impl ServerTls {
    /// For a tonic server (the gRPC port).
    pub fn tonic(&self) -> tonic::transport::ServerTlsConfig {
        let mut c = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key))
            .timeout(HANDSHAKE_TIMEOUT);
        if let Some(ca) = &self.client_ca {
            c = c.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        c
    }

    /// For the HTTP port: HTTP/1.1 over TLS, no client certificate (the metrics token guards
    /// it).
    pub fn rustls(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let key =
            PrivateKeyDer::from_pem_slice(&self.key).context("--tls-key: not a PEM private key")?;
        let mut c = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs(&self.cert, "--tls-cert")?, key)
            .context("--tls-cert and --tls-key do not make a usable pair")?;
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        if let Some(ca) = &self.client_ca {
            certs(ca, "--tls-client-ca")?;
        }
        Ok(Arc::new(c))
    }
}

impl ClientTls {
    /// Peers checked against the CA in `ca` (PEM; the public web roots without one), and
    /// `identity` (certificate chain, key; PEM files) presented when a server asks for one.
    pub fn from_files(ca: Option<&Path>, identity: Option<(&Path, &Path)>) -> anyhow::Result<Self> {
        let ca = match ca {
            Some(p) => {
                let pem = read(p, "CA certificate")?;
                certs(&pem, &p.display().to_string())?;
                Some(pem)
            }
            None => None,
        };
        let identity = match identity {
            Some((c, k)) => Some((read(c, "client certificate")?, read(k, "client key")?)),
            None => None,
        };
        Ok(ClientTls { ca, identity })
    }

    /// The CA certificate (PEM) the peers' certificates are checked against, if one is set.
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca.as_deref()
    }

    /// This process's (certificate chain, key) in PEM, if it has one.
    pub fn identity_pem(&self) -> Option<(&[u8], &[u8])> {
        self.identity
            .as_ref()
            .map(|(c, k)| (c.as_slice(), k.as_slice()))
    }

    /// For a tonic channel to `https://` addresses.
    pub fn tonic(&self) -> tonic::transport::ClientTlsConfig {
        let mut c = tonic::transport::ClientTlsConfig::new().timeout(HANDSHAKE_TIMEOUT);
        c = match &self.ca {
            Some(ca) => c.ca_certificate(tonic::transport::Certificate::from_pem(ca)),
            None => c.with_webpki_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            c = c.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        c
    }

    /// `endpoint` with a scheme: as given, else `https://` with a CA set, `http://` without.
    pub fn url(&self, endpoint: &str) -> String {
        if endpoint.contains("://") {
            endpoint.to_string()
        } else if self.ca.is_some() {
            format!("https://{endpoint}")
        } else {
            format!("http://{endpoint}")
        }
    }
}

static CLIENT: OnceLock<ClientTls> = OnceLock::new();

/// Set what this process's calls use (once, at start; later calls are ignored).
pub fn set_client(tls: ClientTls) {
    let _ = CLIENT.set(tls);
}

/// What this process's calls use: as [`set_client`] set it, or no CA and no identity.
pub fn client() -> &'static ClientTls {
    CLIENT.get_or_init(ClientTls::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing or unreadable file stops the start with the flag's name, before any port
    /// is bound.
    #[test]
    fn a_bad_file_is_refused_with_its_flag() {
        let d = tempfile::tempdir().unwrap();
        let junk = d.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let err = |a: TlsArgs| format!("{:#}", a.server().unwrap_err());
        let e = err(TlsArgs {
            tls_cert: Some(d.path().join("missing.pem")),
            tls_key: Some(junk.clone()),
            ..Default::default()
        });
        assert!(e.contains("--tls-cert") && e.contains("missing.pem"), "{e}");
        let e = err(TlsArgs {
            tls_cert: Some(junk.clone()),
            tls_key: Some(junk.clone()),
            ..Default::default()
        });
        assert!(e.contains("--tls-key"), "{e}");
        let e = format!(
            "{:#}",
            ClientTls::from_files(Some(&junk), None).unwrap_err()
        );
        assert!(
            e.contains("junk.pem") && e.contains("no certificate"),
            "{e}"
        );
        // Without --tls-cert: plaintext, and the client side needs nothing.
        assert!(TlsArgs::default().server().unwrap().is_none());
        assert_eq!(
            TlsArgs::default().client().unwrap().url("h:1"),
            "http://h:1"
        );
    }
}
