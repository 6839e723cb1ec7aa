//! Reading certificates and keys from PEM, with errors that say which file.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use crate::error::{Error, Result};

/// Every certificate in a PEM file, in order; an error if there is none.
pub(super) fn certs_from_file(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let what = || format!("certificates from {}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| Error::tls(format!("cannot read {}: {err}", what())))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| Error::tls(format!("cannot read {}: {err}", what())))?;
    non_empty(certs, what)
}

/// Every certificate in PEM text, in order; an error if there is none.
pub(super) fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let what = || "certificates from PEM text".to_owned();
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| Error::tls(format!("cannot read {}: {err}", what())))?;
    non_empty(certs, what)
}

fn non_empty(
    certs: Vec<CertificateDer<'static>>,
    what: impl Fn() -> String,
) -> Result<Vec<CertificateDer<'static>>> {
    if certs.is_empty() {
        return Err(Error::tls(format!(
            "cannot read {}: no certificate found",
            what()
        )));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub(super) fn key_from_file(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| {
        Error::tls(format!(
            "cannot read a private key from {}: {err}",
            path.display()
        ))
    })
}

/// The first private key in PEM text.
pub(super) fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|err| Error::tls(format!("cannot read a private key from PEM text: {err}")))
}

/// Adds trust anchors to `roots`; every certificate must parse as one.
pub(super) fn add_roots(
    roots: &mut RootCertStore,
    certs: Vec<CertificateDer<'static>>,
) -> Result<()> {
    for cert in certs {
        roots
            .add(cert)
            .map_err(|err| Error::tls(format!("not a usable root certificate: {err}")))?;
    }
    Ok(())
}
