//! A temp home per test, the built binaries with a scrubbed environment, and real registries.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PASSPHRASE: &str = "correct horse battery staple";

/// Fails the test, naming the tool, when a real client or server it needs is missing.
pub fn require(tool: &str) {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|dir| dir.join(tool).is_file());
    assert!(
        found,
        "`{tool}` is not installed; run scripts/test, which installs what the tests need"
    );
}

/// Fails the test, naming the package, when a file it needs (a program named by path) is missing.
pub fn require_file(path: &str, package: &str) {
    assert!(
        Path::new(path).is_file(),
        "{path} is missing (Debian package {package}); run scripts/test, which installs what the tests need"
    );
}

/// The docker CLI every test runs, named by path so that no test depends on which `docker`
/// comes first on PATH: Debian's (20.10, package docker.io), which scripts/test installs with
/// the engine of the same version (engine.rs). A newer CLI elsewhere on PATH (28.x in
/// /usr/local/bin here) is not on every CI machine, and both speak the same helper protocol.
pub const DOCKER: &str = "/usr/bin/docker";

/// [`DOCKER`] in `env`, failing with a clear message when it is missing.
pub fn docker(env: &Env, args: &[&str], input: &str) -> Run {
    require_file(DOCKER, "docker.io");
    Run::of(env.command(DOCKER).args(args), input)
}

pub fn bin(name: &str) -> PathBuf {
    match name {
        "coffer" => PathBuf::from(env!("CARGO_BIN_EXE_coffer")),
        "docker-credential-coffer" => PathBuf::from(env!("CARGO_BIN_EXE_docker-credential-coffer")),
        other => panic!("unknown binary {other}"),
    }
}

/// A throw-away HOME holding the vault, docker's config and the passphrase file.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// Variables every command of this home gets (an identity the test gives the whole machine).
    vars: Vec<(String, String)>,
}

impl Env {
    /// A home whose vault is created with the cheapest allowed Argon2id parameters.
    pub fn new() -> Env {
        let env = Env::empty();
        env.coffer(&["init", "--kdf-memory-mib", "19", "--kdf-iterations", "2"])
            .success();
        env
    }

