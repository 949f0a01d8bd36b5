//! Every shell example of README.md and docs/ runs here, as written, so that a renamed flag or
//! a changed message cannot leave a wrong example behind (docs/testing.md, "The examples").
//!
//! A fence whose language is `sh`, `bash`, `shell` or `console` is an example. The line before
//! it says how it runs:
//! - nothing: on a machine where `coffer setup docker` has run and two logins are stored
//!   (`registry.example.com` as alice, `ghcr.io` as bob; [`machine`]), with the built binaries
//!   first on PATH;
//! - `<!-- run here on a fresh machine -->`: in an empty home, with no passphrase set;
//! - `<!-- not run here: REASON -->`: not at all (a real EKS node, a registry to log in to);
//!   the reason is required, and any other comment there fails the test.
//!
//! An `sh` example must exit 0 under `bash -euo pipefail`. In a `console` example each `$ `
//! line is a command and the lines after it are what it prints (stdout and stderr, as a
//! terminal shows them), compared by snapbox: `[..]` matches within a line, `...` whole lines.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Env, Run};

/// What every example may use: a passphrase, a password in a file and in `$TOKEN`, and a
/// kubelet's request.
const TOKEN: &str = "example-token";
const KUBELET_REQUEST: &str = r#"{"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest", "image": "registry.example.com/team/app:1.2"}"#;

#[derive(Debug, Clone, Copy, PartialEq)]
enum How {
    WithLogins,
    Fresh,
    NotHere,
}

#[derive(Debug)]
struct Example {
    /// `README.md:54`: where the fence opens.
    place: String,
    language: String,
    body: String,
    how: How,
}

fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    pages.insert(0, root.join("README.md"));
    pages
}

/// The examples of one page, with a failure for each fence whose marker is not one of ours.
fn examples_of(page: &Path, wrong: &mut Vec<String>) -> Vec<Example> {
    let text = fs::read_to_string(page).expect("page");
    let name = page
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(page)
        .display()
        .to_string()
        .trim_start_matches('/')
        .to_owned();
    let lines: Vec<&str> = text.lines().collect();
    let mut examples = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let Some(language) = lines[at].strip_prefix("```") else {
            at += 1;
            continue;
        };
        let end = (at + 1..lines.len())
            .find(|&i| lines[i].starts_with("```"))
            .unwrap_or(lines.len());
        let place = format!("{name}:{}", at + 1);
        let before = if at == 0 { "" } else { lines[at - 1].trim() };
        let how = match before {
            "<!-- run here on a fresh machine -->" => How::Fresh,
            marker if marker.starts_with("<!-- not run here: ") && marker.len() > 24 => {
                How::NotHere
            }
            marker if marker.starts_with("<!--") => {
                wrong.push(format!("{place}: unknown marker {marker}"));
                How::NotHere
            }
            _ => How::WithLogins,
        };
        if ["sh", "bash", "shell", "console"].contains(&language) {
            examples.push(Example {
                place,
                language: language.to_owned(),
                body: lines[at + 1..end].join("\n"),
                how,
            });
        }
        at = end + 1;
    }
    examples
}

/// A home for one example: `HOME`'s own defaults (no `COFFER_HOME`, no `DOCKER_CONFIG`), and
/// unless fresh, docker set up, a passphrase in `~/.config/coffer/passphrase` and two logins.
fn machine(how: How) -> (Env, PathBuf) {
    let env = Env::empty();
    fs::remove_file(env.passphrase_file()).expect("rm passphrase");
    let work = env.root().join("work");
    fs::create_dir(&work).expect("mkdir");
    env.write_private(&work.join("token.txt"), &format!("{TOKEN}\n"));
    env.write_private(&work.join("password.txt"), &format!("{TOKEN}\n"));
    fs::write(work.join("request.json"), KUBELET_REQUEST).expect("request");
    if how == How::WithLogins {
        run(&env, &work, how, "coffer setup docker").success();
        let config = env.home().join(".config/coffer");
        fs::create_dir_all(&config).expect("mkdir");
        env.write_private(
            &config.join("passphrase"),
            &format!("{}\n", crate::harness::PASSPHRASE),
        );
        for (registry, user) in [("registry.example.com", "alice"), ("ghcr.io", "bob")] {
            run(
                &env,
                &work,
                how,
                &format!("coffer login {registry} --username {user} --password-stdin < token.txt"),
            )
            .success();
        }
    }
    (env, work)
}

