//! Keys bound to a client certificate, through `Keyring::verify`: which certificates pass,
//! what a refusal is called and audited as, what it costs, and what update and rotation do
//! to a binding. The certificates are made at run time (rcgen).

use std::num::NonZeroU32;
use std::time::Duration;

use keymint::ratelimit::KeyLimit;
use keymint::testing::StoreOp;
use keymint::{
    CertificateBinding, CertificateError, ClientCertificate, FailureReason, IssueRequest,
    KeyUpdate, KeyringError, Requirement, VerifyContext, VerifyError,
};
use rcgen::{CertificateParams, KeyPair, PublicKeyData as _, SerialNumber};

use crate::support::{ctx, fixture};

/// A client's key pair and its certificate; `renew` makes another certificate for the same
/// key pair, as an automated renewal does.
struct Client {
    key_pair: KeyPair,
    params: CertificateParams,
    der: Vec<u8>,
}

impl Client {
    fn new(name: &str) -> Self {
        let key_pair = KeyPair::generate().unwrap();
        let params = CertificateParams::new([name.to_owned()]).unwrap();
        let der = params.self_signed(&key_pair).unwrap().der().to_vec();
        Self {
            key_pair,
            params,
            der,
        }
    }

    fn presented(&self) -> ClientCertificate {
        ClientCertificate::from_der(&self.der).unwrap()
    }

    fn renew(&self) -> ClientCertificate {
        let mut params = self.params.clone();
        params.serial_number = Some(SerialNumber::from_slice(&[0x42]));
        let der = params.self_signed(&self.key_pair).unwrap();
        ClientCertificate::from_der(der.der()).unwrap()
    }
}

fn with(cert: &ClientCertificate) -> VerifyContext<'_> {
    VerifyContext::new().client_certificate(cert)
}

#[tokio::test]
async fn a_bound_key_verifies_only_with_its_certificate() {
    let f = fixture();
    let (alice, bob) = (Client::new("alice"), Client::new("bob"));
    let issued = f
        .keyring
        .issue(
            IssueRequest::new("acct", "bound")
                .certificate_bindings([CertificateBinding::certificate(&alice.der).unwrap()]),
        )
        .await
        .unwrap();
    let key = issued.key.expose_secret();

    let ok = f
        .keyring
        .verify(key, &with(&alice.presented()))
        .await
        .unwrap();
    assert_eq!(ok.id(), &issued.record.id);

    let missing = f.keyring.verify(key, &ctx()).await.unwrap_err();
    assert!(
        matches!(missing, VerifyError::CertificateRequired),
        "{missing:?}"
    );
    assert_eq!(
        (missing.status_code(), missing.code()),
        (401, "certificate_required")
    );
    let other = f
        .keyring
        .verify(key, &with(&bob.presented()))
        .await
        .unwrap_err();
    assert!(
        matches!(other, VerifyError::CertificateMismatch),
        "{other:?}"
    );
    assert_eq!(
        (other.status_code(), other.code()),
        (401, "certificate_mismatch")
    );
    assert_eq!(
        f.audit.failures(),
        [
            FailureReason::CertificateRequired,
            FailureReason::CertificateMismatch
        ]
    );
    // Checked on every verification, the cached ones too: the record was read once.
    f.keyring
        .verify(key, &with(&alice.presented()))
        .await
        .unwrap();
    assert_eq!(f.store.calls(StoreOp::Get), 1);
}

