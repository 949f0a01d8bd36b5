//! The .deb and .rpm that packaging/build.sh made, checked the way a system uses them. The .deb
//! is installed system-wide, so these tests run only when scripts/package-test asks for them
//! (`--ignored`, as root, with COFFER_DEB and COFFER_RPM naming the packages); run any other
//! way, they fail and say how to run them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Env, Registry, Run, oci_layout, require};

const USER: &str = "coffer-deb";
const PASSWORD: &str = "deb-Pa55word-4be19a";
/// The system's programs only: the installed /usr/bin/docker-credential-coffer, never the
/// test build. (/usr/local/bin: where docker is when it did not come from Debian.)
const SYSTEM_PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin";

fn package(variable: &str) -> PathBuf {
    let path = std::env::var_os(variable).unwrap_or_else(|| {
        panic!("{variable} is not set: run scripts/package-test, which builds the packages first")
    });
    let path = PathBuf::from(path);
    assert!(path.is_file(), "{} does not exist", path.display());
    path
}

fn output(program: &str, args: &[&str]) -> Run {
    require(program);
    Run::of(Command::new(program).args(args), "")
}

fn require_root() {
    let id = output("id", &["-u"]);
    assert_eq!(
        id.success().stdout().trim(),
        "0",
        "installing a .deb needs root: run scripts/package-test as root"
    );
}

/// Permissions and path of every file (not folder) in a `dpkg -c` or `rpm -qp` listing.
fn files(listing: &str) -> BTreeSet<(String, String)> {
    listing
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (mode, path) = (fields.first()?, fields.last()?);
            (!mode.starts_with('d'))
                .then(|| ((*mode).to_owned(), path.trim_start_matches('.').to_owned()))
        })
        .collect()
}

fn deb_files(deb: &Path) -> BTreeSet<(String, String)> {
    files(
        &output("dpkg", &["-c", &deb.to_string_lossy()])
            .success()
            .stdout(),
    )
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "coffer"])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

/// Removes the package however the test ends, so a failure never leaves it on the machine.
struct Removal;

impl Drop for Removal {
    fn drop(&mut self) {
        if installed() {
            let _ = Command::new("dpkg").args(["-r", "coffer"]).output();
        }
    }
}

fn system(env: &Env, program: &str, args: &[&str], input: &str) -> Run {
    Run::of(
        env.command(program).env("PATH", SYSTEM_PATH).args(args),
        input,
    )
}

#[test]
#[ignore = "installs the .deb system-wide: scripts/package-test runs it as root"]
fn deb_installs_serves_docker_end_to_end_and_removes_cleanly() {
    let deb = package("COFFER_DEB");
    require_root();
    require("docker");
    assert!(
        !installed(),
        "coffer is already installed; remove it (dpkg -r coffer) so the test sees a fresh install"
    );
    let _removal = Removal;
    output("dpkg", &["-i", &deb.to_string_lossy()]).success();
    let contents = deb_files(&deb);
    for (_, path) in &contents {
        assert!(Path::new(path).is_file(), "{path} is not installed");
    }

    let env = Env::empty();
    let which = system(
        &env,
        "sh",
        &["-c", "command -v docker-credential-coffer"],
        "",
    );
    assert_eq!(
        which.success().stdout(),
        "/usr/bin/docker-credential-coffer\n"
    );
    let version = system(&env, "docker-credential-coffer", &["version"], "");
    assert_eq!(
        version.success().stdout(),
        format!(
            "docker-credential-coffer (coffer) {}\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let init = ["init", "--kdf-memory-mib", "19", "--kdf-iterations", "2"];
    system(&env, "coffer", &init, "").success();
    system(&env, "coffer", &["setup", "docker"], "").success();

    let registry = Registry::htpasswd(USER, PASSWORD);
    let host = registry.host();
    let login = ["login", "--username", USER, "--password-stdin", &host];
    system(&env, "docker", &login, PASSWORD).success();
    assert_eq!(
        system(&env, "docker-credential-coffer", &["list"], "unused")
            .success()
            .stdout(),
        format!("{{\"{host}\":\"{USER}\"}}\n")
    );

    // An image for `docker manifest inspect`, pushed by skopeo with its credentials from coffer.
    let image = format!("{host}/deb/image:latest");
    let authfile = env.root().join("auth.json");
    env.write_private(
        &authfile,
        &format!(r#"{{"credHelpers": {{"{host}": "coffer"}}}}"#),
    );
    let layout = oci_layout(env.root());
    require("skopeo");
    system(
        &env,
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            "--dest-authfile",
            &authfile.to_string_lossy(),
            &format!("oci:{}:latest", layout.display()),
            &format!("docker://{image}"),
        ],
        "",
    )
    .success();
    let inspect = system(
        &env,
        "docker",
        &["manifest", "inspect", "--insecure", &image],
        "",
    );
    assert!(
        inspect.success().stdout().contains("\"schemaVersion\": 2"),
        "{}",
        inspect.stdout()
    );
    system(&env, "docker", &["logout", &host], "").success();
    assert_eq!(
        system(&env, "docker-credential-coffer", &["list"], "unused")
            .success()
            .stdout(),
        "{}\n"
    );
    let leaks = env.files_containing(PASSWORD);
    assert!(leaks.is_empty(), "the password in plaintext in {leaks:?}");

    output("dpkg", &["-r", "coffer"]).success();
    assert!(!installed(), "dpkg still lists coffer as installed");
    let left: Vec<&String> = contents
        .iter()
        .map(|(_, path)| path)
        .filter(|path| Path::new(path).exists())
        .collect();
    assert!(left.is_empty(), "left behind by dpkg -r: {left:?}");
}

#[test]
#[ignore = "needs the packages: scripts/package-test runs it"]
fn rpm_holds_the_same_files_as_the_deb() {
    let deb = package("COFFER_DEB");
    let rpm = package("COFFER_RPM");
    let listing = output(
        "rpm",
        &[
            "-qp",
            "--queryformat",
            "[%{FILEMODES:perms} %{FILENAMES}\n]",
            &rpm.to_string_lossy(),
        ],
    );
    let rpm_files = files(&listing.success().stdout());
    // Where the distributions' rules differ: Debian's zsh reads vendor-completions, Fedora's
    // site-functions; Debian policy wants a copyright file, RPM has the license tag.
    let deb_files: BTreeSet<(String, String)> = deb_files(&deb)
        .into_iter()
        .filter(|(_, path)| path != "/usr/share/doc/coffer/copyright")
        .map(|(mode, path)| {
            let path = path.replace(
                "/usr/share/zsh/vendor-completions/",
                "/usr/share/zsh/site-functions/",
            );
            (mode, path)
        })
        .collect();
    assert_eq!(rpm_files, deb_files);
    assert!(
        rpm_files
            .iter()
            .any(|(mode, path)| path == "/usr/bin/docker-credential-coffer" && mode == "-rwxr-xr-x"),
        "{rpm_files:?}"
    );
}
