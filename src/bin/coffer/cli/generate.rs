//! `coffer generate man|completions DIR` (hidden): man pages and bash, zsh and fish completions
//! made from the clap definitions, so they cannot drift from `--help`. install.sh and
//! packaging/build.sh run it on the built binary; nothing is downloaded or kept in the tree.

use std::path::Path;

use anyhow::Context;
use clap::{Arg, ArgAction, Command, CommandFactory, ValueEnum};
use clap_complete::Shell;
use clap_mangen::roff::{Roff, bold, roman};

use coffer::files;
use coffer::protocol::PROGRAM;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum What {
    /// coffer.1, one coffer-VERB.1 per verb, and docker-credential-coffer.1.
    Man,
    /// coffer.bash, _coffer, coffer.fish and the same for docker-credential-coffer.
    Completions,
}

pub fn run(what: What, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = || format!("cannot write into {}", dir.display());
    match what {
        What::Man => {
            let mut coffer = super::Cli::command().disable_help_subcommand(true);
            coffer.build();
            let verbs = coffer
                .get_subcommands()
                .filter(|verb| !verb.is_hide_set())
                .cloned();
            let main = coffer.clone().after_long_help(format!(
                "{}\n\n{}\n\n{}",
                super::ENVIRONMENT,
                super::PASSPHRASE_SOURCES,
                super::FILES
            ));
            write_page(dir, main, Subcommands::Pages).with_context(written)?;
            for command in verbs {
                write_page(dir, command, Subcommands::Pages).with_context(written)?;
            }
            let helper = helper_command();
            let helper_after = helper
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            let helper = helper.after_help(format!(
                "{helper_after}\n\n{}\n\n{}",
                super::PASSPHRASE_SOURCES,
                super::FILES
            ));
            write_page(dir, helper, Subcommands::Actions).with_context(written)?;
            write_config_page(dir).with_context(written)?;
        }
        What::Completions => {
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                for (mut command, name) in [
                    (without_hidden_verbs(), "coffer"),
                    (helper_command(), PROGRAM),
                ] {
                    let mut script = Vec::new();
                    clap_complete::generate(shell, &mut command, name, &mut script);
                    let file = clap_complete::Generator::file_name(&shell, name);
                    write(dir, &file, &script).with_context(written)?;
                }
            }
        }
    }
    Ok(())
}

/// coffer's definition without the verbs people never type (`agent`, `generate`): clap's
/// completion generators list hidden subcommands too.
fn without_hidden_verbs() -> Command {
    let full = super::Cli::command();
    let mut shown = Command::new("coffer")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        shown = shown.about(about.clone());
    }
    shown
}

/// How a page presents its subcommands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subcommands {
    /// coffer's verbs, each with a page of its own: `coffer-setup(1)`.
    Pages,
    /// The helper's actions, described on its one page.
    Actions,
}

/// clap_mangen's sections, except that the after-help text ("Examples:", "Environment:")
/// becomes sections of those names, kept as written instead of reflowed, and the helper's
/// actions are listed on its page instead of pointing at pages that do not exist.
fn write_page(dir: &Path, command: Command, subcommands: Subcommands) -> std::io::Result<()> {
    let source = format!("coffer {}", env!("CARGO_PKG_VERSION"));
    let man = clap_mangen::Man::new(command.clone()).source(source);
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    let mut roff = Roff::new();
    match subcommands {
        Subcommands::Pages if command.get_subcommands().any(|c| !c.is_hide_set()) => {
            man.render_subcommands_section(&mut out)?;
        }
        Subcommands::Pages => {}
        Subcommands::Actions => {
            roff.control("SH", ["ACTIONS"]);
            for action in command.get_subcommands() {
                roff.control("TP", []);
                roff.text([bold(action.get_name())]);
                roff.text([roman(
                    action
                        .get_about()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                )]);
            }
        }
    }
    after_help_sections(&mut roff, &command);
    roff.to_writer(&mut out)?;
    if command.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    write(dir, &man.get_filename(), &out)
}