fn run(env: &Env, work: &Path, how: How, script: &str) -> Run {
    let mut cmd: Command = env.command("bash");
    cmd.env_remove("COFFER_HOME")
        .env_remove("DOCKER_CONFIG")
        .env("TOKEN", TOKEN)
        .current_dir(work)
        .args(["-euo", "pipefail", "-c", script]);
    if how == How::WithLogins {
        cmd.env(
            "COFFER_PASSPHRASE_FILE",
            env.home().join(".config/coffer/passphrase"),
        );
    }
    Run::of(&mut cmd, "")
}

/// `$ ` lines and what follows each, up to the next.
fn console_steps(body: &str) -> Vec<(String, String)> {
    let mut steps: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        match line.strip_prefix("$ ") {
            Some(command) => steps.push((command.to_owned(), String::new())),
            None => {
                if let Some((_, shown)) = steps.last_mut() {
                    shown.push_str(line);
                    shown.push('\n');
                }
            }
        }
    }
    steps
}

fn check(example: &Example) -> Result<(), String> {
    let (env, work) = machine(example.how);
    if example.language != "console" {
        let done = run(&env, &work, example.how, &example.body);
        return match done.code() {
            Some(0) => Ok(()),
            code => Err(format!(
                "{} exited {code:?}:\n{}\n--- stdout\n{}--- stderr\n{}",
                example.place,
                example.body,
                done.stdout(),
                done.stderr()
            )),
        };
    }
    for (command, shown) in console_steps(&example.body) {
        let done = run(&env, &work, example.how, &format!("{command} 2>&1"));
        let actual = done.stdout();
        snapbox::Assert::new()
            .palette(snapbox::report::Palette::plain())
            .try_eq(
                Some(&example.place),
                actual.clone().into(),
                shown.clone().into(),
            )
            .map_err(|e| format!("{}: `{command}` printed otherwise: {e}", example.place))?;
        if done.code() != Some(0) {
            return Err(format!("{}: `{command}` failed:\n{actual}", example.place));
        }
    }
    Ok(())
}

#[test]
fn every_shell_example_of_the_docs_runs() {
    let mut wrong = Vec::new();
    let examples: Vec<Example> = pages()
        .iter()
        .flat_map(|page| examples_of(page, &mut wrong))
        .collect();
    let run_here: Vec<&Example> = examples.iter().filter(|e| e.how != How::NotHere).collect();
    assert!(
        run_here.len() >= 20,
        "only {} examples run: {examples:#?}",
        run_here.len()
    );
    for example in &run_here {
        if let Err(failure) = check(example) {
            wrong.push(failure);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} examples are wrong:\n\n{}",
        wrong.len(),
        run_here.len(),
        wrong.join("\n\n")
    );
}

