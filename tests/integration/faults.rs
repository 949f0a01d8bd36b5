//! Fault injection: a full disk at every write of a store, an erase, a passwd and a token
//! renewal; a read-only remount; an exhausted inode table; SIGKILL of the lock holder; and the
//! clock moved forward, backward and before 1970 with `faketime`. The coffer folder is a small
//! tmpfs that each test mounts and unmounts (the tests run as root).
//!
//! Targets: entries lost 0, wrong data 0, panics 0, and every failure one clear line.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Env, PASSPHRASE, Run, bin, require};

/// A size-limited tmpfs mounted over a folder, unmounted when dropped.
struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    fn mount(dir: &Path, options: &str) -> SmallFs {
        require("mount");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} (the fault tests need root): {status}",
            dir.display()
        );
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        SmallFs {
            dir: dir.to_path_buf(),
        }
    }

    fn remount(&self, option: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{option}")])
            .arg(&self.dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {option}: {status}");
    }

    /// (free bytes, free inodes)
    fn free(&self) -> (u64, u64) {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S %d"])
            .arg(&self.dir)
            .output()
            .expect("stat -f");
        let text = String::from_utf8_lossy(&out.stdout);
        let n: Vec<u64> = text
            .split_whitespace()
            .map(|n| n.parse().expect("number"))
            .collect();
        (n[0] * n[1], n[2])
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Leaves about `bytes` free (whole pages).
    fn leave_free(&self, bytes: u64) {
        let _ = fs::remove_file(self.filler());
        let (free, _) = self.free();
        let size = free.saturating_sub(bytes);
        fs::write(self.filler(), vec![0u8; size as usize]).expect("filler");
    }

    fn unfill(&self) {
        let _ = fs::remove_file(self.filler());
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A home whose coffer folder is a fresh tmpfs mounted with `options`, holding a new vault.
fn small_home(options: &str) -> (Env, SmallFs) {
    let env = Env::empty();
    let small = SmallFs::mount(&env.coffer_home(), options);
    env.coffer(&["init", "--kdf-memory-mib", "19", "--kdf-iterations", "2"])
        .success();
    (env, small)
}

/// What the test knows was acknowledged: server URL -> (username, secret).
type Model = BTreeMap<String, (String, String)>;

#[derive(Debug, Default)]
struct Tally {
    attempts: usize,
    failed: usize,
    lost: usize,
    wrong: usize,
    panics: usize,
    unclear: usize,
}

impl Tally {
    /// Counts a run: its failure must be one line, and nothing may panic.
    fn count(&mut self, run: &Run, helper: bool) -> bool {
        self.attempts += 1;
        let all = format!("{}{}", run.stdout(), run.stderr());
        if all.contains("panicked") {
            self.panics += 1;
        }
        if run.code() == Some(0) {
            return true;
        }
        self.failed += 1;
        let message = if helper { run.stdout() } else { run.stderr() };
        let clear = message.lines().count() == 1
            && !message.trim().is_empty()
            && (helper || message.starts_with("coffer: "));
        if !clear {
            self.unclear += 1;
            eprintln!("faults: an unclear failure: {run:?}", run = run.what);
            eprintln!("{all}");
        }
        false
    }

    fn check(&mut self, env: &Env, model: &Model) {
        let list = env.helper("list", "");
        let listed: BTreeMap<String, String> = match list.code() {
            Some(0) => serde_json::from_str(&list.stdout()).expect("list JSON"),
            _ => {
                self.lost += model.len();
                return;
            }
        };
        for (url, (user, _)) in model {
            match listed.get(url) {
                None => self.lost += 1,
                Some(listed_user) if listed_user != user => self.wrong += 1,
                Some(_) => {}
            }
        }
        // The token registry's entry is checked by its own test.
        self.wrong += listed
            .keys()
            .filter(|url| !model.contains_key(*url) && *url != EXEC_HOST)
            .count();
    }

    fn check_secrets(&mut self, env: &Env, model: &Model) {
        for (url, (user, secret)) in model {
            let run = env.helper("get", url);
            if run.code() != Some(0) {
                self.lost += 1;
                continue;
            }
            let got: serde_json::Value = serde_json::from_str(&run.stdout()).expect("JSON");
            if got["Username"] != user.as_str() || got["Secret"] != secret.as_str() {
                self.wrong += 1;
            }
        }
    }

    fn assert_clean(&self, what: &str) {
        eprintln!(
            "faults: {what}: {} attempts, {} failed cleanly; entries lost {}, wrong data {}, \
             panics {}, unclear failures {}",
            self.attempts, self.failed, self.lost, self.wrong, self.panics, self.unclear
        );
        assert_eq!(
            (self.lost, self.wrong, self.panics, self.unclear),
            (0, 0, 0, 0),
            "{what}: {self:?}"
        );
    }
}

fn store_request(url: &str, user: &str, secret: &str) -> String {
    serde_json::json!({"ServerURL": url, "Username": user, "Secret": secret}).to_string()
}

/// An exec registry whose command counts its runs in `<root>/count` and mints `token-N`.
const EXEC_HOST: &str = "exec.faults.example";

fn exec_registry(env: &Env, lifetime: &str) -> impl Fn() -> u32 {
    let count = env.root().join("count");
    let program = env.root().join("mint.sh");
    fs::write(
        &program,
        format!(
            "#!/bin/sh\nn=$(($(cat {0} 2>/dev/null || echo 0) + 1)); echo $n > {0}; printf 'token-%s\\n' $n\n",
            count.display()
        ),
    )
    .expect("script");
    fs::set_permissions(&program, fs::Permissions::from_mode(0o700)).expect("chmod");
    fs::write(
        env.coffer_home().join("config.toml"),
        "[tokens]\nmin_margin = \"1s\"\nretry_after = \"1h\"\n",
    )
    .expect("config");
    let command = format!("command=[\"{}\"]", program.display());
    let lifetime = format!("lifetime={lifetime}");
    env.coffer(&[
        "login",
        EXEC_HOST,
        "--mode",
        "exec",
        "--set",
        &command,
        "--set",
        "username=bot",
        "--set",
        &lifetime,
    ])
    .success();
    move || {
        fs::read_to_string(&count)
            .map(|n| n.trim().parse().expect("count"))
            .unwrap_or(0)
    }
}

fn token_of(run: &Run) -> String {
    let got: serde_json::Value = serde_json::from_str(&run.stdout()).expect("JSON");
    got["Secret"].as_str().expect("secret").to_owned()
}

/// ENOSPC at every write: for each amount of free space from none to more than a write needs,
/// a store, an erase, a passwd and a forced renewal; after each, every acknowledged entry is
/// listed with its username, and at the end every secret reads back.
#[test]
fn full_disk_at_every_write_of_store_erase_passwd_and_renewal() {
    let (env, small) = small_home("size=1m,mode=0700");
    let runs = exec_registry(&env, "1h");
    let mut model = Model::new();
    for i in 0..20 {
        let (url, user, secret) = (
            format!("r{i}.faults.example"),
            format!("user-{i}"),
            format!("secret-{i}"),
        );
        env.helper("store", &store_request(&url, &user, &secret))
            .success();
        model.insert(url, (user, secret));
    }
    let vault_size = fs::metadata(env.vault()).expect("vault").len();
    let new_passphrase = env.root().join("new-passphrase");
    let mut tally = Tally::default();
    let mut renewals = 0;
    let mut next = 100;
    let levels: Vec<u64> = (0..=(vault_size / 2048 + 6))
        .map(|steps| steps * 2048)
        .collect();
    for &free in &levels {
        // A store of a new entry.
        next += 1;
        let (url, user, secret) = (
            format!("r{next}.faults.example"),
            format!("user-{next}"),
            format!("secret-{next}"),
        );
        small.leave_free(free);
        let run = env.helper("store", &store_request(&url, &user, &secret));
        small.unfill();
        if tally.count(&run, true) {
            model.insert(url, (user, secret));
        }
        tally.check(&env, &model);

        // An erase of an existing one.
        let victim = model.keys().next().expect("an entry").clone();
        small.leave_free(free);
        let run = env.helper("erase", &victim);
        small.unfill();
        if tally.count(&run, true) {
            model.remove(&victim);
        }
        tally.check(&env, &model);

        // A passphrase change: the vault opens with the new one, or else with the old.
        let new = format!("{PASSPHRASE} {next}");
        env.write_private(&new_passphrase, &format!("{new}\n"));
        small.leave_free(free);
        let run = Run::of(
            env.command(bin("coffer"))
                .env("COFFER_NEW_PASSPHRASE_FILE", &new_passphrase)
                .arg("passwd"),
            "",
        );
        small.unfill();
        if tally.count(&run, false) {
            env.write_private(&env.passphrase_file(), &format!("{new}\n"));
        }
        tally.check(&env, &model);

        // A forced renewal: it is saved, or the token handed out is still the one saved.
        let before = token_of(env.helper("get", EXEC_HOST).success());
        small.leave_free(free);
        let run = env.coffer(&["refresh", EXEC_HOST, "--force"]);
        small.unfill();
        let renewed = run.code() == Some(0);
        tally.attempts += 1;
        if run.stdout().contains("panicked") || run.stderr().contains("panicked") {
            tally.panics += 1;
        }
        if !renewed {
            tally.failed += 1;
            if run.stdout().lines().count() != 1 || !run.stdout().contains("FAILED") {
                tally.unclear += 1;
                eprintln!(
                    "faults: an unclear renewal failure: {}{}",
                    run.stdout(),
                    run.stderr()
                );
            }
        }
        let after = token_of(env.helper("get", EXEC_HOST).success());
        let expected = if renewed {
            format!("token-{}", runs())
        } else {
            before
        };
        if after != expected {
            tally.wrong += 1;
        }
        renewals += usize::from(renewed);
        tally.check(&env, &model);
    }
    tally.check_secrets(&env, &model);
    assert!(
        tally.failed > 0,
        "no write ever failed: the disk was never full"
    );
    assert!(
        renewals > 0,
        "no renewal ever succeeded: the disk was never free"
    );
    tally.assert_clean(&format!(
        "ENOSPC at {} free-space levels (0 to {} KiB) x store, erase, passwd, renewal",
        levels.len(),
        levels.last().copied().unwrap_or(0) / 1024
    ));
    // Nothing was left half-written: no temp file, and the access log has no broken line.
    let temps = fs::read_dir(env.coffer_home())
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .count();
    assert_eq!(temps, 0, "temp files left behind");
    let log = env.coffer(&["log", "--json"]);
    assert_eq!(
        log.success().stderr(),
        "",
        "the access log has unreadable lines"
    );
}

/// A read-only remount: writes fail with one clear line, reads go on, and a token that is due
/// but still valid is served from the cache, with the exchange run once, not on every pull.
#[test]
fn read_only_remount_keeps_serving_and_renews_once() {
    require("faketime");
    let (env, small) = small_home("size=1m,mode=0700");
    let runs = exec_registry(&env, "1h");
    env.helper(
        "store",
        &store_request("ro.faults.example", "u", "ro-secret"),
    )
    .success();
    let token = token_of(env.helper("get", EXEC_HOST).success());
    assert_eq!((token.as_str(), runs()), ("token-1", 1));
    small.remount("ro");
    let mut tally = Tally::default();
    let run = env.helper("store", &store_request("new.faults.example", "u", "s"));
    assert!(
        !tally.count(&run, true),
        "a store on a read-only folder succeeded"
    );
    assert!(
        run.stdout().contains("Read-only file system"),
        "{}",
        run.stdout()
    );
    let run = env.helper("erase", "ro.faults.example");
    assert!(
        !tally.count(&run, true),
        "an erase on a read-only folder succeeded"
    );
    // 45 minutes on: due (past half of the hour), still valid. Three pulls, one exchange.
    for _ in 0..3 {
        let run = Run::of(
            env.command("faketime")
                .args(["-f", "+45m"])
                .arg(bin("docker-credential-coffer"))
                .arg("get"),
            EXEC_HOST,
        );
        assert!(
            tally.count(&run, true),
            "a due token was not served: {}",
            run.stdout()
        );
        // The first pull hands out what it minted but could not save; the next the cached one.
        let token = token_of(&run);
        assert!(token == "token-1" || token == "token-2", "{token}");
        assert!(
            run.stderr().contains("could not be saved"),
            "the failure is said: {}",
            run.stderr()
        );
    }
    assert_eq!(runs(), 2, "the exchange ran once, not on every pull");
    small.remount("rw");
    let mut model = Model::new();
    model.insert("ro.faults.example".into(), ("u".into(), "ro-secret".into()));
    tally.check(&env, &model);
    tally.assert_clean("read-only remount: 2 writes, 3 pulls of a due token");
}

/// An inode table with no free inode: the vault's temp file cannot be made. Writes fail with
/// one line, nothing is lost, and once inodes are free again writes work.
#[test]
fn exhausted_inodes_fail_writes_clearly_and_lose_nothing() {
    let (env, small) = small_home("size=1m,nr_inodes=64,mode=0700");
    let mut model = Model::new();
    env.helper("store", &store_request("a.faults.example", "u", "a-secret"))
        .success();
    model.insert("a.faults.example".into(), ("u".into(), "a-secret".into()));
    // Take every free inode.
    let hog = env.coffer_home().join("hog");
    fs::create_dir(&hog).expect("hog");
    let mut made = 0;
    while fs::write(hog.join(made.to_string()), b"").is_ok() {
        made += 1;
    }
    assert_eq!(small.free().1, 0, "inodes left");
    let mut tally = Tally::default();
    for i in 0..5 {
        let url = format!("b{i}.faults.example");
        let run = env.helper("store", &store_request(&url, "u", "b"));
        assert!(!tally.count(&run, true), "a store with no inode succeeded");
        let run = env.helper("erase", "a.faults.example");
        assert!(!tally.count(&run, true), "an erase with no inode succeeded");
        tally.check(&env, &model);
    }
    fs::remove_dir_all(&hog).expect("free the inodes");
    env.helper("store", &store_request("c.faults.example", "u", "c-secret"))
        .success();
    model.insert("c.faults.example".into(), ("u".into(), "c-secret".into()));
    tally.check(&env, &model);
    tally.check_secrets(&env, &model);
    tally.assert_clean(&format!("exhausted inodes ({made} taken)"));
}

/// The holder of the vault lock is killed with SIGKILL: the kernel releases the lock, and the
/// writer that waited goes on at once; nothing is lost.
#[test]
fn sigkill_of_the_lock_holder_releases_the_waiting_writer() {
    require("flock");
    let env = Env::new();
    env.helper("store", &store_request("a.faults.example", "u", "a-secret"))
        .success();
    let lock = env.coffer_home().join("vault.lock");
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "120"])
        .spawn()
        .expect("flock");
    std::thread::sleep(Duration::from_millis(300));
    let mut waiting = env
        .command(bin("docker-credential-coffer"))
        .arg("store")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("store");
    use std::io::Write;
    waiting
        .stdin
        .take()
        .expect("stdin")
        .write_all(store_request("b.faults.example", "u", "b-secret").as_bytes())
        .expect("request");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        waiting.try_wait().expect("wait").is_none(),
        "the store did not wait for the lock"
    );
    // SIGKILL the whole holder: flock and its sleep.
    let killed = Instant::now();
    let _ = Command::new("pkill")
        .args(["-KILL", "-P", &holder.id().to_string()])
        .status();
    holder.kill().expect("kill the holder");
    holder.wait().expect("reap");
    let output = waiting.wait_with_output().expect("store");
    let waited = killed.elapsed();
    assert!(output.status.success(), "{output:?}");
    assert!(
        waited < Duration::from_secs(5),
        "the writer waited {waited:?}"
    );
    let mut model = Model::new();
    model.insert("a.faults.example".into(), ("u".into(), "a-secret".into()));
    model.insert("b.faults.example".into(), ("u".into(), "b-secret".into()));
    let mut tally = Tally::default();
    tally.check(&env, &model);
    tally.check_secrets(&env, &model);
    eprintln!(
        "faults: SIGKILL of the lock holder: the waiting store went on after {} ms",
        waited.as_millis()
    );
    tally.assert_clean("SIGKILL of the lock holder");
}

