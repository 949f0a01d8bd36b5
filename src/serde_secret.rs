//! A secret written out where it must be: inside a sealed vault record, or on the pipe from
//! `coffer token mint` to the helper. Nowhere else: `SecretString` has no `Serialize` of its own.

use secrecy::{ExposeSecret, SecretString};

pub fn expose<S: serde::Serializer>(
    secret: &SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}