    /// A home with a passphrase file but no vault.
    pub fn empty() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("coffer-test-")
            .tempdir()
            .expect("temp dir");
        // The root is also the commands' $XDG_RUNTIME_DIR, which is the user's alone (0700) on
        // a real system: coffer refuses to keep files in one that others can open.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        for sub in ["home", "coffer", "docker"] {
            fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let env = Env {
            dir,
            vars: Vec::new(),
        };
        env.write_private(&env.passphrase_file(), &format!("{PASSPHRASE}\n"));
        env
    }

    /// The same home, with `name=value` in the environment of every command run in it: the
    /// helper docker and skopeo start included.
    pub fn with_var(mut self, name: &str, value: &str) -> Env {
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    pub fn coffer_home(&self) -> PathBuf {
        self.root().join("coffer")
    }

    pub fn docker_config(&self) -> PathBuf {
        self.root().join("docker")
    }

    pub fn vault(&self) -> PathBuf {
        self.coffer_home().join("vault.coffer")
    }

    pub fn passphrase_file(&self) -> PathBuf {
        self.root().join("passphrase")
    }

    pub fn write_private(&self, path: &Path, content: &str) {
        fs::write(path, content).expect("write");
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    /// A command with only the variables the test sets: none of the developer's own config leaks in.
    /// It runs in a new session, so it never has a terminal to prompt on.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("setsid");
        cmd.arg("--wait").arg(program);
        let bin_dir = bin("coffer").parent().expect("bin dir").to_path_buf();
        let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .expect("PATH");
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", self.home())
            .env("COFFER_HOME", self.coffer_home())
            .env("DOCKER_CONFIG", self.docker_config())
            .env("XDG_RUNTIME_DIR", self.root())
            .env("LANG", "C.UTF-8")
            .envs(self.vars.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null());
        // Removing the passphrase file is how a test takes the passphrase away.
        if self.passphrase_file().exists() {
            cmd.env("COFFER_PASSPHRASE_FILE", self.passphrase_file());
        }
        cmd
    }

    /// `program` on a pseudo-terminal of its own (tools/terminal.py), as run by a person at a
    /// terminal: `/dev/tty` is that terminal. Each `(prompt, reply)` is typed once the prompt
    /// shows; the run's stdout is everything the terminal showed.
    pub fn in_terminal(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
        answers: &[(&str, &str)],
    ) -> Command {
        let python = Path::new("/usr/bin/python3");
        assert!(
            python.is_file(),
            "/usr/bin/python3 is not installed; run scripts/test, which installs what the tests need"
        );
        let mut cmd = self.command(python);
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/tools/terminal.py"));
        for (prompt, reply) in answers {
            cmd.args(["--answer", prompt, reply]);
        }
        cmd.arg("--").arg(program);
        cmd
    }

    pub fn coffer(&self, args: &[&str]) -> Run {
        Run::of(self.command(bin("coffer")).args(args), "")
    }

    /// Runs the helper with one action and `input` on stdin.
    pub fn helper(&self, action: &str, input: &str) -> Run {
        Run::of(
            self.command(bin("docker-credential-coffer")).arg(action),
            input,
        )
    }

    /// A command run as an unprivileged user when the tests run as root: root reads any file
    /// and its processes' `/proc` entries are root's anyway, so a test about permissions or
    /// dumpability must drop privileges to mean anything. The whole temp root is handed to
    /// that user. As a normal user, the plain command.
    pub fn command_unprivileged(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let inner = self.command(program);
        if !running_as_root() {
            return inner;
        }
        require("setpriv");
        chown_tree(self.root(), NOBODY);
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .args(["--clear-groups", "--"])
            .arg(inner.get_program())
            .args(inner.get_args())
            .env_clear()
            .stdin(Stdio::null());
        for (key, value) in inner.get_envs() {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        cmd
    }

    /// Starts the helper with `action`, held at its first read of stdin until [`release`].
    pub fn hold_helper(&self, action: &str, input: &str) -> Held {
        let mut cmd = self.command(bin("docker-credential-coffer"));
        cmd.arg(action);
        hold(cmd, input)
    }

    /// `program` under a seccomp filter that answers EPERM to every keyring system call, as
    /// Docker's default profile does in containers; what it starts inherits the filter.
    pub fn command_without_keyctl(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let python = "/usr/bin/python3";
        let probe = Command::new(python).args(["-c", "import seccomp"]).output();
        assert!(
            probe.is_ok_and(|out| out.status.success()),
            "python3-seccomp is not installed; run scripts/test, which installs what the tests need"
        );
        let mut cmd = self.command(python);
        cmd.args(["-c", WITHOUT_KEYCTL]).arg(program);
        cmd
    }

    /// Every file under the temp root whose bytes contain `needle`.
    pub fn files_containing(&self, needle: impl AsRef<[u8]>) -> Vec<PathBuf> {
        let needle = needle.as_ref();
        let mut found = Vec::new();
        let mut stack = vec![self.root().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).expect("read dir").flatten() {
                let path = entry.path();
                let kind = entry.file_type().expect("file type");
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() {
                    let bytes = fs::read(&path).unwrap_or_default();
                    if bytes.windows(needle.len()).any(|w| w == needle) {
                        found.push(path);
                    }
                }
            }
        }
        found
    }
}

/// Starts `cmd`, held at its first read of stdin until [`release`].
pub fn hold(mut cmd: Command, input: &str) -> Held {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?} < {input:?}");
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    // Small enough for a pipe's buffer, so releasing never blocks on a slow reader.
    assert!(input.len() < 16 * 1024, "input too large to hold");
    Held {
        child,
        input: input.as_bytes().to_vec(),
        what,
    }
}

/// Runs the rest of its arguments under a seccomp filter that answers EPERM to every keyring
/// system call.
const WITHOUT_KEYCTL: &str = "
import errno, os, sys, seccomp
f = seccomp.SyscallFilter(seccomp.ALLOW)
for call in ('keyctl', 'add_key', 'request_key'):
    f.add_rule(seccomp.ERRNO(errno.EPERM), call)
f.load()
os.execv(sys.argv[1], sys.argv[1:])
";

/// The uid `command_unprivileged` runs as when the tests run as root (Debian's `nobody`).
pub const NOBODY: u32 = 65534;

pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").expect("/proc/self").uid() == 0
}

