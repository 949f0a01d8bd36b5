//! `coffer log`: the access log, as a table for people or JSON lines for scripts.

use anyhow::Context;

use crate::audit::{AccessLog, Event};
use crate::paths::Paths;

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
    let rows: Vec<[String; 5]> = events
        .iter()
        .map(|e| {
            let outcome = match &e.error {
                Some(error) => format!("failed: {error}"),
                None => json_name(&e.outcome),
            };
            [
                e.time.clone(),
                json_name(&e.action),
                printable(&format!("{} ({})", e.caller, e.caller_pid)),
                printable(e.registry.as_deref().unwrap_or("-")),
                printable(&outcome),
            ]
        })
        .collect();
    let header = ["TIME", "ACTION", "CALLER", "REGISTRY", "OUTCOME"].map(str::to_owned);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(&rows) {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
    }
}

/// An enum's name as it is spelled in the log file.
pub(super) fn json_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A caller names itself (`comm`), so a hostile one could put terminal escapes there.
pub(super) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
