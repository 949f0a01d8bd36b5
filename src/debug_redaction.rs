//! Every type that holds a credential, a token, key bytes or a config file's `auths`, built
//! with a known secret and formatted with `{:?}` and `{:#?}`: the secret appears in neither,
//! as text, as base64 (alone or in a `user:secret` pair) or as a list of bytes.

use base64ct::{Base64, Encoding};
use secrecy::SecretString;
use zeroize::Zeroizing;

const SECRET: &str = "hunter2-debug-secret-0123456789ab";
const USER: &str = "alice";

/// Asserts that neither form of `value`'s `Debug` shows the secret in any spelling.
fn redacted(what: &str, value: &impl std::fmt::Debug) {
    for shown in [format!("{value:?}"), format!("{value:#?}")] {
        let spellings = [
            SECRET.to_owned(),
            Base64::encode_string(SECRET.as_bytes()),
            Base64::encode_string(format!("{USER}:{SECRET}").as_bytes()),
        ];
        for spelling in spellings {
            assert!(
                !shown.contains(&spelling),
                "{what} shows {spelling}: {shown}"
            );
        }
        // `[104, 117, ...]`, compact or one number a line: the secret's bytes in a row.
        let numbers: Vec<u8> = shown
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        assert!(
            !numbers
                .windows(SECRET.len())
                .any(|w| w == SECRET.as_bytes()),
            "{what} shows the secret's bytes: {shown}"
        );
    }
}

fn secret() -> SecretString {
    SecretString::from(SECRET)
}

fn entry() -> crate::store::Entry {
    crate::store::Entry {
        server_url: "registry.example".into(),
        username: USER.into(),
        secret: secret(),
        created: 1,
        updated: 1,
        tokens: Some(crate::token::state::TokenState {
            token: Some(derived()),
            ..Default::default()
        }),
        description: None,
    }
}

fn derived() -> crate::token::state::Derived {
    let minted = minted();
    crate::token::state::Derived {
        provider: "oauth2".into(),
        username: minted.username,
        secret: minted.secret,
        issued_at: minted.issued_at,
        expires_at: minted.expires_at,
    }
}

fn minted() -> crate::token::provider::Minted {
    crate::token::provider::Minted {
        username: "<token>".into(),
        secret: secret(),
        issued_at: 1,
        expires_at: Some(2),
    }
}

#[test]
fn no_debug_shows_a_secret() {
    // A checker that cannot fail checks nothing: plain bytes and text are caught.
    for leak in [format!("{:?}", SECRET.as_bytes()), format!("{SECRET:?}")] {
        let caught = std::panic::catch_unwind(|| redacted("a leak", &leak));
        assert!(caught.is_err(), "the checker misses {leak}");
    }

    redacted("Entry", &entry());
    redacted("Derived", &derived());
    redacted("TokenState", &entry().tokens);
    redacted("Minted", &minted());
    let secret = secret();
    redacted(
        "LongLived",
        &crate::token::provider::LongLived {
            username: USER,
            secret: &secret,
        },
    );
    redacted(
        "import::Found",
        &crate::import::Found {
            server_url: "registry.example".into(),
            username: USER.into(),
            secret: self::secret(),
        },
    );
    redacted(
        "export::Credential",
        &crate::export::Credential {
            url: crate::server_url::ServerUrl::parse("registry.example").expect("url"),
            server_url: "registry.example".into(),
            username: USER.into(),
            secret: self::secret(),
            expires_at: None,
            description: None,
        },
    );
    let document = || Zeroizing::new(format!("{{\"password\":\"{SECRET}\"}}").into_bytes());
    redacted("export::Output", &crate::export::Output::Single(document()));
    redacted(
        "export::Output",
        &crate::export::Output::PerRegistry(vec![("registry.example".into(), document())]),
    );
    redacted(
        "kubelet::Answer",
        &crate::kubelet::Answer {
            response: document(),
            notice: None,
            refused: false,
            warnings: Vec::new(),
        },
    );
    redacted(
        "http::Reply",
        &crate::token::http::Reply {
            status: 200,
            challenges: Vec::new(),
            body: document(),
            skew: 0,
            arrived: 0,
        },
    );
    redacted(
        "secret_cache::Held",
        &crate::secret_cache::Held {
            secret: Zeroizing::new(SECRET.as_bytes().to_vec()),
            expires_at: None,
        },
    );
    let mut buffer = crate::secret_buffer::SecretBuffer::default();
    buffer.extend(SECRET.as_bytes());
    redacted("SecretBuffer", &buffer);
    let kek = Zeroizing::new([7u8; crate::vault::crypto::KEY_LEN]);
    let generated =
        crate::vault::VaultKey::generate(crate::vault::NewSealing::Keychain, [1; 16], &kek);
    let mut key = [0u8; crate::vault::crypto::KEY_LEN];
    key.copy_from_slice(&SECRET.as_bytes()[..crate::vault::crypto::KEY_LEN]);
    redacted(
        "VaultKey",
        &crate::vault::VaultKey::from_cache(generated.header(), Zeroizing::new(key)),
    );
}

#[test]
fn an_auth_file_shows_no_auths() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.json");
    let auth = Base64::encode_string(format!("{USER}:{SECRET}").as_bytes());
    std::fs::write(
        &path,
        format!(
            "{{\"auths\": {{\"registry.example\": {{\"auth\": \"{auth}\", \"identitytoken\": \"{SECRET}\"}}}}}}"
        ),
    )
    .expect("write");
    let file = crate::auth_file::AuthFile::read(&path).expect("read");
    redacted("AuthFile", &file);
    let shown = format!("{file:?}");
    assert!(shown.contains("auths"), "{shown}");
}

#[test]
fn an_entry_that_does_not_decode_is_not_quoted() {
    let record = format!("{{\"server_url\": \"registry.example\", \"created\": \"{SECRET}\"}}");
    let json = serde_json::from_str::<crate::store::Entry>(&record).expect_err("not an entry");
    // The checker can fail here: serde_json's own error quotes the record.
    assert!(format!("{json:?}{json}").contains(SECRET));
    let error = crate::Error::entry(json);
    redacted("Error::Entry", &error);
    assert!(!error.to_string().contains(SECRET), "{error}");
}
