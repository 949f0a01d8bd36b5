//! What packaging/build.sh put in dist/, checked the way a system uses it: the .deb installed,
//! used by docker and removed; the .rpm's files; the PKGBUILD's build and package steps; the
//! Homebrew formula's syntax. The .deb is installed system-wide, so these tests run only when
//! scripts/package-test asks for them (`cargo test --test package`, as root, with COFFER_DIST naming dist/);
//! run any other way, they fail and say how to run them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{DOCKER, Env, Registry, Run, oci_layout, require, require_file};

const USER: &str = "coffer-deb";
const PASSWORD: &str = "deb-Pa55word-4be19a";
/// The system's programs only: the installed /usr/bin/docker-credential-coffer, never the
/// test build. (/usr/local/bin: where docker is when it did not come from Debian.)
const SYSTEM_PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin";

/// The one file in dist/ whose name starts with `prefix` and ends with `suffix`.
fn dist(prefix: &str, suffix: &str) -> PathBuf {
    let dir = std::env::var_os("COFFER_DIST").unwrap_or_else(|| {
        panic!("COFFER_DIST is not set: run scripts/package-test, which builds the packages first")
    });
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dist/")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "want one {prefix}*{suffix} in dist/: {found:?}"
    );
    found.into_iter().next().expect("one")
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
fn deb_installs_serves_docker_end_to_end_and_removes_cleanly() {
    let deb = dist("coffer_", ".deb");
    require_root();
    require_file(DOCKER, "docker.io");
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
    let units =
        ["service", "timer"].map(|kind| format!("/usr/lib/systemd/user/coffer-refresh.{kind}"));
    let mut verify = vec!["verify", "--man=no"];
    verify.extend(units.iter().map(String::as_str));
    output("systemd-analyze", &verify).success();

    let init = ["init", "--kdf-memory-mib", "19", "--kdf-iterations", "2"];
    system(&env, "coffer", &init, "").success();
    system(&env, "coffer", &["setup", "docker"], "").success();

    let registry = Registry::htpasswd(USER, PASSWORD);
    let host = registry.host();
    let login = ["login", "--username", USER, "--password-stdin", &host];
    system(&env, DOCKER, &login, PASSWORD).success();
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
            // Docker's own manifest format: every docker CLI inspects it (20.10 no OCI image).
            "--format",
            "v2s2",
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
        DOCKER,
        &["manifest", "inspect", "--insecure", &image],
        "",
    );
    assert!(
        inspect.success().stdout().contains("\"schemaVersion\": 2"),
        "{}",
        inspect.stdout()
    );
    system(&env, DOCKER, &["logout", &host], "").success();
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
fn rpm_holds_the_same_files_as_the_deb() {
    let deb = dist("coffer_", ".deb");
    let rpm = dist("coffer-", ".rpm");
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

/// `-rwxr-xr-x` for a regular file's mode, as dpkg and rpm print it.
fn permissions(mode: u32) -> String {
    let bits = "rwxrwxrwx";
    std::iter::once('-')
        .chain(bits.chars().enumerate().map(
            |(i, c)| {
                if mode & (0o400 >> i) != 0 { c } else { '-' }
            },
        ))
        .collect()
}

fn tree(root: &Path) -> BTreeSet<(String, String)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("list").flatten() {
            let meta = entry.metadata().expect("stat");
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                let path = entry.path();
                let path = path.strip_prefix(root).expect("inside");
                found.insert((
                    permissions(meta.permissions().mode()),
                    format!("/{}", path.display()),
                ));
            }
        }
    }
    found
}