/// `man coffer-config` lists every setting of the library's one list, and every key that a
/// `toml` example of the docs sets is in that list, so neither the page nor an example can
/// name a setting coffer does not have.
#[test]
fn the_config_page_lists_every_setting_the_docs_use() {
    let env = Env::empty();
    let man = env.root().join("man");
    env.coffer(&["generate", "man", man.to_str().expect("utf-8")])
        .success();
    let page = fs::read_to_string(man.join("coffer-config.1")).expect("coffer-config.1");
    let known: Vec<&str> = coffer::config::SETTINGS.iter().map(|s| s.key).collect();
    for setting in coffer::config::SETTINGS {
        let line = format!("{} = {}", setting.key, setting.example).replace('-', "\\-");
        assert!(
            page.contains(&line),
            "coffer-config.1 lacks {line}:\n{page}"
        );
    }
    let mut unknown = Vec::new();
    for path in pages() {
        let text = fs::read_to_string(&path).expect("page");
        let mut in_toml = false;
        for (at, line) in text.lines().enumerate() {
            if line.starts_with("```") {
                in_toml = line == "```toml";
                continue;
            }
            let Some((key, _)) = line.split_once(" = ").filter(|_| in_toml) else {
                continue;
            };
            let key = key.trim();
            if !key.starts_with('#') && !known.contains(&key) {
                unknown.push(format!("{}:{}: {key}", path.display(), at + 1));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "settings missing from coffer::config::SETTINGS:\n{}",
        unknown.join("\n")
    );
}

/// The code's messages: the format string of every `#[error(...)]`, `bail!`, `anyhow!`,
/// `.context`/`.with_context` and `Warning::new(format!(...))` in `src/`, outside tests.
fn messages_in_code() -> Vec<(String, String)> {
    const NEEDLES: [&str; 5] = [
        "#[error(",
        "bail!(",
        "anyhow!(",
        "context(",
        "Warning::new(format!(",
    ];
    let mut messages = Vec::new();
    for (file, text) in sources() {
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for needle in NEEDLES {
            for (at, _) in text.match_indices(needle) {
                let after = &text[at + needle.len()..];
                if after.trim_start().starts_with("transparent") {
                    continue;
                }
                if let Some(literal) = first_literal(after) {
                    messages.push((file.clone(), literal));
                }
            }
        }
    }
    messages
}

/// Every `.rs` file under `src/`, by path, with its text.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, found: &mut Vec<(String, String)>) {
        for entry in fs::read_dir(dir).expect("src/").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = fs::read_to_string(&path).expect("source");
                found.push((path.display().to_string(), text));
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    found
}

/// The first string literal in `text`, unescaped (`\"`, `\\`, `\n`, and a `\` at a line's
/// end that joins the next line without its indent).
fn first_literal(text: &str) -> Option<String> {
    let start = text.find('"')?;
    // Only a literal that opens the macro: not one in a later argument of a bare `{0}`.
    if text[..start].contains(')') {
        return None;
    }
    let mut chars = text[start + 1..].chars().peekable();
    let mut literal = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(literal),
            '\\' => match chars.next()? {
                '\n' => while chars.next_if(|c| c.is_whitespace()).is_some() {},
                'n' => literal.push('\n'),
                other => literal.push(other),
            },
            c => literal.push(c),
        }
    }
    None
}

/// Text as compared: no backticks or backslashes (Markdown's code spans and escapes), one
/// space for any run of white space.
fn plain(text: &str) -> String {
    text.replace(['`', '\\'], "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The pieces of a message that are the same every time: between placeholders (`{…}` in the
/// code, `…` on the page), trimmed, of at least three words. A message with none (`{0}`,
/// `sealed`) is only ever shown inside another one.
fn fixed_pieces(message: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = message;
    loop {
        let cut = rest.find(['{', '…']).unwrap_or(rest.len());
        let piece = plain(&rest[..cut]);
        let piece = piece.trim_matches(|c: char| c == ' ' || c == ':' || c == ';' || c == ',');
        if piece.split(' ').count() >= 3 {
            pieces.push(piece.to_owned());
        }
        if cut == rest.len() {
            return pieces;
        }
        rest = &rest[cut..];
        let skip = if rest.starts_with('{') {
            rest.find('}').map_or(rest.len(), |end| end + 1)
        } else {
            '…'.len_utf8()
        };
        rest = &rest[skip..];
    }
}

/// docs/troubleshooting.md lists every message the code can stop or warn with, and every
/// message it lists is still in the code: a changed message changes the page.
#[test]
fn troubleshooting_lists_every_message_and_only_those() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/troubleshooting.md");
    let page = fs::read_to_string(&path).expect("troubleshooting.md");
    let catalogue = page
        .split_once("## Every message")
        .expect("troubleshooting.md: ## Every message")
        .1;
    let listed = plain(catalogue);
    let messages = messages_in_code();
    assert!(
        messages.len() > 150,
        "only {} messages found",
        messages.len()
    );
    let mut missing: Vec<String> = Vec::new();
    for (file, message) in &messages {
        for piece in fixed_pieces(message) {
            if !listed.contains(&piece) {
                missing.push(format!("{file}: {piece:?}"));
            }
        }
    }
    let code = plain(
        &sources()
            .iter()
            .map(|(_, text)| text.replace("\\\n", "").replace("\\\"", "\""))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let mut gone: Vec<String> = Vec::new();
    for row in catalogue.lines().filter(|l| l.starts_with("| ")) {
        let message = row
            .split(" | ")
            .next()
            .unwrap_or_default()
            .trim_start_matches("| ");
        if message == "message" {
            continue;
        }
        for piece in fixed_pieces(message) {
            if !code.contains(&piece) {
                gone.push(format!("{message:?}: {piece:?}"));
            }
        }
    }
    assert!(
        missing.is_empty() && gone.is_empty(),
        "messages in the code but not in docs/troubleshooting.md:\n{}\n\n\
         messages in docs/troubleshooting.md but not in the code:\n{}",
        missing.join("\n"),
        gone.join("\n")
    );
}

/// Every `see: docs/PAGE.md#ANCHOR` and `see: man coffer-PAGE` in a message of the code names
/// a page that exists and, for an anchor, a heading of that page.
#[test]
fn every_pointer_in_a_message_names_a_page_that_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pointers = Vec::new();
    for (path, text) in sources() {
        for (_, rest) in text
            .match_indices("see: ")
            .map(|(at, _)| text.split_at(at + 5))
        {
            let rest = rest.trim_start_matches(['\\', '\n', ' ']);
            let (man, rest) = match rest.strip_prefix("man ") {
                Some(page) => ("man ", page),
                None => ("", rest),
            };
            let page: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && !"\"`),;".contains(*c))
                .collect();
            let target = format!("{man}{page}");
            pointers.push((path.clone(), target));
        }
    }
    let env = Env::empty();
    let man = env.root().join("man");
    env.coffer(&["generate", "man", man.to_str().expect("utf-8")])
        .success();
    let mut wrong = Vec::new();
    for (file, target) in &pointers {
        let found = if let Some(page) = target.strip_prefix("man ") {
            man.join(format!("{page}.1")).is_file()
        } else if let Some(doc) = target.strip_prefix("docs/") {
            let (page, anchor) = doc.split_once('#').unwrap_or((doc, ""));
            leads_somewhere(&root.join("docs").join(page), anchor)
        } else {
            false
        };
        if !found {
            wrong.push(format!("{file}: see: {target}"));
        }
    }
    assert!(pointers.len() >= 4, "{pointers:?}");
    assert!(
        wrong.is_empty(),
        "pointers to nothing:\n{}",
        wrong.join("\n")
    );
}

