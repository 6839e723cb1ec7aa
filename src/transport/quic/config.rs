//! quinn's configs, built from the crate's TLS configs and the session config.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig};

use super::DEFAULT_ALPN;
use crate::error::{Error, Result};
use crate::transport::tls::{TlsClientConfig, TlsServerConfig};

/// The ALPN protocols to speak: those set on the QUIC builder, else those of the TLS
/// config, else [`DEFAULT_ALPN`].
fn alpn(set: Option<&[Vec<u8>]>, tls: &[Vec<u8>]) -> Vec<Vec<u8>> {
    match set {
        Some(set) => set.to_vec(),
        None if !tls.is_empty() => tls.to_vec(),
        None => vec![DEFAULT_ALPN.to_vec()],
    }
}

/// The transport parameters: the idle timeout is the session's read timeout (none
/// without one, as a TCP session without a read timeout waits forever).
fn transport(read_timeout: Option<Duration>) -> Result<Arc<TransportConfig>> {
    let mut transport = TransportConfig::default();
    let idle = match read_timeout {
        None => None,
        Some(after) => Some(IdleTimeout::try_from(after).map_err(|_| {
            Error::config(format!(
                "read_timeout {after:?} is too long for a QUIC idle timeout"
            ))
        })?),
    };
    transport.max_idle_timeout(idle);
    Ok(Arc::new(transport))
}

/// quinn's server config from a TLS server config (which must allow TLS 1.3).
pub(crate) fn server(
    tls: &TlsServerConfig,
    alpn_set: Option<&[Vec<u8>]>,
    read_timeout: Option<Duration>,
) -> Result<quinn::ServerConfig> {
    if alpn_set.is_some_and(|set| set.is_empty()) {
        return Err(Error::config("QUIC needs at least one ALPN protocol"));
    }
    let mut rustls = (*tls.rustls).clone();
    rustls.alpn_protocols = alpn(alpn_set, &rustls.alpn_protocols);
    // QUIC's 0-RTT is not offered (sessions start with the handshake's 1-RTT keys).
    rustls.max_early_data_size = 0;
    let crypto = QuicServerConfig::try_from(Arc::new(rustls)).map_err(|err| {
        Error::config(format!(
            "the TLS config cannot serve QUIC (it needs TLS 1.3): {err}"
        ))
    })?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport(read_timeout)?);
    Ok(config)
}

/// quinn's client config from a TLS client config (which must allow TLS 1.3).
pub(crate) fn client(
    tls: &TlsClientConfig,
    alpn_set: Option<&[Vec<u8>]>,
    read_timeout: Option<Duration>,
) -> Result<quinn::ClientConfig> {
    if alpn_set.is_some_and(|set| set.is_empty()) {
        return Err(Error::config("QUIC needs at least one ALPN protocol"));
    }
    let mut rustls = (*tls.rustls).clone();
    rustls.alpn_protocols = alpn(alpn_set, &rustls.alpn_protocols);
    rustls.enable_early_data = false;
    let crypto = QuicClientConfig::try_from(Arc::new(rustls)).map_err(|err| {
        Error::config(format!(
            "the TLS config cannot dial QUIC (it needs TLS 1.3): {err}"
        ))
    })?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(read_timeout)?);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::alpn;

    #[test]
    fn alpn_is_the_builders_then_the_tls_configs_then_the_default() {
        let set = vec![b"mine".to_vec()];
        let tls = vec![b"tls".to_vec()];
        assert_eq!(alpn(Some(&set), &tls), set);
        assert_eq!(alpn(None, &tls), tls);
        assert_eq!(alpn(None, &[]), vec![b"getty".to_vec()]);
    }
}
