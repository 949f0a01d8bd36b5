//! Hundreds of helper processes at once on one vault, round after round: every acknowledged
//! `store` is kept unless a later acknowledged `erase` removed it, no `get` returns a torn or
//! foreign entry, and the vault opens cleanly afterwards.
//!
//! Each round starts every process and holds it at its first read of stdin until all of them
//! exist, so they truly run at once. Two kinds of key make the claims checkable:
//! - an *owned* key gets one action per round from its owner, so its state is known exactly
//!   and every answer about it must match;
//! - a *shared* key is raced by many writers in the same round, so a `get` may see any of
//!   them, but only whole (user and secret from one request) and only its own key's.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::Value;

use crate::harness::{Env, Rng, Run, release};

const ROUNDS: usize = 3;
const OWNERS: usize = 120;
const SHARED_KEYS: usize = 4;
const SHARED_ACTIONS: usize = 80;
const NOT_FOUND: &str = "credentials not found in native keychain\n";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cred {
    user: String,
    secret: String,
}

#[derive(Debug)]
enum Op {
    Store(Cred),
    Get,
    Erase,
    List,
}

impl Op {
    fn action(&self) -> &'static str {
        match self {
            Op::Store(_) => "store",
            Op::Get => "get",
            Op::Erase => "erase",
            Op::List => "list",
        }
    }

    fn input(&self, url: &str) -> String {
        match self {
            Op::Store(cred) => serde_json::json!({
                "ServerURL": url, "Username": cred.user, "Secret": cred.secret
            })
            .to_string(),
            Op::Get | Op::Erase => url.to_owned(),
            Op::List => String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Owned(usize),
    Shared(usize),
}

impl Target {
    fn url(self) -> String {
        match self {
            Target::Owned(w) => format!("owner-{w}.example"),
            Target::Shared(k) => format!("https://shared-{k}.example:5000"),
        }
    }
}

/// A `get`'s answer: `None` for exactly the not-found line, else the credential it returned.
fn answer(run: &Run, url: &str) -> Option<Cred> {
    assert_eq!(run.stderr(), "", "{}", run.what);
    if run.code() == Some(1) {
        assert_eq!(run.stdout(), NOT_FOUND, "{}", run.what);
        return None;
    }
    run.success();
    let json: Value = serde_json::from_str(&run.stdout()).expect("get answers JSON");
    assert_eq!(json["ServerURL"], url, "{}", run.what);
    Some(Cred {
        user: json["Username"].as_str().expect("Username").to_owned(),
        secret: json["Secret"].as_str().expect("Secret").to_owned(),
    })
}

/// A `list` answer as a map from server URL to username.
fn listed(run: &Run) -> BTreeMap<String, String> {
    run.success();
    assert_eq!(run.stderr(), "", "{}", run.what);
    serde_json::from_str(&run.stdout()).expect("list answers a JSON object of strings")
}

/// An `erase`'s answer: whether it removed something (else it must say not found).
fn erased(run: &Run) -> bool {
    assert_eq!(run.stderr(), "", "{}", run.what);
    match run.code() {
        Some(0) => {
            assert_eq!(run.stdout(), "", "{}", run.what);
            true
        }
        _ => {
            run.failure();
            assert_eq!(run.stdout(), NOT_FOUND, "{}", run.what);
            false
        }
    }
}

#[derive(Default)]
struct Tally {
    processes: usize,
    by_action: BTreeMap<&'static str, usize>,
    acknowledged_stores: usize,
    acknowledged_erases: usize,
    checked_gets: usize,
}

#[test]
fn hundreds_of_concurrent_helpers_lose_nothing() {
    let env = Env::new();
    std::fs::write(
        env.docker_config().join("config.json"),
        r#"{"credsStore":"coffer"}"#,
    )
    .expect("docker config");
    let mut rng = Rng::new("stress");
    // Every secret of this run carries `marker`, so no file or output can hide one.
    let marker = format!("sec{:016x}", rng.next());
    let mut owned: Vec<Option<Cred>> = vec![None; OWNERS];
    let mut shared: Vec<Option<Cred>> = vec![None; SHARED_KEYS];
    // Every credential ever sent to a shared key, by secret: what a `get` may return.
    let mut sent: HashMap<String, (usize, String)> = HashMap::new();
    let mut tally = Tally::default();
    let started = Instant::now();

    for round in 0..ROUNDS {
        let cred = |who: String| Cred {
            user: format!("{who}-r{round}"),
            secret: format!("{marker}-{who}-r{round}"),
        };
        let mut plan: Vec<(Target, Op)> = Vec::new();
        for w in 0..OWNERS {
            let op = match rng.below(100) {
                0..40 => Op::Store(cred(format!("o{w}"))),
                40..70 => Op::Get,
                70..85 => Op::Erase,
                _ => Op::List,
            };
            plan.push((Target::Owned(w), op));
        }
        for i in 0..SHARED_ACTIONS {
            let k = rng.below(SHARED_KEYS as u64) as usize;
            let op = match rng.below(100) {
                0..40 => Op::Store(cred(format!("s{k}-{i}"))),
                40..80 => Op::Get,
                _ => Op::Erase,
            };
            if let Op::Store(c) = &op {
                sent.insert(c.secret.clone(), (k, c.user.clone()));
            }
            plan.push((Target::Shared(k), op));
        }

        let held = plan
            .iter()
            .map(|(target, op)| env.hold_helper(op.action(), &op.input(&target.url())))
            .collect();
        let (runs, alive) = release(held);
        assert_eq!(alive, plan.len(), "every process of a round runs at once");
        tally.processes += runs.len();

        let before = owned.clone();
        let mut stored: Vec<Vec<Cred>> = vec![Vec::new(); SHARED_KEYS];
        let mut erased_shared = [false; SHARED_KEYS];
        let mut lists = Vec::new();
        for ((target, op), run) in plan.iter().zip(&runs) {
            *tally.by_action.entry(op.action()).or_default() += 1;
            if !matches!(op, Op::Get) {
                assert!(!run.stdout().contains(&marker), "{} leaked", run.what);
            }
            let url = target.url();
            match (*target, op) {
                (_, Op::Store(c)) => {
                    run.success();
                    assert_eq!((run.stdout(), run.stderr()), (String::new(), String::new()));
                    tally.acknowledged_stores += 1;
                    match *target {
                        Target::Owned(w) => owned[w] = Some(c.clone()),
                        Target::Shared(k) => stored[k].push(c.clone()),
                    }
                }
                (Target::Owned(w), Op::Get) => {
                    assert_eq!(answer(run, &url), before[w], "owned get: {}", run.what);
                    tally.checked_gets += 1;
                }
                (Target::Shared(k), Op::Get) => {
                    if let Some(got) = answer(run, &url) {
                        let (key, user) = sent
                            .get(&got.secret)
                            .unwrap_or_else(|| panic!("{} returned an unknown secret", run.what));
                        assert_eq!((*key, user), (k, &got.user), "torn or foreign entry");
                    }
                    tally.checked_gets += 1;
                }
                (Target::Owned(w), Op::Erase) => {
                    assert_eq!(erased(run), before[w].is_some(), "{}", run.what);
                    tally.acknowledged_erases += usize::from(before[w].is_some());
                    owned[w] = None;
                }
                (Target::Shared(k), Op::Erase) => {
                    let removed = erased(run);
                    erased_shared[k] |= removed;
                    tally.acknowledged_erases += usize::from(removed);
                }
                (_, Op::List) => lists.push(listed(run)),
            }
        }

        // A list saw each key written this round before or after that write; every other key
        // exactly as it was.
        let written: Vec<bool> = plan
            .iter()
            .filter_map(|(t, op)| match t {
                Target::Owned(_) => Some(matches!(op, Op::Store(_) | Op::Erase)),
                Target::Shared(_) => None,
            })
            .collect();
        for list in &lists {
            for w in 0..OWNERS {
                let seen = list.get(&Target::Owned(w).url()).cloned();
                let user = |c: &Option<Cred>| c.as_ref().map(|c| c.user.clone());
                let expected = [user(&before[w]), user(&owned[w])];
                assert!(
                    expected[..if written[w] { 2 } else { 1 }].contains(&seen),
                    "list showed owner {w} as {seen:?}, expected {expected:?}"
                );
            }
            for (url, user) in list {
                let known = url.starts_with("owner-")
                    || sent
                        .values()
                        .any(|(k, u)| Target::Shared(*k).url() == *url && u == user);
                assert!(known, "list shows a foreign entry {url} -> {user}");
            }
        }

        // Each shared key ends as the last of this round's writes left it.
        let held = (0..SHARED_KEYS)
            .map(|k| env.hold_helper("get", &Target::Shared(k).url()))
            .collect();
        let (checks, _) = release(held);
        tally.processes += checks.len();
        for (k, run) in checks.iter().enumerate() {
            let now = answer(run, &Target::Shared(k).url());
            let allowed = if !stored[k].is_empty() {
                now.as_ref().is_some_and(|c| stored[k].contains(c))
                    || (now.is_none() && erased_shared[k])
            } else if erased_shared[k] {
                now.is_none()
            } else {
                now == shared[k]
            };
            assert!(
                allowed,
                "shared key {k} after round {round}: {now:?}; stored {:?}, erased {}",
                stored[k], erased_shared[k]
            );
            shared[k] = now;
        }
    }

    // Afterwards: every owned key exactly as its owner left it, one list showing exactly the
    // known state, and a vault that opens and verifies.
    let mut held: Vec<_> = (0..OWNERS)
        .map(|w| env.hold_helper("get", &Target::Owned(w).url()))
        .collect();
    held.push(env.hold_helper("list", ""));
    let (runs, _) = release(held);
    tally.processes += runs.len();
    for (w, run) in runs[..OWNERS].iter().enumerate() {
        assert_eq!(answer(run, &Target::Owned(w).url()), owned[w], "final get");
    }
    let expected: BTreeMap<String, String> = (0..OWNERS)
        .filter_map(|w| {
            owned[w]
                .as_ref()
                .map(|c| (Target::Owned(w).url(), c.user.clone()))
        })
        .chain((0..SHARED_KEYS).filter_map(|k| {
            shared[k]
                .as_ref()
                .map(|c| (Target::Shared(k).url(), c.user.clone()))
        }))
        .collect();
    assert_eq!(listed(&runs[OWNERS]), expected, "final list");
    let elapsed = started.elapsed();

    let doctor = env.coffer(&["doctor"]);
    doctor.success().hides(&[&marker]);
    assert!(
        doctor
            .stdout()
            .contains(&format!("({} entries)", expected.len())),
        "{}",
        doctor.stdout()
    );
    let leftovers: Vec<_> = std::fs::read_dir(env.coffer_home())
        .expect("read home")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    assert_eq!(
        env.files_containing(&marker),
        Vec::<std::path::PathBuf>::new()
    );

    // Every action is one whole line of the access log, however many wrote at once.
    let (events, unreadable) = coffer::audit::AccessLog::new(env.coffer_home().join("access.log"))
        .read()
        .expect("access log");
    assert_eq!(unreadable, 0);
    assert_eq!(events.len(), tally.processes, "one log line per action");

    eprintln!(
        "stress: {} helper processes in {ROUNDS} rounds of {} at once ({:?}), {} s; \
         {} acknowledged stores, {} acknowledged erases, {} gets checked, nothing lost",
        tally.processes,
        OWNERS + SHARED_ACTIONS,
        tally.by_action,
        elapsed.as_secs_f32(),
        tally.acknowledged_stores,
        tally.acknowledged_erases,
        tally.checked_gets,
    );
}
