//! The times inside a JWT (`iat`, `exp`), read without verifying the signature: coffer only uses
//! them to know when to renew a token, never to trust it. The registry verifies its own tokens.

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Deserialize;
use zeroize::Zeroizing;

/// A token's issued-at and expiry in the issuer's clock (Unix seconds), where it states them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    pub issued_at: Option<u64>,
    pub expires_at: Option<u64>,
}

#[derive(Deserialize)]
struct Claims {
    iat: Option<f64>,
    exp: Option<f64>,
}

/// The times of `token` if it is a JWT; `None` for opaque tokens.
pub fn times(token: &str) -> Option<Times> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = Zeroizing::new(Base64UrlUnpadded::decode_vec(payload.trim_end_matches('=')).ok()?);
    let claims: Claims = serde_json::from_slice(&json).ok()?;
    let seconds = |n: f64| (n.is_finite() && n >= 0.0).then_some(n as u64);
    Some(Times {
        issued_at: claims.iat.and_then(seconds),
        expires_at: claims.exp.and_then(seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.c2ln",
            Base64UrlUnpadded::encode_string(br#"{"alg":"ES256"}"#),
            Base64UrlUnpadded::encode_string(claims.as_bytes())
        )
    }

    #[test]
    fn reads_iat_and_exp() {
        assert_eq!(
            times(&jwt(r#"{"iss":"x","iat":1700000000,"exp":1700000300.5}"#)),
            Some(Times {
                issued_at: Some(1_700_000_000),
                expires_at: Some(1_700_000_300),
            })
        );
        assert_eq!(times(&jwt(r#"{"sub":"a"}"#)), Some(Times::default()));
    }

    #[test]
    fn opaque_or_broken_tokens_have_no_times() {
        for token in [
            "",
            "opaque-refresh-token",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            &jwt("not json"),
            &jwt(r#"{"exp":"soon"}"#),
        ] {
            assert_eq!(times(token), None, "{token}");
        }
        assert_eq!(
            times(&jwt(r#"{"exp":-5}"#)),
            Some(Times::default()),
            "negative times are ignored"
        );
    }
}