fn chown_tree(dir: &Path, uid: u32) {
    std::os::unix::fs::chown(dir, Some(uid), Some(uid)).expect("chown");
    for entry in fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if entry.file_type().expect("file type").is_dir() {
            chown_tree(&path, uid);
        } else {
            std::os::unix::fs::lchown(&path, Some(uid), Some(uid)).expect("chown");
        }
    }
}

/// A small deterministic generator for randomised tests; the seed is printed so a failure
/// can be replayed with `COFFER_TEST_SEED`.
pub struct Rng(u64);

impl Rng {
    pub fn new(test: &str) -> Rng {
        let seed = std::env::var("COFFER_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_nanos() as u64
            });
        eprintln!("{test}: COFFER_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    /// xorshift64*
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An independent generator for another thread, derived from this one.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next() | 1)
    }
}

/// A finished process: its exit status and output, with assertions that show both on failure.
pub struct Run {
    pub output: Output,
    pub what: String,
}

impl Run {
    pub fn of(cmd: &mut Command, input: &str) -> Run {
        Run::of_bytes(cmd, input.as_bytes())
    }

    /// Runs `cmd` with `input` on stdin, which need not be text.
    pub fn of_bytes(cmd: &mut Command, input: &[u8]) -> Run {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child.wait_with_output().expect("wait");
        let _ = writer.join();
        Run { output, what }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn success(&self) -> &Self {
        assert!(
            self.output.status.success(),
            "{} failed ({:?})\nstdout: {}\nstderr: {}",
            self.what,
            self.output.status,
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Neither stdout nor stderr holds any of `secrets`.
    pub fn hides(&self, secrets: &[&str]) -> &Self {
        for secret in secrets {
            assert!(
                !self.stdout().contains(secret) && !self.stderr().contains(secret),
                "{} printed a secret\nstdout: {}\nstderr: {}",
                self.what,
                self.stdout(),
                self.stderr()
            );
        }
        self
    }

    pub fn failure(&self) -> &Self {
        assert_eq!(
            self.code(),
            Some(1),
            "{} should exit 1\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// A started process that has not been given its input yet.
pub struct Held {
    pub child: Child,
    input: Vec<u8>,
    what: String,
}

impl Held {
    /// Gives the process its input now and closes its stdin.
    pub fn start(mut self) -> Child {
        let mut stdin = self.child.stdin.take().expect("stdin");
        stdin.write_all(&self.input).expect("write input");
        self.child
    }
}

/// Checks that every held process is alive at this moment, then gives each its input and
/// collects the results, in order. Returns the runs and how many processes were alive at once.
pub fn release(held: Vec<Held>) -> (Vec<Run>, usize) {
    let mut held = held;
    let alive = held
        .iter_mut()
        .map(|h| h.child.try_wait())
        .filter(|status| matches!(status, Ok(None)))
        .count();
    for h in &mut held {
        let mut stdin = h.child.stdin.take().expect("stdin");
        stdin.write_all(&h.input).expect("write input");
    }
    let runs = held
        .into_iter()
        .map(|h| Run {
            output: h.child.wait_with_output().expect("wait"),
            what: h.what,
        })
        .collect();
    (runs, alive)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {port} within 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A certificate authority made for one test, and the server certificates it signs. Clients
/// trust it through its PEM (`SSL_CERT_FILE` for coffer, whose TLS reads the native roots).
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A server certificate from a [`TestCa`], DER and PEM, with its PKCS#8 key.
pub struct ServerCertificate {
    pub der: Vec<u8>,
    pub pem: String,
    pub key_der: Vec<u8>,
    pub key_pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "coffer test CA");
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("CA"),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names` (host names or IP addresses).
    pub fn server(&self, names: &[&str]) -> ServerCertificate {
        let key = rcgen::KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &self.issuer)
            .expect("certificate");
        ServerCertificate {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl ServerCertificate {
    /// A rustls server configuration presenting this certificate, with ring named: the test
    /// process links more than one rustls provider, so there is no default.
    pub fn tls_config(&self) -> std::sync::Arc<rustls::ServerConfig> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls_pki_types::CertificateDer::from(self.der.clone())],
                rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
                    self.key_der.clone(),
                )),
            )
            .expect("server certificate");
        std::sync::Arc::new(config)
    }
}

/// Debian's docker-registry (distribution 2.8) on a free loopback port, stopped on drop.
pub struct Registry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// A registry that takes Basic auth from an htpasswd file holding `user`/`password`.
    pub fn htpasswd(user: &str, password: &str) -> Registry {
        require("htpasswd");
        let dir = tempfile::tempdir().expect("temp dir");
        let htpasswd = dir.path().join("htpasswd");
        let mut child = Command::new("htpasswd")
            .args(["-niB", user])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("htpasswd");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(password.as_bytes())
            .expect("write password");
        let out = child.wait_with_output().expect("htpasswd");
        assert!(
            out.status.success(),
            "htpasswd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(&htpasswd, &out.stdout).expect("write htpasswd");
        let auth = format!(
            "  htpasswd:\n    realm: coffer-test\n    path: {}\n",
            htpasswd.display()
        );
        Registry::start(dir, &auth)
    }

    /// A registry with the given `auth:` section (YAML, indented by two spaces).
    pub fn start(dir: tempfile::TempDir, auth: &str) -> Registry {
        Registry::start_with(dir, "", auth)
    }

    /// A registry serving HTTPS with a PEM certificate and key.
    pub fn start_tls(dir: tempfile::TempDir, cert: &Path, key: &Path, auth: &str) -> Registry {
        let tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        );
        Registry::start_with(dir, &tls, auth)
    }

    /// `http` is more of the `http:` section (YAML, indented by two spaces).
    fn start_with(dir: tempfile::TempDir, http: &str, auth: &str) -> Registry {
        require("docker-registry");
        let port = free_port();
        let config = dir.path().join("config.yml");
        let yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{http}auth:\n{auth}",
            dir.path().join("data").display()
        );
        fs::write(&config, yaml).expect("config");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        wait_for_port(port, &mut child, "docker-registry");
        Registry {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pushes a one-layer image made under `env`'s root to `image` with `skopeo` (a command the
/// caller set up, e.g. with a D-Bus session), its credentials from `authfile`. It is pushed in
/// docker's own manifest format (v2s2), which every docker CLI can `manifest inspect`; Debian's
/// 20.10 cannot inspect an OCI manifest.
pub fn skopeo_push(env: &Env, skopeo: &mut Command, authfile: &str, image: &str) {
    require("skopeo");
    let layout = oci_layout(env.root());
    let source = format!("oci:{}:latest", layout.display());
    let destination = format!("docker://{image}");
    let args = [
        "--insecure-policy",
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        "--dest-authfile",
        authfile,
        &source,
        &destination,
    ];
    Run::of(skopeo.args(args), "").success();
}

/// A minimal OCI image layout (one empty layer) for skopeo to push.
pub fn oci_layout(dir: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let layout = dir.join("oci");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir");
    let put = |bytes: &[u8]| {
        let digest = format!("{:x}", Sha256::digest(bytes));
        fs::write(blobs.join(&digest), bytes).expect("blob");
        (format!("sha256:{digest}"), bytes.len())
    };
    let (layer, layer_size) = put(&[0u8; 1024]);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#
    );
    let (config, config_size) = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{layer_size}}}]}}"#
    );
    let (manifest, manifest_size) = put(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest}","size":{manifest_size},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#
    );
    fs::write(layout.join("index.json"), index).expect("index");
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    layout
}

/// Runs `cmd` with `input`, and the largest resident size (KiB) it or any process it waited for
/// reached, by the kernel's count (`getrusage(RUSAGE_CHILDREN)` of a python3 parent that runs
/// it alone).
pub fn run_measuring_peak(cmd: &mut Command, input: &str) -> (Run, u64) {
    const SCRIPT: &str = "import resource, subprocess, sys\n\
        code = subprocess.call(sys.argv[1:])\n\
        sys.stderr.write('\\npeak-kib %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
        sys.exit(code)\n";
    let mut measured = Command::new("python3");
    measured
        .env_clear()
        .envs(
            cmd.get_envs()
                .filter_map(|(name, value)| value.map(|value| (name, value))),
        )
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["-c", SCRIPT])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let mut run = Run::of(&mut measured, input);
    let stderr = run.stderr();
    let (before, peak) = stderr
        .trim_end()
        .rsplit_once("\npeak-kib ")
        .expect("python3 reported the peak");
    let peak = peak.trim().parse().expect("peak in KiB");
    run.output.stderr = before.as_bytes().to_vec();
    (run, peak)
}
