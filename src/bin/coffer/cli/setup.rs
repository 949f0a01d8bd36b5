//! `coffer setup docker|podman`: point a container tool at coffer; `--undo` puts back what was
//! there. Run by people and by install.sh, never by a package on a user's behalf.

use std::path::Path;

use anyhow::bail;
use clap::ValueEnum;

use coffer::auth_file::{self, PlaintextFile};
use coffer::paths::Paths;
use coffer::protocol::PROGRAM;
use coffer::setup::{Change, docker, podman};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Tool {
    /// `credsStore` in `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`).
    Docker,
    /// For podman, skopeo and buildah: `~/.config/containers/registries.conf.d/coffer.conf`.
    Podman,
}

/// Starts the line install.sh looks for to offer an import; followed by the count.
const PLAINTEXT_MARK: &str = "unencrypted:";

pub fn run(paths: &Paths, tool: Tool, undo: bool) -> anyhow::Result<()> {
    match (tool, undo) {
        (Tool::Docker, false) => {
            require_helper_on_path()?;
            report_docker_enable(&docker::enable(paths, &docker::config_path()?)?);
        }
        (Tool::Docker, true) => {
            report_docker_disable(&docker::disable(paths, &docker::config_path()?)?)
        }
        (Tool::Podman, false) => {
            require_helper_on_path()?;
            report_podman_enable(&podman::enable(
                &podman::drop_in_path()?,
                &podman::auth_files()?,
            )?);
        }
        (Tool::Podman, true) => {
            let report = podman::disable(&podman::drop_in_path()?)?;
            match report.change {
                Change::Removed => println!(
                    "podman: removed {}; podman, skopeo and buildah use their own \
                     credential-helpers setting again",
                    report.path.display()
                ),
                _ => println!(
                    "podman: no drop-in of coffer's at {}; nothing to undo",
                    report.path.display()
                ),
            }
        }
    }
    Ok(())
}

/// A tool pointed at a helper it cannot find fails every pull, even of public images.
fn require_helper_on_path() -> anyhow::Result<()> {
    if super::doctor::find_on_path(PROGRAM).is_none() {
        bail!(
            "{PROGRAM} is not on PATH, so the tool could not run it; nothing was changed. \
             Add its folder to PATH (e.g. export PATH=\"$HOME/.local/bin:$PATH\"), then run this again"
        );
    }
    Ok(())
}

fn quoted(value: Option<&str>) -> String {
    value.map_or_else(|| "not set".to_owned(), |v| format!("{v:?}"))
}

fn print_backup(change: &Change) {
    if let Change::Written {
        backup: Some(backup),
    } = change
    {
        println!("        the previous file is kept as {}", backup.display());
        if backup
            .to_string_lossy()
            .ends_with(auth_file::PLAINTEXT_MARK)
        {
            let copy = PlaintextFile {
                path: backup.clone(),
                logins: 0,
                live: false,
            };
            println!("        it holds plaintext logins: {}", copy.advice());
        }
    }
}

fn report_docker_enable(report: &docker::Report) {
    let path = report.path.display();
    match report.change {
        Change::Unchanged => {
            println!("docker: credsStore is already \"coffer\" in {path}; nothing changed");
        }
        _ => {
            println!(
                "docker: credsStore set to \"coffer\" in {path} (it was {})",
                quoted(report.before.as_deref())
            );
            print_backup(&report.change);
            if let Some(previous) = &report.before {
                println!(
                    "        logins kept by docker-credential-{previous} stay there; \
                     log in again to keep a registry's in coffer"
                );
            }
        }
    }
    print_plaintext(&report.path, report.plaintext);
}

fn report_docker_disable(report: &docker::Report) {
    let path = report.path.display();
    match report.change {
        Change::Unchanged => println!(
            "docker: credsStore is {} in {path}, not \"coffer\"; nothing to undo",
            quoted(report.before.as_deref())
        ),
        _ => {
            match &report.after {
                Some(value) => println!("docker: credsStore restored to {value:?} in {path}"),
                None => println!(
                    "docker: credsStore removed from {path} (it was not set before coffer)"
                ),
            }
            print_backup(&report.change);
            println!(
                "        the logins coffer holds stay in its vault (`coffer ls`); docker no longer asks for them"
            );
            if let Some(value) = &report.after {
                let program = format!("docker-credential-{value}");
                if super::doctor::find_on_path(&program).is_none() {
                    println!(
                        "        note: {program} is not on PATH; docker fails to pull until it is \
                         installed or credsStore is changed"
                    );
                }
            }
        }
    }
}

fn report_podman_enable(report: &podman::Report) {
    let path = report.path.display();
    match report.change {
        Change::Unchanged => {
            println!("podman: {path} already makes coffer the credential helper; nothing changed")
        }
        _ => {
            println!("podman: wrote {path}: podman, skopeo and buildah keep every login in coffer")
        }
    }
    for later in &report.overridden_by {
        println!(
            "        warning: {} is read after it and sets credential-helpers itself, so it wins; \
             remove that setting for coffer to be used",
            later.display()
        );
    }
    for (file, count) in &report.plaintext {
        print_plaintext(file, *count);
    }
}

/// Unencrypted logins are no longer what the tool uses once coffer answers for it: say how to
/// move them.
fn print_plaintext(file: &Path, count: usize) {
    if count == 0 {
        return;
    }
    let live = PlaintextFile {
        path: file.to_path_buf(),
        logins: count,
        live: true,
    };
    println!(
        "{PLAINTEXT_MARK} {} unencrypted in {}; coffer does not have them yet",
        super::plural(count, "login sits", "logins sit"),
        file.display()
    );
    println!("        {}", live.advice());
}
