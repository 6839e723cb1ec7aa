//! The server side: certificate chain and key, optional client-certificate checks.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::{pem, provider};
use crate::defaults::DEFAULT_HANDSHAKE_TIMEOUT;
use crate::error::{Error, Result};

/// What a TLS server needs: a rustls [`ServerConfig`](rustls::ServerConfig) and the
/// handshake timeout. Cheap to clone.
///
/// Build one from PEM files with [`from_pem_files`](Self::from_pem_files) (then the
/// [`TlsServerBuilder`] adds client-certificate checks and ALPN), or wrap a config you
/// built yourself with [`new`](Self::new).
#[derive(Clone)]
pub struct TlsServerConfig {
    pub(crate) rustls: Arc<rustls::ServerConfig>,
    /// As set; `None` for the default.
    pub(crate) handshake_timeout: Option<Duration>,
}

impl fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerConfig")
            .field("alpn_protocols", &self.rustls.alpn_protocols)
            .field("handshake_timeout", &self.handshake_limit())
            .finish_non_exhaustive()
    }
}

impl TlsServerConfig {
    /// Uses `config` as it is, with the default handshake timeout
    /// ([`DEFAULT_HANDSHAKE_TIMEOUT`](crate::defaults::DEFAULT_HANDSHAKE_TIMEOUT)).
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        TlsServerConfig {
            rustls: config,
            handshake_timeout: None,
        }
    }

    /// Starts a config that presents `cert_chain` (leaf first) and proves it with `key`.
    pub fn builder(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> TlsServerBuilder {
        TlsServerBuilder {
            cert_chain,
            key,
            client_roots: None,
            client_auth_optional: false,
            alpn: Vec::new(),
        }
    }

    /// Starts a config from a PEM file with the certificate chain (leaf first) and one
    /// with the private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsServerBuilder> {
        Ok(Self::builder(
            pem::certs_from_file(cert_chain.as_ref())?,
            pem::key_from_file(key.as_ref())?,
        ))
    }

    /// Like [`from_pem_files`](Self::from_pem_files), from PEM text in memory.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<TlsServerBuilder> {
        Ok(Self::builder(
            pem::certs_from_pem(cert_chain)?,
            pem::key_from_pem(key)?,
        ))
    }

    /// How long a handshake may take before the connection is dropped. Default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`](crate::defaults::DEFAULT_HANDSHAKE_TIMEOUT).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// How long a handshake may take: as set, or the default.
    pub(crate) fn handshake_limit(&self) -> Duration {
        self.handshake_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT)
    }

    /// Whether a handshake timeout was set (for endpoints that cannot honour one).
    pub(crate) fn handshake_timeout_set(&self) -> bool {
        self.handshake_timeout.is_some()
    }

    /// The rustls config in use.
    pub fn rustls_config(&self) -> &Arc<rustls::ServerConfig> {
        &self.rustls
    }
}

/// Builds a [`TlsServerConfig`]: made by [`TlsServerConfig::builder`],
/// [`from_pem_files`](TlsServerConfig::from_pem_files) or
/// [`from_pem`](TlsServerConfig::from_pem).
pub struct TlsServerBuilder {
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: Option<RootCertStore>,
    client_auth_optional: bool,
    alpn: Vec<Vec<u8>>,
}

impl fmt::Debug for TlsServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerBuilder")
            .field("cert_chain_len", &self.cert_chain.len())
            .field("client_roots", &self.client_roots.as_ref().map(|r| r.len()))
            .field("client_auth_optional", &self.client_auth_optional)
            .finish_non_exhaustive()
    }
}

impl TlsServerBuilder {
    /// Mutual TLS: clients must present a certificate that chains to one in this PEM
    /// file. Can be called more than once; the roots add up. Default: no client
    /// certificate is asked for.
    pub fn client_ca_file(self, path: impl AsRef<Path>) -> Result<Self> {
        let certs = pem::certs_from_file(path.as_ref())?;
        self.add_client_roots(certs)
    }

    /// Like [`client_ca_file`](Self::client_ca_file), from PEM text in memory.
    pub fn client_ca_pem(self, pem: &[u8]) -> Result<Self> {
        let certs = pem::certs_from_pem(pem)?;
        self.add_client_roots(certs)
    }

    /// Like [`client_ca_file`](Self::client_ca_file), from a ready root store.
    pub fn client_roots(mut self, roots: RootCertStore) -> Self {
        match &mut self.client_roots {
            Some(have) => have.roots.extend(roots.roots),
            None => self.client_roots = Some(roots),
        }
        self
    }

    fn add_client_roots(mut self, certs: Vec<CertificateDer<'static>>) -> Result<Self> {
        let roots = self.client_roots.get_or_insert_with(RootCertStore::empty);
        pem::add_roots(roots, certs)?;
        Ok(self)
    }

    /// With client roots set: also accept clients that present no certificate (those
    /// that present one must still pass the check). Default: a certificate is required.
    pub fn client_auth_optional(mut self, optional: bool) -> Self {
        self.client_auth_optional = optional;
        self
    }

    /// The ALPN protocols the server speaks, most preferred first, e.g.
    /// `["my-proto/1"]`. Default: none (ALPN is not negotiated).
    pub fn alpn_protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<Vec<u8>>,
    {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Checks the certificate and key and builds the config (TLS 1.2 and 1.3, ring).
    pub fn build(self) -> Result<TlsServerConfig> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| Error::tls(format!("cannot build the server config: {err}")))?;
        let builder = match self.client_roots {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.client_auth_optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier.build().map_err(|err| {
                    Error::tls(format!("cannot build the client certificate check: {err}"))
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(self.cert_chain, self.key)
            .map_err(|err| Error::tls(format!("unusable certificate or key: {err}")))?;
        config.alpn_protocols = self.alpn;
        Ok(TlsServerConfig {
            rustls: Arc::new(config),
            handshake_timeout: None,
        })
    }
}
