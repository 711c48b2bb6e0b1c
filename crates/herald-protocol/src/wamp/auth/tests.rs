//! Vectors produced by autobahn-python 26.10 (`auth.derive_key`, `auth.compute_wcs`) and PyNaCl
//! 1.6 (`SigningKey(bytes(range(32))).sign(bytes(range(100, 132)))`).

use super::*;

const CHALLENGE: &str = r#"{"nonce":"n"}"#;

fn salt() -> CraSalt {
    CraSalt { salt: "salt123".into(), iterations: 1000, keylen: 32 }
}

#[test]
fn salted_key_is_autobahns_derive_key_text() {
    assert_eq!(cra_key("secret123", Some(&salt())), b"Eu7CQLfR+/Ffb+275A4s9/6H/RGKYxM4s6IMrsNKzC8=".to_vec());
}

#[test]
fn cra_signatures_match_autobahn_salted_and_unsalted() {
    let salted = cra_key("secret123", Some(&salt()));
    assert_eq!(cra_sign(&salted, CHALLENGE), "hPF8H16MBLEkc78SePMlGLUJDPnDfS1AmX2OdtMFy9w=");
    assert_eq!(verify_cra(&salted, CHALLENGE, "hPF8H16MBLEkc78SePMlGLUJDPnDfS1AmX2OdtMFy9w="), Ok(()));
    let plain = cra_key("secret123", None);
    assert_eq!(verify_cra(&plain, CHALLENGE, "s1kVT/Z2MKLb2h0JyWa71FCMxS3ueGaAtLTcwX6cGT8="), Ok(()));
}

#[test]
fn a_cra_signature_for_another_challenge_or_secret_fails() {
    let plain = cra_key("secret123", None);
    let sig = "s1kVT/Z2MKLb2h0JyWa71FCMxS3ueGaAtLTcwX6cGT8=";
    assert_eq!(verify_cra(&plain, r#"{"nonce":"m"}"#, sig), Err(AuthFailure::WrongCraSignature));
    assert_eq!(verify_cra(&cra_key("secret124", None), CHALLENGE, sig), Err(AuthFailure::WrongCraSignature));
    assert_eq!(verify_cra(&plain, CHALLENGE, "not base64!"), Err(AuthFailure::WrongCraSignature));
}

#[test]
fn cra_challenge_is_json_with_every_field() {
    let c = CraChallenge {
        authid: "bob",
        authrole: "user",
        authprovider: "static",
        nonce: "abc",
        timestamp: "2026-12-06T00:00:00.000Z",
        session: 7,
    };
    let v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap_or_default();
    assert_eq!(v["authid"], "bob");
    assert_eq!(v["authmethod"], "wampcra");
    assert_eq!(v["session"], 7);
}

const PUBKEY: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
const SIGNED: &str = "0e6d264980051744d1e68c83a5c480a44aaf8178de36baa71b3c95eeaa825b1d5a435bbd6ea103d1e39a82d6b134f59f56c38c4d1496e64227847dba0552e80e6465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283";

fn challenge() -> Vec<u8> {
    (100u8..132).collect()
}

#[test]
fn cryptosign_accepts_pynacl_signed_messages_and_bare_signatures() {
    let key = PublicKey::from_hex(PUBKEY).unwrap_or(PublicKey([0; 32]));
    assert_eq!(verify_cryptosign(&key, &challenge(), SIGNED), Ok(()));
    assert_eq!(verify_cryptosign(&key, &challenge(), &SIGNED[..128]), Ok(()));
    assert!(key.is(&PUBKEY.to_uppercase()));
}

#[test]
fn cryptosign_refuses_another_challenge_key_or_garbage() {
    let key = PublicKey::from_hex(PUBKEY).unwrap_or(PublicKey([0; 32]));
    let mut other = challenge();
    other[0] ^= 1;
    assert_eq!(verify_cryptosign(&key, &other, SIGNED), Err(AuthFailure::WrongCryptosignSignature));
    assert_eq!(verify_cryptosign(&key, &other, &SIGNED[..128]), Err(AuthFailure::WrongCryptosignSignature));
    let wrong = PublicKey([7; 32]);
    assert_eq!(verify_cryptosign(&wrong, &challenge(), SIGNED), Err(AuthFailure::WrongCryptosignSignature));
    assert_eq!(verify_cryptosign(&key, &challenge(), "zz"), Err(AuthFailure::WrongCryptosignSignature));
    assert_eq!(PublicKey::from_hex("abcd"), Err(AuthFailure::BadPublicKey));
}

#[test]
fn tickets_compare_whole() {
    assert_eq!(verify_ticket("s3cret", "s3cret"), Ok(()));
    assert_eq!(verify_ticket("s3cret", "s3cre"), Err(AuthFailure::WrongTicket));
    assert_eq!(verify_ticket("s3cret", ""), Err(AuthFailure::WrongTicket));
}