/// `coffer-config.1`: every setting of config.toml, from the library's one list of them
/// ([`coffer::config::SETTINGS`]), grouped by table.
fn write_config_page(dir: &Path) -> std::io::Result<()> {
    let mut roff = Roff::new();
    let version = format!("coffer {}", env!("CARGO_PKG_VERSION"));
    roff.control("TH", ["coffer-config", "1", "", version.as_str()]);
    roff.control("SH", ["NAME"]);
    roff.text([roman(
        "coffer-config - the settings of coffer's config.toml",
    )]);
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(
        "config.toml is in ~/.config/coffer/, beside the vault when COFFER_HOME is set, and in \
         profiles/NAME/ for a profile. Only you may be able to change it and its folder (0600, \
         0700); a key coffer does not know is refused when the file is read.",
    )]);
    let mut table = None;
    for setting in coffer::config::SETTINGS {
        if table != Some(setting.table) {
            table = Some(setting.table);
            let header = match setting.table {
                "" => "TOP OF THE FILE".to_owned(),
                name => format!("[{name}]"),
            };
            roff.control("SH", [header.as_str()]);
        }
        roff.control("TP", []);
        roff.text([bold(format!("{} = {}", setting.key, setting.example))]);
        roff.text([roman(format!(
            "{} Default: {}.",
            setting.meaning, setting.default
        ))]);
    }
    let mut out = Vec::new();
    roff.to_writer(&mut out)?;
    write(dir, "coffer-config.1", &out)
}

/// One generated file in `dir`, readable by all as man pages and completions are; a link
/// already at its name is replaced, never written through (see [`files::replace_atomic`]).
fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    files::replace_atomic(&dir.join(name), bytes, 0o644).map_err(std::io::Error::other)
}

