//! Odd and hostile input through the real helper: each is one line on stdout, exit 1, nothing
//! on stderr, no echo of what was sent, and the vault is untouched. (The ordinary protocol
//! errors are in `wire.rs`.)

use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Env, Run, bin};

/// Put into inputs that must never be quoted back.
const MARKER: &str = "hostile-secret-91d2";
const TOO_LARGE: &str = "the request is larger than 1048576 bytes; refusing it\n";
const NOT_AN_OBJECT: &str = "it must be an object whose ServerURL, Username and Secret are strings";

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn odd_input_is_one_line_and_exit_1() {
    let env = Env::new();
    let store = |rest: &str| format!(r#"{{"Username":"u","Secret":"{MARKER}"{rest}}}"#);
    let too_large = format!("{}{}", store(""), " ".repeat(1 << 20));
    let table: Vec<(&[&str], Vec<u8>, String)> = vec![
        (
            &["store"],
            b"".to_vec(),
            "invalid store request: it ends too early (line 1, column 0)".into(),
        ),
        (
            &["store"],
            b" \n\t ".to_vec(),
            "invalid store request: it ends too early (line 2, column 2)".into(),
        ),
        (
            &["store"],
            b"null".to_vec(),
            format!("invalid store request: {NOT_AN_OBJECT} (line 1, column 4)"),
        ),
        (
            &["store"],
            format!("\"{MARKER}\"").into_bytes(),
            format!("invalid store request: {NOT_AN_OBJECT} (line 1, column 21)"),
        ),
        (
            &["store"],
            format!("\u{feff}{}", store(r#","ServerURL":"r.example""#)).into_bytes(),
            "invalid store request: it is not valid JSON (line 1, column 1)".into(),
        ),
        (
            &["store"],
            store(r#","ServerURL":"r.example","x":"a\u0000b""#)
                .replace("\\u0000", "\0")
                .into_bytes(),
            "the request holds a NUL byte; refusing it".into(),
        ),
        (
            &["get"],
            b"r.example\0".to_vec(),
            "the request holds a NUL byte; refusing it".into(),
        ),
        (
            &["erase"],
            b"\0".to_vec(),
            "the request holds a NUL byte; refusing it".into(),
        ),
        (
            &["store"],
            [store(",").as_bytes(), b"\"ServerURL\":\"r.\xffexample\"}"].concat(),
            "the request is not valid UTF-8".into(),
        ),
        (
            &["get"],
            b"r.example\xc3\x28".to_vec(),
            "the request is not valid UTF-8".into(),
        ),
        (
            &["list"],
            b"\xfe\xff".to_vec(),
            "the request is not valid UTF-8".into(),
        ),
        // serde_json skips an unknown field without recursing, and typed fields refuse an
        // array at its first bracket: no depth can overflow the stack.
        (
            &["store"],
            nested(500_000).into_bytes(),
            format!("invalid store request: {NOT_AN_OBJECT} (line 1, column 0)"),
        ),
        (
            &["store"],
            format!(
                r#"{{"x":{},"Username":"u","Secret":"{MARKER}"}}"#,
                nested(400_000)
            )
            .into_bytes(),
            "no credentials server URL".into(),
        ),
        (
            &["store"],
            store(&format!(r#","ServerURL":{}"#, nested(400_000))).into_bytes(),
            format!("invalid store request: {NOT_AN_OBJECT} (line 1, column 59)"),
        ),
        (
            &["store"],
            format!(r#"{{"ServerURL":"r.example","Username":"{MARKER}","Secret":"\ud800"}}"#)
                .into_bytes(),
            "invalid store request: it is not valid JSON (line 1, column 75)".into(),
        ),
        (
            &["store"],
            store(r#","ServerURL":"r.example\u0007""#).into_bytes(),
            "invalid server URL: control or invisible characters and spaces are not allowed".into(),
        ),
        (
            &["get"],
            b"ghcr.io\x1b[2J".to_vec(),
            "invalid server URL: control or invisible characters and spaces are not allowed".into(),
        ),
        (
            &["get"],
            format!("{MARKER}://ghcr.io").into_bytes(),
            "unsupported scheme in server URL (use https://, http:// or none)".into(),
        ),
        (
            &["store"],
            too_large.into_bytes(),
            TOO_LARGE.trim_end().into(),
        ),
        (
            &[""],
            Vec::new(),
            "docker-credential-coffer: unknown action:".into(),
        ),
        (
            &["STORE"],
            Vec::new(),
            "docker-credential-coffer: unknown action: STORE".into(),
        ),
        (
            &["get\r\nstore"],
            Vec::new(),
            "docker-credential-coffer: unknown action: get store".into(),
        ),
        (
            &["store", "--"],
            Vec::new(),
            "Usage: docker-credential-coffer <store|get|erase|list|version>".into(),
        ),
        (
            &["list", "--json", "x"],
            Vec::new(),
            "Usage: docker-credential-coffer <store|get|erase|list|version>".into(),
        ),
    ];
    let mut wrong = Vec::new();
    for (args, input, want) in &table {
        let run = Run::of_bytes(
            env.command(bin("docker-credential-coffer")).args(*args),
            input,
        );
        let got = (run.code(), run.stdout(), run.stderr());
        if got != (Some(1), format!("{want}\n"), String::new()) || got.1.contains(MARKER) {
            wrong.push(format!("{args:?} with {} bytes: {got:?}", input.len()));
        }
    }
    assert!(
        wrong.is_empty(),
        "unexpected answers:\n{}",
        wrong.join("\n")
    );

    // The longest server URL is accepted, a longer one refused, and the access log keeps its
    // line short.
    let longest = "a".repeat(coffer::server_url::MAX_LEN);
    let run = env.helper("get", &longest);
    assert_eq!(
        (run.code(), run.stdout()),
        (
            Some(1),
            "credentials not found in native keychain\n".to_owned()
        )
    );
    let run = env.helper("get", &"a".repeat(1 << 20));
    assert_eq!(
        (run.code(), run.stdout()),
        (
            Some(1),
            "invalid server URL: longer than 4096 bytes\n".to_owned()
        )
    );
    let log = std::fs::read_to_string(env.coffer_home().join("access.log")).expect("log");
    assert!(log.lines().all(|line| line.len() < 1024), "a long log line");

    // Nothing was stored by any of it, and nothing of it was written anywhere.
    assert_eq!(env.helper("list", "").success().stdout(), "{}\n");
    assert!(env.files_containing(MARKER).is_empty());
}

/// A client that sends without end: the helper stops reading at the limit and answers at once.
#[test]
fn endless_stdin_is_cut_at_the_limit() {
    let env = Env::new();
    for action in ["store", "get"] {
        let mut child = env
            .command(bin("docker-credential-coffer"))
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        let written = std::sync::Arc::new(AtomicU64::new(0));
        let counter = written.clone();
        // Up to a gibibyte and a bit, produced lazily; the write fails once the helper is gone.
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'{'; 64 * 1024];
            while counter.load(Ordering::Relaxed) <= 1 << 30 {
                if stdin.write_all(&chunk).is_err() {
                    break;
                }
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        });
        let started = Instant::now();
        let output = child.wait_with_output().expect("wait");
        let elapsed = started.elapsed();
        writer.join().expect("writer");
        let sent = written.load(Ordering::Relaxed);
        assert_eq!(
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned()
            ),
            (Some(1), TOO_LARGE.to_owned(), String::new()),
            "{action}"
        );
        assert!(
            sent < 4 << 20,
            "{action}: the helper took {sent} bytes before refusing"
        );
        assert!(
            elapsed < Duration::from_secs(10),
            "{action}: took {elapsed:?}"
        );
        eprintln!(
            "hostile: {action} refused an endless stdin after {} KiB in {} ms",
            sent / 1024,
            elapsed.as_millis()
        );
    }
}

/// A URL or username of a million characters is refused by the helper; the longest accepted
/// ones, and names holding escape sequences, are listed by `coffer ls` and `coffer token
/// status` without a panic and without reaching the terminal raw.
#[test]
fn ls_and_token_status_show_long_and_hostile_names_safely() {
    let env = Env::new();
    let store = |url: &str, user: &str| {
        env.helper(
            "store",
            &serde_json::json!({"ServerURL": url, "Username": user, "Secret": MARKER}).to_string(),
        )
    };
    let huge = "a".repeat(1_000_000);
    assert_eq!(
        store(&huge, "u").failure().stdout(),
        "invalid server URL: longer than 4096 bytes\n"
    );
    assert_eq!(
        store("r.example", &huge).failure().stdout(),
        "the username is longer than 4096 bytes; refusing it\n"
    );
    let long_url = format!("{}.example", "b".repeat(4000));
    store(&long_url, &"c".repeat(4096)).success();
    store("forged.example", "eve\nevil.example  root\u{1b}[2J").success();
    // Every bidirectional mark and invisible formatting character, not only the overrides.
    let hidden = [
        '\u{200f}', '\u{061c}', '\u{202e}', '\u{2067}', '\u{200b}', '\u{2028}', '\u{feff}',
    ];
    let reordered: String = hidden.iter().flat_map(|&c| ['x', c]).collect();
    store("bidi.example", &reordered).success();
    // Not in a server URL at all.
    assert!(
        store("ghcr.io\u{200f}", "u")
            .failure()
            .stdout()
            .contains("invisible"),
        "a server URL with a hidden character"
    );
    for args in [&["ls"][..], &["token", "status"]] {
        let run = env.coffer(args);
        let out = run.success().stdout();
        assert!(
            !out.contains('\u{1b}'),
            "{args:?}: an escape reached the terminal"
        );
        assert!(
            !out.contains(hidden),
            "{args:?}: a hidden character reached the terminal"
        );
        assert!(
            out.lines().all(|line| !line.starts_with("evil.example")),
            "{args:?}: a forged row:\n{out}"
        );
        assert!(
            out.lines().all(|line| line.len() < 1024),
            "{args:?}: a huge row"
        );
    }
    let ls = env.coffer(&["ls"]).stdout();
    assert!(ls.contains("eve\\nevil.example  root\\u{1b}[2J"), "{ls}");
    assert!(ls.contains("x\\u{200f}x\\u{61c}x"), "{ls}");
    // A get's one line (which the terminal is also told) names the request escaped.
    let get = env.helper("get", "ghcr.io\u{1b}]0;owned\u{7}");
    assert!(!get.stdout().contains('\u{1b}'), "{}", get.stdout());
}

/// `coffer --profile NAME import docker` stores into that profile, and a config.json of 4,000
/// entries is imported with one vault write, not one per entry.
#[test]
fn import_docker_honours_profile_and_is_linear() {
    use base64ct::{Base64, Encoding};
    let env = Env::new();
    env.coffer(&[
        "--profile",
        "ci",
        "init",
        "--kdf-memory-mib",
        "19",
        "--kdf-iterations",
        "2",
    ])
    .success();
    let auths: serde_json::Map<String, serde_json::Value> = (0..4000)
        .map(|i| {
            let auth = Base64::encode_string(format!("user{i}:pass{i}").as_bytes());
            (format!("r{i}.example"), serde_json::json!({ "auth": auth }))
        })
        .collect();
    let file = env.root().join("config.json");
    std::fs::write(&file, serde_json::json!({ "auths": auths }).to_string()).expect("config");
    let started = Instant::now();
    let run = env.coffer(&[
        "--profile",
        "ci",
        "import",
        "docker",
        "--file",
        file.to_str().expect("utf-8"),
    ]);
    let took = started.elapsed();
    assert!(
        run.success().stdout().contains("imported 4000 credentials"),
        "{}",
        run.stdout()
    );
    eprintln!("hostile: imported 4,000 entries in {} ms", took.as_millis());
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let profile = env
        .coffer(&["--profile", "ci", "ls", "--json"])
        .success()
        .stdout();
    let listed: Vec<serde_json::Value> = serde_json::from_str(&profile).expect("json");
    assert_eq!(listed.len(), 4000);
    assert_eq!(
        env.coffer(&["ls"]).success().stdout(),
        "no credentials stored\n"
    );
}

/// Erasing what is not stored changes nothing: the vault file is not rewritten.
#[test]
fn erasing_a_missing_entry_does_not_rewrite_the_vault() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    env.helper(
        "store",
        r#"{"ServerURL":"kept.example","Username":"u","Secret":"s"}"#,
    )
    .success();
    let before = std::fs::metadata(env.vault()).expect("vault").ino();
    let run = env.helper("erase", "missing.example");
    assert_eq!(
        (run.code(), run.stdout()),
        (
            Some(1),
            "credentials not found in native keychain\n".to_owned()
        )
    );
    assert_eq!(std::fs::metadata(env.vault()).expect("vault").ino(), before);
}

/// `coffer login` refuses a secret over 1 MiB instead of storing the first mebibyte of it.
#[test]
fn login_refuses_a_secret_over_one_mebibyte() {
    let env = Env::new();
    let secret = env.root().join("secret");
    std::fs::write(&secret, "x".repeat((1 << 20) + 1)).expect("secret");
    let run = env.coffer(&[
        "login",
        "big.example",
        "--username",
        "u",
        "--secret-file",
        secret.to_str().expect("utf-8"),
    ]);
    run.failure();
    assert_eq!(
        run.stderr(),
        "coffer: the secret is larger than 1048576 bytes; refusing it\n"
    );
    assert_eq!(env.helper("list", "").success().stdout(), "{}\n");
}

/// A `config.toml` that others can write could name a command to run as its owner: refused.
#[test]
fn a_config_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let config = env.coffer_home().join("config.toml");
    std::fs::write(
        &config,
        "[registries.\"evil.example\"]\nmode = \"exec\"\ncommand = [\"touch\", \"/tmp/pwned\"]\nusername = \"x\"\n",
    )
    .expect("config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let run = env.helper(
        "store",
        r#"{"ServerURL":"evil.example","Username":"u","Secret":"s"}"#,
    );
    assert_eq!(
        (run.code(), run.stdout()),
        (
            Some(1),
            format!(
                "{} is accessible by other users; run `chmod 600 {}` and try again\n",
                config.display(),
                config.display()
            )
        )
    );
    let doctor = env.coffer(&["doctor"]);
    assert!(doctor.stdout().contains("chmod 600"), "{}", doctor.stdout());
}

/// A `vault.coffer` that is a symbolic link (to a synced folder, say) stays a link: every write
/// replaces its target, atomically, and never the link with a regular file.
#[test]
fn a_symlinked_vault_stays_a_link() {
    let env = Env::new();
    let elsewhere = env.root().join("synced");
    std::fs::create_dir(&elsewhere).expect("dir");
    let target = elsewhere.join("vault.coffer");
    std::fs::rename(env.vault(), &target).expect("move the vault");
    std::os::unix::fs::symlink(&target, env.vault()).expect("link");
    env.helper(
        "store",
        r#"{"ServerURL":"linked.example","Username":"u","Secret":"s"}"#,
    )
    .success();
    env.helper("erase", "linked.example").success();
    let kind = std::fs::symlink_metadata(env.vault())
        .expect("stat")
        .file_type();
    assert!(kind.is_symlink(), "the link became a regular file");
    assert_eq!(env.helper("list", "").success().stdout(), "{}\n");
    let temps = std::fs::read_dir(&elsewhere).expect("list").count();
    assert_eq!(temps, 1, "a temp file was left beside the target");
}
