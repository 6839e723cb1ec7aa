//! Makes a test certificate authority and a server certificate it signed, as PEM files,
//! for trying the TLS options of `echo_server` and `echo_client`.
//!
//! ```text
//! cargo run --example tls_cert -- [--dir DIR] [--names localhost,127.0.0.1]
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7443 \
//!     --tls-cert DIR/cert.pem --tls-key DIR/key.pem
//! cargo run --release --example echo_client -- --addr 127.0.0.1:7443 --tls-ca DIR/ca.pem
//! ```
//! Writes `ca.pem` (the authority clients trust), `cert.pem` and `key.pem` (the server's
//! certificate, valid for `--names`, and its private key) into `--dir` (default `.`).
//! For tests only: the authority's key is thrown away, and nothing here is secret.

mod common;

use std::path::PathBuf;

use common::Options;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

const USAGE: &str = "usage: tls_cert [--dir DIR] [--names NAME,NAME,...]";

fn main() {
    let opts = Options::parse(&["dir", "names"], USAGE);
    let dir = PathBuf::from(opts.get("dir", ".".to_owned()));
    let names: Vec<String> = opts
        .get("names", "localhost,127.0.0.1".to_owned())
        .split(',')
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    if let Err(err) = make(&dir, names) {
        eprintln!("tls_cert: {err}");
        std::process::exit(1);
    }
}

fn make(dir: &std::path::Path, names: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "getty test CA");
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;

    let mut leaf = CertificateParams::new(names.clone())?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("localhost", |n| n.as_str()),
    );
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key)?;

    std::fs::create_dir_all(dir)?;
    for (file, pem) in [
        ("ca.pem", ca_cert.pem()),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, pem)?;
        println!("wrote {}", path.display());
    }
    println!("server certificate valid for: {}", names.join(", "));
    Ok(())
}