/// The command's after-help as man sections: "Examples:" heads a section of that name; a
/// block without a heading is a note.
fn after_help_sections(roff: &mut Roff, command: &Command) {
    let after = command
        .get_after_long_help()
        .or_else(|| command.get_after_help());
    for block in after
        .map(ToString::to_string)
        .unwrap_or_default()
        .split("\n\n")
    {
        if block.trim().is_empty() {
            continue;
        }
        let mut lines = block.lines().peekable();
        let heading = match lines.peek().and_then(|line| line.strip_suffix(':')) {
            Some(heading) => {
                let heading = heading.to_uppercase();
                lines.next();
                heading
            }
            None => "NOTES".to_owned(),
        };
        roff.control("SH", [heading.as_str()]);
        roff.control("nf", []);
        for line in lines {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
    }
}

/// docker-credential-coffer parses no options (its one argument is the protocol's action), so
/// it has no clap definition to run; this one describes it for its man page and completions,
/// and a test keeps its actions equal to the ones the protocol accepts.
pub fn helper_command() -> Command {
    Command::new(PROGRAM)
        .version(env!("CARGO_PKG_VERSION"))
        .about("Docker credential helper with coffer's encrypted vault behind it")
        .long_about(
            "docker, podman, skopeo and buildah run this program, found on PATH, with one action. \
             The request comes on standard input and the answer goes to standard output; every \
             failure is one line on standard output with exit status 1. People use coffer(1) \
             instead; `coffer setup docker` makes docker use this helper.",
        )
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .subcommand_required(true)
        .arg(
            Arg::new("version")
                .short('v')
                .long("version")
                .action(ArgAction::Version)
                .help("Print the version"),
        )
        .subcommands([
            Command::new("store").about(
                "Keep the credentials read from standard input: \
                 {\"ServerURL\": …, \"Username\": …, \"Secret\": …}",
            ),
            Command::new("get")
                .about("Print the credentials of the server URL read from standard input, as JSON"),
            Command::new("erase")
                .about("Forget the credentials of the server URL read from standard input"),
            Command::new("list")
                .about("Print every stored server URL with its username, as one JSON object"),
            Command::new("version").about("Print the version"),
        ])
        .after_help(format!(
            "{}\n\nExample:\n  echo registry.example.com | docker-credential-coffer get",
            super::ENVIRONMENT
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag, argument and value of every command says what it does: `--help` and the man
    /// pages are the reference, and docs/ do not repeat them.
    #[test]
    fn every_flag_argument_and_value_is_described() {
        fn walk(command: &Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || matches!(id, "help" | "version") {
                    continue;
                }
                let values = arg.get_possible_values();
                let shown: Vec<_> = values.iter().filter(|v| !v.is_hide_set()).collect();
                let described = arg.get_help().is_some() || arg.get_long_help().is_some();
                let values_described =
                    !shown.is_empty() && shown.iter().all(|v| v.get_help().is_some());
                if !described && !values_described {
                    missing.push(format!("{path} {id}"));
                }
                if shown.iter().any(|v| v.get_help().is_some()) {
                    for value in shown.iter().filter(|v| v.get_help().is_none()) {
                        missing.push(format!("{path} {id} {}", value.get_name()));
                    }
                }
            }
            for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::super::Cli::command(), "coffer", &mut missing);
        walk(&helper_command(), PROGRAM, &mut missing);
        assert!(missing.is_empty(), "undescribed:\n{}", missing.join("\n"));
    }

    #[test]
    fn helper_page_names_exactly_the_protocols_actions() {
        let usage = coffer::protocol::usage();
        let listed = usage
            .split_once('<')
            .and_then(|(_, rest)| rest.strip_suffix('>'))
            .expect("usage lists the actions");
        let mut protocol: Vec<&str> = listed.split('|').collect();
        let command = helper_command();
        let mut described: Vec<&str> = command.get_subcommands().map(Command::get_name).collect();
        protocol.sort_unstable();
        described.sort_unstable();
        assert_eq!(described, protocol);
        command.debug_assert();
    }

    #[test]
    fn after_help_becomes_sections_and_nothing_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let command = Command::new("demo")
            .about("A demo")
            .after_help("Runs daily.\n\nExamples:\n  demo --now\n  demo");
        write_page(dir.path(), command, Subcommands::Pages).expect("page");
        let page = std::fs::read_to_string(dir.path().join("demo.1")).expect("read");
        for wanted in [
            ".SH NOTES",
            "Runs daily.",
            ".SH EXAMPLES",
            "  demo \\-\\-now",
        ] {
            assert!(page.contains(wanted), "{wanted:?} missing from:\n{page}");
        }
    }

    #[test]
    fn main_pages_have_files_environment_and_passphrase_sections() {
        let dir = tempfile::tempdir().expect("temp dir");
        run(What::Man, dir.path()).expect("man");
        for page in ["coffer.1", "docker-credential-coffer.1"] {
            let text = std::fs::read_to_string(dir.path().join(page)).expect("read");
            for section in [".SH ENVIRONMENT", ".SH \"PASSPHRASE SOURCES\"", ".SH FILES"] {
                assert!(text.contains(section), "{page} has no {section}");
            }
            assert!(text.contains("vault.coffer") && text.contains("COFFER_PASSPHRASE_FILE"));
        }
    }

    #[test]
    fn a_link_already_in_the_folder_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        let victim = dir.path().join("profile");
        std::fs::write(&victim, "export PATH\n").expect("victim");
        for (what, name) in [(What::Man, "coffer.1"), (What::Completions, "coffer.bash")] {
            let link = out.join(name);
            std::os::unix::fs::symlink(&victim, &link).expect("link");
            run(what, &out).expect("generate");
            assert_eq!(
                std::fs::read_to_string(&victim).expect("read"),
                "export PATH\n"
            );
            let written = std::fs::symlink_metadata(&link).expect("stat");
            assert!(written.is_file(), "{name} is a file of its own now");
            assert_eq!(
                std::os::unix::fs::PermissionsExt::mode(&written.permissions()) & 0o777,
                0o644
            );
        }
    }

    #[test]
    fn setup_help_names_each_tool_once() {
        let mut coffer = super::super::Cli::command();
        coffer.build();
        let help = coffer
            .find_subcommand_mut("setup")
            .expect("setup")
            .render_long_help()
            .to_string();
        assert!(help.contains("- docker: `credsStore`"), "{help}");
        assert!(
            !help.contains("docker: docker:") && !help.contains("podman: podman"),
            "{help}"
        );
    }

    #[test]
    fn completions_offer_no_hidden_verb() {
        let dir = tempfile::tempdir().expect("temp dir");
        run(What::Completions, dir.path()).expect("completions");
        for file in ["coffer.bash", "_coffer", "coffer.fish"] {
            let text = std::fs::read_to_string(dir.path().join(file)).expect("read");
            assert!(text.contains("unlock"), "{file} lists the verbs");
            for hidden in ["agent", "generate"] {
                assert!(
                    !text.contains(&format!("subcmd__{hidden}"))
                        && !text.contains(&format!(" {hidden} "))
                        && !text.contains(&format!("'{hidden}:"))
                        && !text.contains(&format!("\"{hidden}\"")),
                    "{file} offers the hidden verb {hidden}"
                );
            }
        }
    }

    #[test]
    fn every_verb_has_an_example() {
        for verb in super::super::Cli::command().get_subcommands() {
            let help = verb.get_after_help().map(ToString::to_string);
            assert!(
                help.as_deref().is_some_and(|h| h.contains("Example")),
                "`coffer {} --help` has no example",
                verb.get_name()
            );
        }
    }
}
