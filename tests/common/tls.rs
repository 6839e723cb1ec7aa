//! Test certificates made in the test process with rcgen: a CA and the leaves it signs,
//! shared by `tests/tls.rs` (TLS over TCP) and `tests/ws.rs` (wss), so both suites trust
//! certificates built the same way.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// A certificate authority that signs leaves for the tests.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

/// A certificate and its key, as PEM (for the PEM loaders under test) and as DER (for a
/// rustls config built by hand).
pub struct Leaf {
    pub cert: String,
    pub key: String,
    pub cert_der: Vec<u8>,
    /// The key in PKCS #8.
    pub key_der: Vec<u8>,
}

impl Ca {
    /// A new self-signed CA whose common name is `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// The CA's certificate as PEM, to trust it.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA's certificate as DER, for a rustls root store.
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// A leaf for `names` with the one extended key usage `usage`, signed by this CA;
    /// `expired` makes it valid only in 2019, to test the refusal of an expired one.
    pub fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Leaf {
        self.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
        )
    }

    /// A client certificate (for mutual TLS) named `client`.
    pub fn client(&self) -> Leaf {
        self.leaf(&["client"], ExtendedKeyUsagePurpose::ClientAuth, false)
    }
}
