//! The `X-Pusher-Signature` of a webhook: hex HMAC-SHA256 of the raw body, keyed with the app
//! secret, the signature Pusher's SDKs check.

/// The signature of `body` with `secret`.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    // The body is JSON from serde_json: always UTF-8.
    herald_protocol::pusher::socket_auth::sign(secret, &String::from_utf8_lossy(body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_the_hex_hmac_sha256_of_the_body() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231-style vector.
        assert_eq!(
            super::signature("key", b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
