//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1): which scheme a registry asks for, and the
//! realm and service of a Bearer challenge.
//!
//! One header may hold several challenges, and parameters are separated by the same commas, so a
//! challenge ends where a bare token is followed by something other than `=`. Quoted values may
//! hold commas, spaces and backslash escapes.

use std::collections::BTreeMap;

/// One challenge: a lower-case scheme and its parameters (lower-case names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Every challenge in one header value. Malformed parts end the parse; what was read is kept.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut lexer = Lexer {
        rest: header.as_bytes(),
    };
    let mut challenges = Vec::new();
    loop {
        lexer.skip_separators();
        let Some(scheme) = lexer.token() else {
            return challenges;
        };
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        lexer.skip_spaces();
        if lexer.skip_token68() {
            challenges.push(challenge);
            continue;
        }
        loop {
            lexer.skip_separators();
            let checkpoint = lexer.rest;
            let Some(name) = lexer.token() else {
                break;
            };
            lexer.skip_spaces();
            if !lexer.eat(b'=') {
                // A bare token: the next challenge's scheme.
                lexer.rest = checkpoint;
                break;
            }
            lexer.skip_spaces();
            let value = if lexer.peek() == Some(b'"') {
                lexer.quoted()
            } else {
                lexer.bare_value()
            };
            let Some(value) = value else {
                challenges.push(challenge);
                return challenges;
            };
            challenge.params.insert(name.to_ascii_lowercase(), value);
        }
        challenges.push(challenge);
    }
}

/// The first challenge with `scheme` among several header values.
pub fn find<'h>(headers: impl IntoIterator<Item = &'h str>, scheme: &str) -> Option<Challenge> {
    headers
        .into_iter()
        .flat_map(parse)
        .find(|c| c.scheme == scheme)
}

struct Lexer<'a> {
    rest: &'a [u8],
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.rest = &self.rest[1..];
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.rest = &self.rest[1..];
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.rest = &self.rest[1..];
        }
    }

    /// An RFC 9110 token (tchar+).
    fn token(&mut self) -> Option<&'a str> {
        let len = self.rest.iter().take_while(|&&b| is_tchar(b)).count();
        if len == 0 {
            return None;
        }
        let (token, rest) = self.rest.split_at(len);
        self.rest = rest;
        std::str::from_utf8(token).ok()
    }

    /// An unquoted value. The grammar allows only a token, but registries write URLs bare
    /// too, so it runs to the next comma or space.
    fn bare_value(&mut self) -> Option<String> {
        let len = self
            .rest
            .iter()
            .take_while(|&&b| !matches!(b, b',' | b' ' | b'\t' | b'"'))
            .count();
        if len == 0 {
            return None;
        }
        let (value, rest) = self.rest.split_at(len);
        self.rest = rest;
        String::from_utf8(value.to_vec()).ok()
    }

    /// A quoted string with backslash escapes; `None` when the closing quote is missing.
    fn quoted(&mut self) -> Option<String> {
        let mut value = Vec::new();
        let mut bytes = self.rest.iter().enumerate().skip(1);
        while let Some((i, &b)) = bytes.next() {
            match b {
                b'"' => {
                    self.rest = &self.rest[i + 1..];
                    return String::from_utf8(value).ok();
                }
                b'\\' => value.push(*bytes.next()?.1),
                other => value.push(other),
            }
        }
        None
    }

    /// Skips a token68 credential blob right after a scheme (`Negotiate YWJj==`), if one is
    /// there: token68 characters with `=` only as trailing padding, then the end or a comma.
    fn skip_token68(&mut self) -> bool {
        let len = self
            .rest
            .iter()
            .take_while(|&&b| is_token68_char(b))
            .count();
        let run = &self.rest[..len];
        let padding_only_at_end = run
            .iter()
            .position(|&b| b == b'=')
            .is_none_or(|at| run[at..].iter().all(|&b| b == b'='));
        let ends = matches!(self.rest.get(len), None | Some(b',' | b' ' | b'\t'));
        if len == 0 || !padding_only_at_end || !ends {
            return false;
        }
        self.rest = &self.rest[len..];
        true
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(header: &str) -> Challenge {
        let mut all = parse(header);
        assert_eq!(all.len(), 1, "{header}: {all:?}");
        all.remove(0)
    }

    #[test]
    fn bearer_with_realm_and_service() {
        let c = one(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example/token"));
        assert_eq!(c.param("service"), Some("registry.example"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
    }

    #[test]
    fn commas_and_spaces_inside_quotes_and_escapes() {
        let c = one(
            r#"Bearer realm="http://127.0.0.1:5001/token?a=1,b=2", scope="repository:x:pull repository:y:push", error="a \"quoted\" word\\""#,
        );
        assert_eq!(
            c.param("realm"),
            Some("http://127.0.0.1:5001/token?a=1,b=2")
        );
        assert_eq!(
            c.param("scope"),
            Some("repository:x:pull repository:y:push")
        );
        assert_eq!(c.param("error"), Some(r#"a "quoted" word\"#));
    }

    #[test]
    fn scheme_and_names_are_case_insensitive_and_tokens_may_be_unquoted() {
        let c = one("BEARER Realm=https://auth.example/token ,  SERVICE=reg");
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example/token"));
        assert_eq!(c.param("service"), Some("reg"));
    }

    #[test]
    fn several_challenges_in_one_header() {
        let all = parse(
            r#"Basic realm="Registry Realm", Bearer realm="https://a/token",service="s", Negotiate"#,
        );
        let schemes: Vec<_> = all.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["basic", "bearer", "negotiate"]);
        assert_eq!(all[0].param("realm"), Some("Registry Realm"));
        assert_eq!(all[1].param("service"), Some("s"));
    }

    #[test]
    fn token68_is_skipped() {
        let all = parse(r#"Negotiate YWJjZA==, Bearer realm="r""#);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].param("realm"), Some("r"));
    }

    #[test]
    fn basic_is_not_bearer() {
        let headers = [r#"Basic realm="docker-registry""#];
        assert!(find(headers, "bearer").is_none());
        assert_eq!(
            find(headers, "basic").and_then(|c| c.param("realm").map(str::to_owned)),
            Some("docker-registry".to_owned())
        );
    }

    #[test]
    fn malformed_input_never_panics_and_keeps_what_was_read() {
        for header in [
            "",
            ",,,",
            "Bearer",
            "Bearer realm",
            "Bearer realm=",
            r#"Bearer realm="unterminated"#,
            "Bearer realm=\"\\",
            "=\"x\"",
            "Bearer \u{e9}=1",
        ] {
            let _ = parse(header);
        }
        let c = &parse(r#"Bearer service="s", realm="open"#)[0];
        assert_eq!(c.param("service"), Some("s"));
        assert_eq!(c.param("realm"), None);
    }
}