#[tokio::test]
async fn an_unbound_key_ignores_whatever_certificate_was_presented() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("acct", "plain"))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    f.keyring.verify(key, &ctx()).await.unwrap();
    f.keyring
        .verify(key, &with(&Client::new("anyone").presented()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_key_bound_to_several_certificates_takes_any_of_them() {
    let f = fixture();
    let (old, new, stranger) = (Client::new("a"), Client::new("b"), Client::new("c"));
    let issued = f
        .keyring
        .issue(IssueRequest::new("acct", "rolling").certificate_bindings([
            CertificateBinding::certificate(&old.der).unwrap(),
            CertificateBinding::public_key_of(&new.der).unwrap(),
        ]))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    f.keyring
        .verify(key, &with(&old.presented()))
        .await
        .unwrap();
    f.keyring
        .verify(key, &with(&new.presented()))
        .await
        .unwrap();
    assert!(matches!(
        f.keyring.verify(key, &with(&stranger.presented())).await,
        Err(VerifyError::CertificateMismatch)
    ));
}

#[tokio::test]
async fn a_public_key_binding_survives_renewal_and_a_certificate_binding_does_not() {
    let f = fixture();
    let client = Client::new("renewing");
    let by_key = f
        .keyring
        .issue(
            IssueRequest::new("acct", "by key")
                .certificate_bindings([CertificateBinding::public_key_of(&client.der).unwrap()]),
        )
        .await
        .unwrap();
    let by_cert = f
        .keyring
        .issue(
            IssueRequest::new("acct", "by cert")
                .certificate_bindings([CertificateBinding::certificate(&client.der).unwrap()]),
        )
        .await
        .unwrap();
    let renewed = client.renew();
    assert_ne!(renewed.der(), client.der.as_slice(), "a new certificate");

    f.keyring
        .verify(by_key.key.expose_secret(), &with(&renewed))
        .await
        .unwrap();
    assert!(matches!(
        f.keyring
            .verify(by_cert.key.expose_secret(), &with(&renewed))
            .await,
        Err(VerifyError::CertificateMismatch)
    ));
    // Another key pair under the same name is another client.
    let impostor = Client::new("renewing");
    assert!(matches!(
        f.keyring
            .verify(by_key.key.expose_secret(), &with(&impostor.presented()))
            .await,
        Err(VerifyError::CertificateMismatch)
    ));
}

#[test]
fn a_public_key_bound_before_its_certificate_exists_matches_the_certificate() {
    let client = Client::new("csr");
    let spki = client.key_pair.subject_public_key_info();
    let early = CertificateBinding::public_key(&spki).unwrap();
    assert_eq!(
        early,
        CertificateBinding::public_key_of(&client.der).unwrap()
    );
    assert!(early.matches(&client.presented()));
    assert_eq!(
        CertificateBinding::certificate(&spki),
        Err(CertificateError::NotACertificate),
        "a public key is not a certificate"
    );
}

#[tokio::test]
async fn a_refused_binding_is_charged_nothing() {
    let f = fixture();
    let client = Client::new("metered");
    let one_per_hour = KeyLimit::new(NonZeroU32::MIN, Duration::from_secs(3600)).unwrap();
    let issued = f
        .keyring
        .issue(
            IssueRequest::new("acct", "metered")
                .certificate_bindings([CertificateBinding::certificate(&client.der).unwrap()])
                .remaining_uses(3)
                .rate_limit(one_per_hour),
        )
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let stranger = Client::new("stranger").presented();
    for _ in 0..5 {
        assert!(f.keyring.verify(key, &ctx()).await.is_err());
        assert!(f.keyring.verify(key, &with(&stranger)).await.is_err());
    }
    // Neither the one request an hour nor any use was spent by the ten refusals.
    let verified = f
        .keyring
        .verify(key, &with(&client.presented()))
        .await
        .unwrap();
    assert_eq!(verified.remaining_uses(), Some(2));
    assert!(matches!(
        f.keyring.verify(key, &with(&client.presented())).await,
        Err(VerifyError::RateLimited(_))
    ));
}

#[tokio::test]
async fn the_certificate_is_checked_after_the_network_and_before_scopes() {
    let f = fixture();
    let client = Client::new("ordered");
    let issued = f
        .keyring
        .issue(
            IssueRequest::new("acct", "fenced")
                .allowed_networks(["10.0.0.0/8".parse().unwrap()])
                .certificate_bindings([CertificateBinding::certificate(&client.der).unwrap()]),
        )
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let needs: Requirement = "admin:write".parse().unwrap();
    let outside = VerifyContext::new()
        .client_ip("192.0.2.1".parse().unwrap())
        .require(&needs);
    assert!(matches!(
        f.keyring.verify(key, &outside).await,
        Err(VerifyError::ClientNotAllowed)
    ));
    let inside = VerifyContext::new()
        .client_ip("10.1.2.3".parse().unwrap())
        .require(&needs);
    assert!(matches!(
        f.keyring.verify(key, &inside).await,
        Err(VerifyError::CertificateRequired)
    ));
    let presented = client.presented();
    let with_cert = inside.client_certificate(&presented);
    assert!(matches!(
        f.keyring.verify(key, &with_cert).await,
        Err(VerifyError::InsufficientScope(_))
    ));
}

#[tokio::test]
async fn binding_a_key_in_use_takes_effect_at_once_and_unbinding_lifts_it() {
    let f = fixture();
    let client = Client::new("later");
    let issued = f
        .keyring
        .issue(IssueRequest::new("acct", "bound later"))
        .await
        .unwrap();
    let (id, key) = (&issued.record.id, issued.key.expose_secret());
    f.keyring.verify(key, &ctx()).await.unwrap(); // cached now
    let binding = CertificateBinding::certificate(&client.der).unwrap();
    let updated = f
        .keyring
        .update(id, KeyUpdate::new().certificate_bindings([binding]))
        .await
        .unwrap();
    assert_eq!(updated.attributes.certificate_bindings, [binding]);
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::CertificateRequired)
    ));
    f.keyring
        .verify(key, &with(&client.presented()))
        .await
        .unwrap();
    f.keyring
        .update(id, KeyUpdate::new().certificate_bindings([]))
        .await
        .unwrap();
    f.keyring.verify(key, &ctx()).await.unwrap();
}

#[tokio::test]
async fn a_rotation_successor_keeps_the_binding() {
    let f = fixture();
    let client = Client::new("rotated");
    let binding = CertificateBinding::public_key_of(&client.der).unwrap();
    let issued = f
        .keyring
        .issue(IssueRequest::new("acct", "rotated").certificate_bindings([binding]))
        .await
        .unwrap();
    let successor = f.keyring.rotate(&issued.record.id, None).await.unwrap();
    assert_eq!(successor.record.attributes.certificate_bindings, [binding]);
    let key = successor.key.expose_secret();
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::CertificateRequired)
    ));
    f.keyring
        .verify(key, &with(&client.presented()))
        .await
        .unwrap();
}

#[tokio::test]
async fn at_most_sixteen_bindings_are_accepted() {
    let f = fixture();
    let many = (0..=16u8).map(|i| CertificateBinding::X5tS256([i; 32]));
    let refused = f
        .keyring
        .issue(IssueRequest::new("acct", "too many").certificate_bindings(many.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, KeyringError::InvalidRequest(m) if m.contains("certificate bindings")),
        "{refused}"
    );
    let issued = f
        .keyring
        .issue(IssueRequest::new("acct", "sixteen").certificate_bindings(many.clone().take(16)))
        .await
        .unwrap();
    assert!(
        f.keyring
            .update(
                &issued.record.id,
                KeyUpdate::new().certificate_bindings(many)
            )
            .await
            .is_err()
    );
}
