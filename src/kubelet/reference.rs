//! An image reference as docker's grammar (the distribution project's `reference` package)
//! reads it: `[domain/]path[:tag][@digest]`. A reference the grammar rejects names no
//! registry, so it gets no credential: `ghcr.io@evil.example/x` is not an image of
//! Docker Hub's, nor of anyone's.
//!
//! - domain: `host[:port]`, a host being dot-separated labels of letters, digits and inner
//!   hyphens, or `[IPv6]`; the first component is one when it holds a `.` or a `:` or is
//!   `localhost`;
//! - path: `/`-separated components of lower-case letters and digits, joined inside by `.`,
//!   `_`, `__` or hyphens; the name at most 255 characters;
//! - tag: a word character, then up to 127 of word characters, `.` and `-`;
//! - digest: `algorithm:hex`, the algorithm letters and digits joined by `+`, `.`, `_` or `-`,
//!   at least 32 hex digits.

/// A reference's registry (`None`: Docker Hub) and repository path.
#[derive(Debug, PartialEq, Eq)]
pub struct Reference<'a> {
    pub domain: Option<&'a str>,
    pub path: &'a str,
}

const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

/// `image` read by the grammar, or why it is not an image reference.
pub fn parse(image: &str) -> Result<Reference<'_>, &'static str> {
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if digest.is_some_and(|d| !is_digest(d)) {
        return Err("its digest is not ALGORITHM:HEX");
    }
    let name = match rest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => {
            if !is_tag(tag) {
                return Err("its tag is not one");
            }
            name
        }
        _ => rest,
    };
    if name.is_empty() || name.len() > MAX_NAME {
        return Err("its name is empty or longer than 255 characters");
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, path))
            if first.contains(['.', ':']) || first == "localhost" || has_upper(first) =>
        {
            (Some(first), path)
        }
        _ => (None, name),
    };
    if domain.is_some_and(|d| !is_domain(d)) {
        return Err("its registry is not HOST[:PORT]");
    }
    if !path.split('/').all(is_path_component) {
        return Err("its repository path is not lower-case components joined by /");
    }
    Ok(Reference { domain, path })
}

fn has_upper(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_uppercase())
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or `-+`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(|&b| alnum(b)) || !bytes.last().is_some_and(|&b| alnum(b)) {
        return false;
    }
    let mut run = String::new();
    for &b in bytes {
        if alnum(b) {
            if !matches!(run.as_str(), "" | "." | "_" | "__") && !run.bytes().all(|s| s == b'-') {
                return false;
            }
            run.clear();
        } else if matches!(b, b'.' | b'_' | b'-') {
            run.push(b as char);
        } else {
            return false;
        }
    }
    true
}

/// `host[:port]`: dot-separated labels, or `[IPv6]`.
fn is_domain(domain: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let (host_ok, port) = match domain.strip_prefix('[') {
        Some(inner) => match inner.split_once(']') {
            Some((v6, port)) => (v6.parse::<std::net::Ipv6Addr>().is_ok(), port),
            None => return false,
        },
        None => {
            let (host, port) = domain.split_at(domain.find(':').unwrap_or(domain.len()));
            (host.split('.').all(label), port)
        }
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    tag.len() <= MAX_TAG
        && tag.as_bytes().first().is_some_and(|&b| word(b))
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-')
}

/// `algorithm:hex`: `[A-Za-z][A-Za-z0-9]*` joined by `[+._-]`, then 32 or more hex digits.
fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let component = |c: &str| {
        c.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && c.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    algorithm.split(['+', '.', '_', '-']).all(component)
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:4f5a8e6c0b2d1e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f";

    #[test]
    fn references_docker_reads() {
        let pinned = format!("ghcr.io/org/image:latest@{DIGEST}");
        let by_digest = format!("docker.io/library/alpine@{DIGEST}");
        for (image, domain, path) in [
            ("nginx", None, "nginx"),
            ("nginx:1.27", None, "nginx"),
            ("bitnami/redis:7", None, "bitnami/redis"),
            (by_digest.as_str(), Some("docker.io"), "library/alpine"),
            (pinned.as_str(), Some("ghcr.io"), "org/image"),
            (
                "127.0.0.1:5000/team/app:v1",
                Some("127.0.0.1:5000"),
                "team/app",
            ),
            ("[::1]:5000/app", Some("[::1]:5000"), "app"),
            ("localhost/app", Some("localhost"), "app"),
            (
                "Registry.Example/a__b/c-d/e.f--g_h",
                Some("Registry.Example"),
                "a__b/c-d/e.f--g_h",
            ),
        ] {
            assert_eq!(parse(image), Ok(Reference { domain, path }), "{image}");
        }
    }

    #[test]
    fn references_docker_rejects() {
        for image in [
            "",
            "ghcr.io@evil.example/x",
            "ghcr.io/org/app@sha256:ff",
            "ghcr.io/",
            "/app",
            "ghcr.io//app",
            "ghcr.io/Org/app",
            "ghcr.io/org/app:",
            "ghcr.io/org/app:-tag",
            "ghcr.io:port/app",
            "-ghcr.io/app",
            "ghcr.io/a___b",
            "ghcr.io/a.-b",
            "ghcr.io/app_",
            "user@ghcr.io/app",
            "ghcr.io/app\u{200f}",
        ] {
            assert!(parse(image).is_err(), "{image:?}");
        }
        assert!(parse(&format!("r.example/{}", "a".repeat(250))).is_err());
    }
}
