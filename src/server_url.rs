//! Registry server URLs: the key an entry is stored under, and which stored keys answer a query.
//!
//! Clients name one registry in many ways (`docker.io`, `https://index.docker.io/v1/`,
//! `127.0.0.1:5000`, `https://ghcr.io`, crane's `ghcr.io/org/image`). This module is the only
//! place that decides how those spellings relate:
//! - the scheme is optional, but `http://` and `https://` never match each other;
//! - Docker Hub's aliases are one registry, and its `/v1/` URL is that registry's root;
//! - `host:port` is kept as is;
//! - a path is part of the key, so Docker Hub's `/v1/access-token` never collides with `/v1/`;
//! - a repository path (crane, ko) falls back to the registry's own entry.

use std::fmt;

/// Docker Hub's names, all meaning the registry the docker CLI calls `https://index.docker.io/v1/`.
const DOCKER_HUB_ALIASES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
const DOCKER_HUB_HOST: &str = "index.docker.io";
const DOCKER_HUB_ROOT: &str = "/v1";

/// Why a server URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("no credentials server URL")]
    Missing,
    #[error("unsupported scheme in server URL (use https://, http:// or none)")]
    Scheme,
    #[error("invalid server URL: the host is missing or holds characters a host cannot have")]
    Host,
    #[error("invalid server URL: control or invisible characters and spaces are not allowed")]
    Characters,
    #[error("invalid server URL: longer than {MAX_LEN} bytes")]
    TooLong,
}

/// The longest server URL coffer takes: far beyond any registry's, and small enough that every
/// table and log line that shows one stays cheap.
pub const MAX_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Unspecified,
    Http,
    Https,
}

impl Scheme {
    fn prefix(self) -> &'static str {
        match self {
            Scheme::Unspecified => "//",
            Scheme::Http => "http://",
            Scheme::Https => "https://",
        }
    }

    /// The stored schemes that may answer a query with this one, preferred first.
    fn lookup_order(self) -> &'static [Scheme] {
        match self {
            Scheme::Unspecified => &[Scheme::Unspecified, Scheme::Https, Scheme::Http],
            Scheme::Https => &[Scheme::Https, Scheme::Unspecified],
            Scheme::Http => &[Scheme::Http, Scheme::Unspecified],
        }
    }
}

/// A parsed server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    scheme: Scheme,
    /// Lower-case host with its port, if one was given.
    host: String,
    /// Empty for a registry root, else `/segment/...` without a trailing slash.
    path: String,
}