/// `faketime` before 1970, years ahead, a day back and at the end of year 9999: stores and gets
/// work and say what they did, `coffer ls`, `coffer log` and `coffer doctor` show the times
/// without a panic, and a token minted while the clock ran a day ahead is renewed once the clock
/// is right again instead of being trusted for that day.
#[test]
fn faketime_forward_backward_and_before_1970() {
    require("faketime");
    let env = Env::new();
    let runs = exec_registry(&env, "1h");
    let mut tally = Tally::default();
    let mut model = Model::new();
    model.insert(EXEC_HOST.into(), ("bot".into(), "x".into()));
    let at = |spec: &str, program: &str, args: &[&str], input: &str| {
        Run::of(
            env.command("faketime")
                .arg("-f")
                .arg(spec)
                .arg(if program == "coffer" {
                    bin("coffer")
                } else {
                    bin("docker-credential-coffer")
                })
                .args(args),
            input,
        )
    };
    let clocks = [
        ("@1969-07-20 20:17:40", "before 1970"),
        ("@1970-01-01 00:00:00", "the epoch"),
        ("+3650d", "ten years ahead"),
        ("-1d", "a day back"),
        ("@9999-12-31 23:30:00", "the end of 9999"),
    ];
    for (i, (spec, _)) in clocks.iter().enumerate() {
        let url = format!("t{i}.faults.example");
        let secret = format!("time-secret-{i}");
        let run = at(
            spec,
            "helper",
            &["store"],
            &store_request(&url, "u", &secret),
        );
        assert!(
            tally.count(&run, true),
            "{spec}: store failed: {}",
            run.stdout()
        );
        model.insert(url.clone(), ("u".into(), secret.clone()));
        let run = at(spec, "helper", &["get"], &url);
        assert!(
            tally.count(&run, true),
            "{spec}: get failed: {}",
            run.stdout()
        );
        assert_eq!(token_of(&run), secret);
        for args in [&["ls"][..], &["log", "--tail", "3"], &["token", "status"]] {
            let run = at(spec, "coffer", args, "");
            assert!(
                tally.count(&run, false),
                "{spec}: coffer {args:?}: {}",
                run.stderr()
            );
        }
    }
    // While unlocked at the end of 9999 (the expiry is past what RFC 3339 can write).
    let run = at(
        "@9999-12-31 23:30:00",
        "coffer",
        &["unlock", "--timeout", "2h"],
        "",
    );
    assert!(tally.count(&run, false), "unlock: {}", run.stderr());
    // Doctor may find things to report (exit 1); it must not panic.
    let run = at("@9999-12-31 23:30:00", "coffer", &["doctor"], "");
    assert!(
        run.code() != Some(101) && !run.stderr().contains("panicked"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stdout().contains("9999-12-31T23:59:59Z"),
        "{}",
        run.stdout()
    );
    env.coffer(&["lock"]).success();

    // A token minted a day ahead: at the right time it is renewed, not served.
    let run = at("+1d", "helper", &["get"], EXEC_HOST);
    assert!(tally.count(&run, true), "{}", run.stdout());
    let ahead = token_of(&run);
    let minted = runs();
    let now = env.helper("get", EXEC_HOST);
    assert!(tally.count(&now, true), "{}", now.stdout());
    assert_ne!(
        token_of(&now),
        ahead,
        "a token minted a day ahead was trusted"
    );
    assert_eq!(runs(), minted + 1);
    model.remove(EXEC_HOST);
    tally.check_secrets(&env, &model);
    tally.assert_clean(&format!(
        "faketime at {} clocks ({})",
        clocks.len(),
        clocks.map(|(_, what)| what).join(", ")
    ));
}

/// A `get` that renews its token is one `get` line in the access log (and one `update` for
/// the renewal), not two `get`s.
#[test]
fn a_renewing_get_writes_one_get_line() {
    require("faketime");
    let env = Env::new();
    let runs = exec_registry(&env, "1h");
    env.helper("get", EXEC_HOST).success();
    let gets = || {
        let log = env.coffer(&["log", "--json"]);
        log.success()
            .stdout()
            .lines()
            .filter(|line| line.contains(r#""action":"get""#))
            .count()
    };
    let before = gets();
    let run = Run::of(
        env.command("faketime")
            .args(["-f", "+45m"])
            .arg(bin("docker-credential-coffer"))
            .arg("get"),
        EXEC_HOST,
    );
    run.success();
    assert_eq!(runs(), 2, "the get renewed the token");
    assert_eq!(gets(), before + 1, "one get, one line");
}
