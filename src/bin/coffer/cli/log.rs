//! `coffer log`: the access log, as a table for people or JSON lines for scripts.

use anyhow::Context;

use coffer::audit::{AccessLog, Event};
use coffer::paths::Paths;

pub fn run(paths: &Paths, tail: Option<usize>, json: bool) -> anyhow::Result<()> {
    let log = AccessLog::new(paths.access_log());
    let (events, unreadable) = log
        .read()
        .with_context(|| format!("cannot read the access log {}", log.path().display()))?;
    if unreadable > 0 {
        eprintln!(
            "coffer: skipped {unreadable} unreadable line(s) in {}",
            log.path().display()
        );
    }
    let shown = &events[events.len() - tail.unwrap_or(events.len()).min(events.len())..];
    if json {
        for event in shown {
            println!("{}", serde_json::to_string(event)?);
        }
    } else if events.is_empty() {
        println!("no access recorded in {}", log.path().display());
    } else {
        print_table(shown);
    }
    Ok(())
}

fn print_table(events: &[Event]) {
    let header = ["TIME", "ACTION", "CALLER", "REGISTRY", "OUTCOME"].map(str::to_owned);
    let rows = events.iter().map(|e| {
        let outcome = match &e.error {
            Some(error) => format!("failed: {error}"),
            None => json_name(&e.outcome),
        };
        [
            e.time.clone(),
            json_name(&e.action),
            format!("{} ({})", e.caller, e.caller_pid),
            e.registry.clone().unwrap_or_else(|| "-".to_owned()),
            outcome,
        ]
    });
    super::table::print(&std::iter::once(header).chain(rows).collect::<Vec<_>>());
}

/// An enum's name as it is spelled in the log file.
pub(super) fn json_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
