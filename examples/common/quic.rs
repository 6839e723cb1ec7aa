//! The certificate `echo_server --transport quic` uses when it is given none, and the
//! trust `echo_client --transport quic` gives it: a self-signed certificate for
//! `localhost` and 127.0.0.1, made with rcgen at start, whose PEM the server writes to a
//! file in the temp directory for the client to read. For trying things out on one
//! machine only.

use std::path::PathBuf;

use getty::{TlsClientConfig, TlsServerConfig};

/// Where the server writes the certificate it made.
pub fn cert_path() -> PathBuf {
    std::env::temp_dir().join("getty-echo-quic-cert.pem")
}

/// A fresh self-signed certificate and key as the server's TLS config; its certificate
/// is written to [`cert_path`].
pub fn self_signed() -> getty::Result<TlsServerConfig> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|err| std::io::Error::other(format!("cannot make a certificate: {err}")))?;
    let cert = made.cert.pem();
    let key = made.key_pair.serialize_pem();
    let path = cert_path();
    std::fs::write(&path, &cert)?;
    eprintln!("self-signed certificate written to {}", path.display());
    TlsServerConfig::from_pem(cert.as_bytes(), key.as_bytes())?.build()
}

/// A client TLS config that trusts the certificate at [`cert_path`].
pub fn trust_self_signed() -> getty::Result<TlsClientConfig> {
    TlsClientConfig::builder()
        .root_certificate_file(cert_path())?
        .build()
}
