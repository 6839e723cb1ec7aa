//! The client side: trusted roots, the server name, an optional client certificate.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::RootCertStore;

use super::{pem, provider};
use crate::defaults::DEFAULT_HANDSHAKE_TIMEOUT;
use crate::error::{Error, Result};

/// What a TLS client needs: a rustls [`ClientConfig`](rustls::ClientConfig), the server
/// name to ask for and check, and the handshake timeout. Cheap to clone.
///
/// Build one with [`builder`](Self::builder), or wrap a config you built yourself with
/// [`new`](Self::new).
#[derive(Clone)]
pub struct TlsClientConfig {
    pub(crate) rustls: Arc<rustls::ClientConfig>,
    pub(crate) server_name: Option<Arc<str>>,
    /// As set; `None` for the default.
    pub(crate) handshake_timeout: Option<Duration>,
}

impl fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientConfig")
            .field("alpn_protocols", &self.rustls.alpn_protocols)
            .field("handshake_timeout", &self.handshake_limit())
            .finish_non_exhaustive()
    }
}

impl TlsClientConfig {
    /// Uses `config` as it is, with the server name taken from the address and the
    /// default handshake timeout ([`DEFAULT_HANDSHAKE_TIMEOUT`](crate::defaults::DEFAULT_HANDSHAKE_TIMEOUT)).
    pub fn new(config: Arc<rustls::ClientConfig>) -> Self {
        TlsClientConfig {
            rustls: config,
            server_name: None,
            handshake_timeout: None,
        }
    }

    /// Starts a config that trusts nothing yet: add roots before
    /// [`build`](TlsClientBuilder::build).
    pub fn builder() -> TlsClientBuilder {
        TlsClientBuilder {
            roots: RootCertStore::empty(),
            client_cert: None,
            alpn: Vec::new(),
        }
    }

    /// The name sent for SNI and checked against the server's certificate. Default: the
    /// host part of the client's address (a DNS name or an IP address). Fails with
    /// [`ErrorKind::Tls`](crate::ErrorKind::Tls) for a string that is neither.
    pub fn server_name(mut self, name: impl Into<String>) -> Result<Self> {
        let name: Arc<str> = Arc::from(name.into());
        parse_server_name(&name)?;
        self.server_name = Some(name);
        Ok(self)
    }

    /// How long a handshake may take before the dial fails with an
    /// [`ErrorKind::Tls`](crate::ErrorKind::Tls). Default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`](crate::defaults::DEFAULT_HANDSHAKE_TIMEOUT). The
    /// client's connect timeout (3 s by default) bounds the whole dial, handshake included,
    /// so the shorter of the two applies.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// How long a handshake may take: as set, or the default.
    pub(crate) fn handshake_limit(&self) -> Duration {
        self.handshake_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT)
    }

    /// The rustls config in use.
    pub fn rustls_config(&self) -> &Arc<rustls::ClientConfig> {
        &self.rustls
    }

    /// The server name for a dial to `addr`: the one set, or the address's host.
    pub(crate) fn server_name_for(&self, addr: &str) -> Result<ServerName<'static>> {
        let name = match &self.server_name {
            Some(name) => name.as_ref(),
            None => host_of(addr),
        };
        parse_server_name(name)
    }
}

/// `name` as a server name for SNI and the certificate check: a DNS name or an IP
/// address, else an [`ErrorKind::Tls`](crate::ErrorKind::Tls) that quotes it.
fn parse_server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_owned())
        .map_err(|err| Error::tls(format!("invalid server name {name:?}: {err}")))
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        if let Some((host, _)) = rest.split_once(']') {
            return host;
        }
    }
    match addr.rsplit_once(':') {
        // More than one colon and no brackets: a bare IPv6 address.
        Some((host, _)) if !host.contains(':') => host,
        Some(_) => addr,
        None => addr,
    }
}

/// Builds a [`TlsClientConfig`]; made by [`TlsClientConfig::builder`].
pub struct TlsClientBuilder {
    roots: RootCertStore,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: Vec<Vec<u8>>,
}

impl fmt::Debug for TlsClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientBuilder")
            .field("roots", &self.roots.len())
            .field("client_cert", &self.client_cert.is_some())
            .finish_non_exhaustive()
    }
}

impl TlsClientBuilder {
    /// Trusts the certificates in this PEM file as roots (getty's
    /// `WithRootCertificateFile`). Can be called more than once; the roots add up.
    pub fn root_certificate_file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let certs = pem::certs_from_file(path.as_ref())?;
        pem::add_roots(&mut self.roots, certs)?;
        Ok(self)
    }

    /// Like [`root_certificate_file`](Self::root_certificate_file), from PEM text.
    pub fn root_certificates_pem(mut self, pem: &[u8]) -> Result<Self> {
        let certs = pem::certs_from_pem(pem)?;
        pem::add_roots(&mut self.roots, certs)?;
        Ok(self)
    }

    /// Trusts the roots of a ready root store, in addition to any already added.
    pub fn root_certificates(mut self, roots: RootCertStore) -> Self {
        self.roots.roots.extend(roots.roots);
        self
    }

    /// Trusts the Mozilla root certificates compiled in by the `webpki-roots` crate (the
    /// roots browsers trust), in addition to any already added.
    #[cfg(feature = "webpki-roots")]
    pub fn webpki_roots(mut self) -> Self {
        self.roots
            .roots
            .extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        self
    }

    /// Presents this certificate chain (leaf first) and key to servers that ask for
    /// one (mutual TLS). Default: none.
    pub fn client_cert(
        mut self,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client_cert = Some((cert_chain, key));
        self
    }

    /// Like [`client_cert`](Self::client_cert), from a PEM file with the chain and one
    /// with the key.
    pub fn client_cert_files(
        self,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self> {
        let certs = pem::certs_from_file(cert_chain.as_ref())?;
        let key = pem::key_from_file(key.as_ref())?;
        Ok(self.client_cert(certs, key))
    }

    /// The ALPN protocols to offer, most preferred first. Default: none.
    pub fn alpn_protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<Vec<u8>>,
    {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Builds the config (TLS 1.2 and 1.3, ring). Fails without any root certificate,
    /// since such a client could trust no server, and on an unusable client certificate.
    /// The server name and handshake timeout are set on the config it builds.
    pub fn build(self) -> Result<TlsClientConfig> {
        if self.roots.is_empty() {
            return Err(Error::tls(
                "no root certificates: add a CA file or the webpki roots",
            ));
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|err| Error::tls(format!("cannot build the client config: {err}")))?
            .with_root_certificates(self.roots);
        let mut config = match self.client_cert {
            None => builder.with_no_client_auth(),
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|err| Error::tls(format!("unusable client certificate: {err}")))?,
        };
        config.alpn_protocols = self.alpn;
        Ok(TlsClientConfig {
            rustls: Arc::new(config),
            server_name: None,
            handshake_timeout: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_is_taken_from_every_address_form() {
        assert_eq!(host_of("127.0.0.1:7000"), "127.0.0.1");
        assert_eq!(host_of("example.com:443"), "example.com");
        assert_eq!(host_of("[::1]:7000"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }
}