/// Whether `page` exists and, unless `anchor` is empty, has a heading whose GitHub anchor it
/// is (lower case, spaces to `-`, punctuation dropped), outside code blocks.
fn leads_somewhere(page: &Path, anchor: &str) -> bool {
    let Ok(text) = fs::read_to_string(page) else {
        return page.is_dir() && anchor.is_empty();
    };
    if anchor.is_empty() {
        return true;
    }
    let mut in_code = false;
    text.lines().any(|line| {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let heading = line.trim_start_matches('#');
        !in_code && line.starts_with('#') && slug(heading) == anchor
    })
}

fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Pages the README already links that another branch brings; an entry goes once its page is
/// on main.
const COMING: &[&str] = &[];

/// Every relative link of README.md and docs/ (`[text](path)`, `[text](path#anchor)`,
/// `[text](#anchor)`) leads to a file of the repository and, for an anchor, to a heading.
#[test]
fn every_link_of_the_docs_leads_somewhere() {
    let mut wrong = Vec::new();
    let mut links = 0;
    for page in pages() {
        let text = fs::read_to_string(&page).expect("page");
        let folder = page.parent().expect("folder");
        let mut in_code = false;
        for (at, line) in text.lines().enumerate() {
            if line.starts_with("```") {
                in_code = !in_code;
            }
            if in_code {
                continue;
            }
            for (start, _) in line.match_indices("](") {
                let rest = &line[start + 2..];
                let Some(end) = rest.find(')') else { continue };
                let target = &rest[..end];
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                links += 1;
                let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
                let file = if file.is_empty() {
                    page.clone()
                } else {
                    folder.join(file)
                };
                let coming = COMING.iter().any(|c| file.ends_with(c));
                if !coming && !leads_somewhere(&file, anchor) {
                    wrong.push(format!("{}:{}: {target}", page.display(), at + 1));
                }
            }
        }
    }
    assert!(links > 50, "only {links} links found");
    assert!(wrong.is_empty(), "links to nothing:\n{}", wrong.join("\n"));
}