impl ServerUrl {
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(UrlError::Missing);
        }
        if raw.len() > MAX_LEN {
            return Err(UrlError::TooLong);
        }
        if raw
            .chars()
            .any(|c| crate::printable::is_hidden(c) || c.is_whitespace())
        {
            return Err(UrlError::Characters);
        }
        let (scheme, rest) = split_scheme(raw)?;
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let host = parse_host(authority)?;
        // Queries and fragments never name a different registry.
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let path = path.trim_end_matches('/');
        let (host, path) = if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
            let path = match path {
                "" | "/v1" | "/v2" => DOCKER_HUB_ROOT,
                other => other,
            };
            (DOCKER_HUB_HOST.to_owned(), path.to_owned())
        } else {
            (host, path.to_owned())
        };
        Ok(ServerUrl { scheme, host, path })
    }

    /// The key an entry for this URL is stored under.
    pub fn key(&self) -> String {
        self.key_with(self.scheme, &self.path)
    }

    /// The host with its port, as a registry is addressed over HTTP.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Empty for a registry root, else `/segment/...`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn is_docker_hub(&self) -> bool {
        self.host == DOCKER_HUB_HOST
    }

    /// The registry and repository as containers tools key `auth.json` and kubelets match
    /// images: `docker.io` for Docker Hub, else `host[:port]`, plus any repository path.
    pub fn registry_path(&self) -> String {
        if self.is_docker_hub() {
            let repository = if self.path == DOCKER_HUB_ROOT {
                ""
            } else {
                self.path.as_str()
            };
            format!("docker.io{repository}")
        } else {
            format!("{}{}", self.host, self.path)
        }
    }

    /// Stored keys that answer a `get` for this URL, best match first.
    pub fn lookup_keys(&self) -> Vec<String> {
        let mut paths = vec![self.path.as_str()];
        if let Some(root) = self.registry_root_fallback() {
            paths.push(root);
        }
        self.keys_for(&paths)
    }

    /// Stored keys an `erase` of this URL may remove: any compatible scheme, but only this path.
    pub fn erase_keys(&self) -> Vec<String> {
        self.keys_for(&[self.path.as_str()])
    }

    fn keys_for(&self, paths: &[&str]) -> Vec<String> {
        paths
            .iter()
            .flat_map(|path| {
                self.scheme
                    .lookup_order()
                    .iter()
                    .map(move |&scheme| self.key_with(scheme, path))
            })
            .collect()
    }

    /// The registry's root path when this URL names a repository inside it.
    ///
    /// Docker Hub's own `/v1/...` and `/v2/...` paths (access and refresh tokens) are separate
    /// entries, never repositories.
    fn registry_root_fallback(&self) -> Option<&'static str> {
        let hub = self.host == DOCKER_HUB_HOST;
        let root = if hub { DOCKER_HUB_ROOT } else { "" };
        if self.path == root
            || (hub && (self.path.starts_with("/v1/") || self.path.starts_with("/v2/")))
        {
            None
        } else {
            Some(root)
        }
    }

    fn key_with(&self, scheme: Scheme, path: &str) -> String {
        format!("{}{}{}", scheme.prefix(), self.host, path)
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

fn split_scheme(raw: &str) -> Result<(Scheme, &str), UrlError> {
    let Some(at) = raw.find("://") else {
        return Ok((Scheme::Unspecified, raw));
    };
    let rest = &raw[at + 3..];
    match raw[..at].to_ascii_lowercase().as_str() {
        "https" => Ok((Scheme::Https, rest)),
        "http" => Ok((Scheme::Http, rest)),
        _ => Err(UrlError::Scheme),
    }
}

fn parse_host(authority: &str) -> Result<String, UrlError> {
    let host = authority.to_ascii_lowercase();
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.starts_with('[') || name.ends_with(']') => (name, Some(port)),
        _ => (host.as_str(), None),
    };
    let name_ok = if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
    } else {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if name_ok && port_ok {
        Ok(host)
    } else {
        Err(UrlError::Host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> String {
        ServerUrl::parse(raw).expect(raw).key()
    }

    /// Every spelling real clients send, and the key it is stored under.
    #[test]
    fn keys_for_every_spelling() {
        let table = [
            // Docker Hub, as the docker CLI, skopeo, oras and crane name it.
            ("https://index.docker.io/v1/", "https://index.docker.io/v1"),
            ("index.docker.io", "//index.docker.io/v1"),
            ("docker.io", "//index.docker.io/v1"),
            ("registry-1.docker.io", "//index.docker.io/v1"),
            (
                "https://registry-1.docker.io/v2/",
                "https://index.docker.io/v1",
            ),
            ("DOCKER.IO", "//index.docker.io/v1"),
            // Docker Hub's web-login entries keep their paths.
            (
                "https://index.docker.io/v1/access-token",
                "https://index.docker.io/v1/access-token",
            ),
            (
                "https://index.docker.io/v1/refresh-token",
                "https://index.docker.io/v1/refresh-token",
            ),
            // host:port, with and without scheme.
            ("127.0.0.1:5000", "//127.0.0.1:5000"),
            ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
            ("https://127.0.0.1:5000/", "https://127.0.0.1:5000"),
            ("localhost", "//localhost"),
            ("[::1]:5000", "//[::1]:5000"),
            ("Ghcr.IO", "//ghcr.io"),
            ("HTTPS://ghcr.io", "https://ghcr.io"),
            ("  ghcr.io\n", "//ghcr.io"),
            // Repository paths are kept in the key; lookups fall back (see below).
            ("ghcr.io/org/image", "//ghcr.io/org/image"),
            ("ghcr.io/org/image/", "//ghcr.io/org/image"),
            (
                "docker.io/library/alpine",
                "//index.docker.io/library/alpine",
            ),
            ("https://quay.io/v2/?x=1#frag", "https://quay.io/v2"),
            ("my_registry.local:443", "//my_registry.local:443"),
        ];
        for (raw, want) in table {
            assert_eq!(key(raw), want, "key of {raw:?}");
        }
    }

    #[test]
    fn refused_spellings() {
        let table = [
            ("", UrlError::Missing),
            ("   \n", UrlError::Missing),
            ("ftp://example.com", UrlError::Scheme),
            ("https://", UrlError::Host),
            ("https:///path", UrlError::Host),
            ("user@host", UrlError::Host),
            ("host:port", UrlError::Host),
            ("host:123456", UrlError::Host),
            ("ex ample.com", UrlError::Characters),
            ("example.com\0", UrlError::Characters),
            ("[]:5000", UrlError::Host),
        ];
        for (raw, want) in table {
            assert_eq!(ServerUrl::parse(raw), Err(want), "parse of {raw:?}");
        }
    }

    /// Which stored key answers a query, in order of preference.
    #[test]
    fn lookup_order() {
        let table: [(&str, &[&str]); 7] = [
            (
                "ghcr.io",
                &["//ghcr.io", "https://ghcr.io", "http://ghcr.io"],
            ),
            ("https://ghcr.io", &["https://ghcr.io", "//ghcr.io"]),
            (
                "http://127.0.0.1:5000",
                &["http://127.0.0.1:5000", "//127.0.0.1:5000"],
            ),
            (
                "ghcr.io/org/image",
                &[
                    "//ghcr.io/org/image",
                    "https://ghcr.io/org/image",
                    "http://ghcr.io/org/image",
                    "//ghcr.io",
                    "https://ghcr.io",
                    "http://ghcr.io",
                ],
            ),
            (
                "docker.io",
                &[
                    "//index.docker.io/v1",
                    "https://index.docker.io/v1",
                    "http://index.docker.io/v1",
                ],
            ),
            (
                "index.docker.io/library/alpine",
                &[
                    "//index.docker.io/library/alpine",
                    "https://index.docker.io/library/alpine",
                    "http://index.docker.io/library/alpine",
                    "//index.docker.io/v1",
                    "https://index.docker.io/v1",
                    "http://index.docker.io/v1",
                ],
            ),
            (
                "https://index.docker.io/v1/access-token",
                &[
                    "https://index.docker.io/v1/access-token",
                    "//index.docker.io/v1/access-token",
                ],
            ),
        ];
        for (query, want) in table {
            assert_eq!(
                ServerUrl::parse(query).expect(query).lookup_keys(),
                want,
                "lookup of {query:?}"
            );
        }
    }

    #[test]
    fn registry_paths_as_containers_tools_write_them() {
        let table = [
            ("https://index.docker.io/v1/", "docker.io"),
            ("docker.io/library/alpine", "docker.io/library/alpine"),
            ("https://127.0.0.1:5000", "127.0.0.1:5000"),
            ("ghcr.io/org/image", "ghcr.io/org/image"),
        ];
        for (raw, want) in table {
            assert_eq!(
                ServerUrl::parse(raw).expect(raw).registry_path(),
                want,
                "{raw}"
            );
        }
    }

    #[test]
    fn http_and_https_never_match() {
        let https = ServerUrl::parse("https://r.example").expect("valid");
        let http = ServerUrl::parse("http://r.example").expect("valid");
        assert!(!https.lookup_keys().contains(&http.key()));
        assert!(!http.lookup_keys().contains(&https.key()));
        assert!(!https.erase_keys().contains(&http.key()));
    }

    #[test]
    fn erase_never_falls_back_to_the_registry() {
        let url = ServerUrl::parse("ghcr.io/org/image").expect("valid");
        assert!(!url.erase_keys().contains(&"//ghcr.io".to_owned()));
        assert_eq!(url.erase_keys()[0], "//ghcr.io/org/image");
    }
}