#[test]
fn pkgbuild_builds_and_packages_the_same_files_as_the_deb() {
    let deb = dist("coffer_", ".deb");
    let tarball = dist("coffer-", ".tar.gz");
    let pkgbuild = dist("PKGBUILD", "");
    let work = tempfile::tempdir().expect("temp dir");
    let (srcdir, pkgdir) = (work.path().join("src"), work.path().join("pkg"));
    std::fs::create_dir_all(&srcdir).expect("mkdir");
    output(
        "tar",
        &[
            "-xzf",
            &tarball.to_string_lossy(),
            "-C",
            &srcdir.to_string_lossy(),
        ],
    )
    .success();
    // What makepkg does with the PKGBUILD (makepkg itself is Arch's): each step in $srcdir.
    let steps = r#"set -euo pipefail; source "$1"; srcdir=$2; pkgdir=$3
        for step in prepare build package; do (cd "$srcdir" && "$step"); done"#;
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    Run::of(
        Command::new("bash")
            .args(["-c", steps, "makepkg"])
            .arg(&pkgbuild)
            .arg(&srcdir)
            .arg(&pkgdir)
            .env("CARGO_TARGET_DIR", target),
        "",
    )
    .success();
    // makepkg compresses man pages after package(); Arch keeps licenses in their own folder.
    let expected: BTreeSet<(String, String)> = deb_files(&deb)
        .into_iter()
        .filter(|(_, path)| path != "/usr/share/doc/coffer/copyright")
        .map(|(mode, path)| {
            let path = path
                .replace(
                    "/usr/share/zsh/vendor-completions/",
                    "/usr/share/zsh/site-functions/",
                )
                .replace(
                    "/usr/share/doc/coffer/LICENSE",
                    "/usr/share/licenses/coffer/LICENSE",
                );
            (mode, path.trim_end_matches(".gz").to_owned())
        })
        .collect();
    assert_eq!(tree(&pkgdir), expected);
}

#[test]
fn formula_and_pkgbuild_are_filled_in_for_the_tarball() {
    let tarball = dist("coffer-", ".tar.gz");
    let checksum = std::fs::read_to_string(dist("coffer-", ".tar.gz.sha256")).expect("sha256");
    let sha = checksum.split_whitespace().next().expect("hash");
    let formula = dist("coffer", ".rb");
    for file in [&formula, &dist("PKGBUILD", "")] {
        let text = std::fs::read_to_string(file).expect("read");
        assert!(
            !text.contains('@'),
            "{} has a placeholder left:\n{text}",
            file.display()
        );
        assert!(
            text.contains(sha),
            "{} does not name the tarball's sha256",
            file.display()
        );
        let name = tarball.file_name().expect("name").to_string_lossy();
        assert!(
            text.contains(name.as_ref()),
            "{} does not name {name}",
            file.display()
        );
    }
    let ruby = output("ruby", &["-c", &formula.to_string_lossy()]);
    assert_eq!(ruby.success().stdout(), "Syntax OK\n");
    output("bash", &["-n", &dist("PKGBUILD", "").to_string_lossy()]).success();
}

/// Every pull runs the helper, so the package ships the one scripts/build-release makes for
/// start-up: without the clouds' SDKs (their crates' source paths, kept in panic locations even
/// in a stripped binary, appear in `coffer` and not in the helper), and, on a glibc with its
/// static archive, as this Debian has with libc6-dev, linked static-pie with packed relocations.
#[test]
fn the_packaged_helper_is_static_and_holds_no_cloud_sdk() {
    let deb = dist("coffer_", ".deb");
    let root = tempfile::tempdir().expect("temp dir");
    let root_path = root.path().to_string_lossy();
    output("dpkg-deb", &["-x", &deb.to_string_lossy(), &root_path]).success();
    let helper = root.path().join("usr/bin/docker-credential-coffer");
    let coffer = root.path().join("usr/bin/coffer");
    let holds = |binary: &Path, needle: &str| {
        let bytes = std::fs::read(binary).expect("binary");
        bytes
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    };
    for sdk in ["aws-sdk-ecr", "google-cloud-auth", "azure_identity"] {
        assert!(holds(&coffer, sdk), "coffer mints with {sdk}");
        assert!(!holds(&helper, sdk), "the helper holds {sdk}");
    }
    let libc = output("cc", &["-print-file-name=libc.a"]);
    assert!(
        Path::new(libc.success().stdout().trim()).is_absolute(),
        "no static glibc here (libc6-dev): scripts/test installs it"
    );
    let headers = output("readelf", &["-lW", &helper.to_string_lossy()]);
    let headers = headers.success().stdout();
    assert!(
        !headers.contains("INTERP"),
        "the helper asks for a dynamic loader: {headers}"
    );
    let sections = output("readelf", &["-SW", &helper.to_string_lossy()]);
    assert!(
        sections.success().stdout().contains(".relr.dyn"),
        "the helper's relocations are not packed"
    );
}
