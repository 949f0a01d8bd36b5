//! Writers killed with SIGKILL at random points: the vault always opens and holds either the
//! old or the new state of each write, never a torn one, and leftover temp files are ignored
//! by readers and removed by the next writer.
//!
//! Each lane owns one key and runs one writer at a time, killing it after a random delay up to
//! about the typical write time, then reads the key back: the answer must be the state before
//! that write or after it, and must be the state after it when the writer finished before the
//! kill. A lane goes on until it has killed `KILLS_PER_LANE` writers mid-run.
//! Two lanes run side by side, so a kill also lands while the other lane waits for the lock.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Env, Rng, Run};

const LANES: usize = 2;
const KILLS_PER_LANE: usize = 150;

#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    finished_first: usize,
    killed_old_state: usize,
    killed_new_state: usize,
    temps_left: usize,
    reads_past_temps: usize,
}

/// The secret a `get` returned, or `None` for not found. Anything else fails the test.
fn secret_of(run: &Run, url: &str, user: &str) -> Option<String> {
    assert_eq!(run.stderr(), "", "{}", run.what);
    if run.code() == Some(1) {
        assert_eq!(
            run.stdout(),
            "credentials not found in native keychain\n",
            "{}",
            run.what
        );
        return None;
    }
    run.success();
    let json: Value = serde_json::from_str(&run.stdout()).expect("JSON answer");
    assert_eq!(
        (json["ServerURL"].as_str(), json["Username"].as_str()),
        (Some(url), Some(user))
    );
    Some(json["Secret"].as_str().expect("Secret").to_owned())
}

fn temps(env: &Env, pid: Option<u32>) -> Vec<PathBuf> {
    let prefix = match pid {
        Some(pid) => format!("vault.coffer.tmp-{pid}-"),
        None => "vault.coffer.tmp-".to_owned(),
    };
    std::fs::read_dir(env.coffer_home())
        .expect("read home")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

fn store_request(url: &str, user: &str, secret: &str) -> String {
    serde_json::json!({"ServerURL": url, "Username": user, "Secret": secret}).to_string()
}

fn lane(env: &Env, lane: usize, mut rng: Rng, marker: &str, write_time: Duration) -> Tally {
    let url = format!("lane-{lane}.example");
    let user = format!("user-{lane}");
    let mut tally = Tally::default();
    let mut state: Option<String> = None;
    let mut i = 0;
    while tally.kills < KILLS_PER_LANE {
        i += 1;
        assert!(
            i <= 4 * KILLS_PER_LANE,
            "lane {lane}: writers keep finishing before their kill: {tally:?}"
        );
        let erase = state.is_some() && rng.below(5) == 0;
        let secret = format!("{marker}-l{lane}-{i}");
        let new_state = if erase { None } else { Some(secret.clone()) };
        let held = if erase {
            env.hold_helper("erase", &url)
        } else {
            env.hold_helper("store", &store_request(&url, &user, &secret))
        };
        let mut child = held.start();
        let pid = child.id();
        std::thread::sleep(Duration::from_micros(
            rng.below(write_time.as_micros() as u64 + 1),
        ));
        let _ = child.kill();
        let output: Output = child.wait_with_output().expect("wait");
        for stream in [&output.stdout, &output.stderr] {
            assert!(
                !String::from_utf8_lossy(stream).contains(marker),
                "output leaked"
            );
        }
        let killed = output.status.code().is_none();
        if !killed {
            assert!(
                output.status.success(),
                "writer failed: {}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        let left = temps(env, Some(pid));
        tally.temps_left += left.len();

        let now = secret_of(&env.helper("get", &url), &url, &user);
        if !temps(env, None).is_empty() {
            tally.reads_past_temps += 1;
        }
        if killed {
            tally.kills += 1;
            if now == state {
                tally.killed_old_state += 1;
            } else {
                assert_eq!(now, new_state, "lane {lane} write {i}: torn state");
                tally.killed_new_state += 1;
            }
        } else {
            tally.finished_first += 1;
            assert_eq!(
                now, new_state,
                "lane {lane} write {i}: acknowledged write lost"
            );
        }
        state = now;
    }
    tally
}

#[test]
fn writers_killed_at_random_points_leave_old_or_new_state() {
    let env = Env::new();
    std::fs::write(
        env.docker_config().join("config.json"),
        r#"{"credsStore":"coffer"}"#,
    )
    .expect("docker config");
    let mut rng = Rng::new("crash");
    let marker = format!("crash{:016x}", rng.next());

    // The typical time of one whole write alone, from start to exit. Two lanes share the
    // machine, so kills are drawn from twice that: they land anywhere in a write, its end too.
    let mut times: Vec<Duration> = (0..5)
        .map(|i| {
            let started = Instant::now();
            env.helper(
                "store",
                &store_request("warm.example", "u", &format!("{marker}-warm{i}")),
            )
            .success();
            started.elapsed()
        })
        .collect();
    times.sort();
    let write_time = times[times.len() / 2] * 2;

    let started = Instant::now();
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let lanes: Vec<_> = (0..LANES)
            .map(|l| {
                let (env, marker, rng) = (&env, &marker, rng.fork());
                scope.spawn(move || lane(env, l, rng, marker, write_time))
            })
            .collect();
        lanes.into_iter().map(|l| l.join().expect("lane")).collect()
    });
    let elapsed = started.elapsed();
    let total = tallies.iter().fold(Tally::default(), |mut t, l| {
        t.kills += l.kills;
        t.finished_first += l.finished_first;
        t.killed_old_state += l.killed_old_state;
        t.killed_new_state += l.killed_new_state;
        t.temps_left += l.temps_left;
        t.reads_past_temps += l.reads_past_temps;
        t
    });

    // The next writer removes what killed writers left, and the vault verifies whole.
    env.helper(
        "store",
        &store_request("after.example", "u", &format!("{marker}-after")),
    )
    .success();
    assert_eq!(temps(&env, None), Vec::<PathBuf>::new());
    env.coffer(&["doctor"]).success().hides(&[&marker]);
    assert_eq!(env.files_containing(&marker), Vec::<PathBuf>::new());
    // A kill never tears a line of the access log: each is one write.
    let (_, unreadable) = coffer::audit::AccessLog::new(env.coffer_home().join("access.log"))
        .read()
        .expect("access log");
    assert_eq!(unreadable, 0);

    eprintln!(
        "crash: {} writers SIGKILLed mid-run ({} kept the old state, {} the new, {} temp files \
         left and then removed, {} reads while a temp file existed), {} finished before their \
         kill; delays up to {} ms; {} s; nothing torn or lost",
        total.kills,
        total.killed_old_state,
        total.killed_new_state,
        total.temps_left,
        total.reads_past_temps,
        total.finished_first,
        write_time.as_millis(),
        elapsed.as_secs_f32()
    );
}
