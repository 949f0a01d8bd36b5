//! The pod's service-account token as a kubelet hands it over (KEP-4412): bounded, checked for
//! shape, and read for whose it is and how long it lives. Its signature is not coffer's to
//! check: whoever takes it in exchange (a cloud's STS, a federating registry) verifies it against
//! the cluster issuer's keys, and coffer only ever sends it there.

use base64ct::{Base64UrlUnpadded, Encoding};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::settings::DEFAULT_AUDIENCE;

/// Kubernetes' tokens are about a kilobyte; this leaves room for long names and claims while
/// refusing a blob no issuer would accept.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A service-account token that passed the checks.
#[derive(Debug)]
pub struct ServiceAccountToken {
    token: SecretString,
    pub namespace: String,
    pub name: String,
    /// Unix seconds.
    pub expires_at: u64,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: f64,
    #[serde(default)]
    aud: Audience,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::None => false,
            Audience::One(one) => one == wanted,
            Audience::Many(many) => many.iter().any(|a| a == wanted),
        }
    }
}

impl ServiceAccountToken {
    /// Checks `token` and reads its subject and expiry. `audience` must be among the token's
    /// audiences: a token for the API server or another plugin is never exchanged, and a
    /// kubelet set up with another audience is noticed here rather than as an issuer's
    /// refusal. Messages never quote the token.
    pub fn read(
        token: SecretString,
        audience: &str,
        now: u64,
    ) -> Result<ServiceAccountToken, String> {
        let text = token.expose_secret();
        if text.len() > MAX_TOKEN_BYTES {
            return Err(format!(
                "the service-account token is {} bytes, more than the {MAX_TOKEN_BYTES} any issuer mints",
                text.len()
            ));
        }
        let parts: Vec<&str> = text.split('.').collect();
        let [header, payload, signature] = parts[..] else {
            return Err(
                "the service-account token is not a JWT (three dot-separated parts)".into(),
            );
        };
        if signature.is_empty() {
            return Err("the service-account token is unsigned".into());
        }
        let decode = |part: &str, what: &str| {
            Base64UrlUnpadded::decode_vec(part)
                .map(Zeroizing::new)
                .map_err(|_| format!("the service-account token's {what} is not base64url"))
        };
        let header: Header = serde_json::from_slice(&decode(header, "header")?)
            .map_err(|_| "the service-account token's header is not a JWT header".to_owned())?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err("the service-account token is unsigned (alg none)".into());
        }
        let claims: Claims = serde_json::from_slice(&decode(payload, "payload")?).map_err(|_| {
            "the service-account token's claims lack `sub` or `exp`: not a Kubernetes service-account token"
                .to_owned()
        })?;
        let (namespace, name) = claims
            .sub
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'))
            .ok_or("the token's subject is not system:serviceaccount:NAMESPACE:NAME")?;
        if !claims.exp.is_finite() || claims.exp <= now as f64 {
            return Err(format!(
                "the service-account token of {namespace}/{name} has expired"
            ));
        }
        if !claims.aud.contains(audience) {
            return Err(format!(
                "the service-account token of {namespace}/{name} is not for the audience {audience:?} \
                 that [kubelet] audience names (\"{DEFAULT_AUDIENCE}\" unless set); make \
                 tokenAttributes.serviceAccountTokenAudience the same"
            ));
        }
        Ok(ServiceAccountToken {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            expires_at: claims.exp as u64,
            token,
        })
    }

    pub fn expose(&self) -> &str {
        self.token.expose_secret()
    }

    pub fn secret(&self) -> &SecretString {
        &self.token
    }

    /// `namespace/name`, for messages.
    pub fn who(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(header: &str, claims: &str) -> SecretString {
        SecretString::from(format!(
            "{}.{}.c2ln",
            Base64UrlUnpadded::encode_string(header.as_bytes()),
            Base64UrlUnpadded::encode_string(claims.as_bytes())
        ))
    }

    const RS256: &str = r#"{"alg":"RS256","kid":"k"}"#;

    #[test]
    fn a_service_account_token_is_read() {
        let token = ServiceAccountToken::read(
            jwt(
                RS256,
                r#"{"sub":"system:serviceaccount:apps:puller","aud":["coffer"],"exp":2000}"#,
            ),
            "coffer",
            1000,
        )
        .expect("valid");
        assert_eq!(token.who(), "apps/puller");
        assert_eq!(token.expires_at, 2000);
    }

    #[test]
    fn malformed_expired_foreign_and_oversized_tokens_are_refused() {
        let sub = r#""sub":"system:serviceaccount:apps:puller""#;
        let cases = [
            (jwt(RS256, &format!("{{{sub},\"exp\":999}}")), "expired"),
            (
                jwt(RS256, &format!("{{{sub},\"exp\":2000,\"aud\":\"other\"}}")),
                "audience",
            ),
            (jwt(RS256, &format!("{{{sub},\"exp\":2000}}")), "audience"),
            (
                jwt(
                    r#"{"alg":"none"}"#,
                    &format!("{{{sub},\"exp\":2000,\"aud\":\"coffer\"}}"),
                ),
                "unsigned",
            ),
            (
                jwt(RS256, r#"{"sub":"alice","exp":2000,"aud":"coffer"}"#),
                "subject",
            ),
            (
                jwt(RS256, r#"{"sub":"system:serviceaccount:apps","exp":2000}"#),
                "subject",
            ),
            (jwt(RS256, r#"{"exp":2000}"#), "claims"),
            (SecretString::from("opaque"), "not a JWT"),
            (SecretString::from("a.b"), "not a JWT"),
            (SecretString::from("a.!!.c"), "base64url"),
            (SecretString::from("x".repeat(MAX_TOKEN_BYTES + 1)), "bytes"),
        ];
        for (token, expected) in cases {
            let error = ServiceAccountToken::read(token, "coffer", 1000).expect_err(expected);
            assert!(error.contains(expected), "{error} (wanted {expected})");
        }
    }
}
