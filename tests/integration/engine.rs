//! A private Docker engine for the end-to-end tests: Debian's `dockerd` as root on a unix socket
//! in a temp folder, with a containerd of its own, started on first use and shared by every test
//! of the process. Each test brings its own registry (a free port) and so its own image names.
//!
//! A watchdog process stops it all when the test process ends, however it ends (a panic, a
//! failed assertion, a signal): dockerd, containerd, the shims and what they run, the mounts,
//! the folder.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::harness::{DOCKER, Env, Run, free_port, require_file};

const DOCKERD: &str = "/usr/sbin/dockerd";
const CONTAINERD: &str = "/usr/bin/containerd";
/// busybox-static's: a static binary that runs in a `FROM scratch` image.
const BUSYBOX: &str = "/bin/busybox";

pub struct Engine {
    dir: PathBuf,
    socket: PathBuf,
    swarm: Mutex<bool>,
    /// containerd and dockerd, never waited for: they outlive the tests, until the watchdog.
    _daemons: [Child; 2],
    /// Its stdin is closed when this process ends, which is its signal.
    _watchdog: Child,
}

static ENGINE: OnceLock<Engine> = OnceLock::new();

/// The shared engine, started by the first test that asks for it.
pub fn engine() -> &'static Engine {
    ENGINE.get_or_init(Engine::start)
}

/// Stops what the engine started once the test process is gone (its stdin reaches EOF): first
/// politely, dockerd (which stops its containers) then containerd, then by force whatever is
/// left: shims (their command line names our containerd's socket), container processes (in the
/// engine's cgroup), mounts under the folder. Runs in its own session, so a Ctrl-C that stops
/// the tests does not stop it.
const WATCHDOG: &str = r#"
dir=$1 cgroup=$2
cat >/dev/null
# Gone, or a zombie waiting for an init that reaps when it pleases.
gone() { case "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" in '' | Z) return 0 ;; esac; return 1; }
stop() {
  pid=$(cat "$1" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do gone "$pid" && return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
}
stop "$dir/docker.pid"
stop "$dir/containerd.pid"
for proc in /proc/[0-9]*; do
  pid=${proc#/proc/}
  [ "$pid" = $$ ] && continue
  case "$(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null)" in *"$dir"*) kill -9 "$pid" 2>/dev/null ;; esac
done
for procs in /sys/fs/cgroup/*/"$cgroup"/*/cgroup.procs /sys/fs/cgroup/*/"$cgroup"/cgroup.procs; do
  [ -f "$procs" ] && xargs -r kill -9 <"$procs" 2>/dev/null
done
sleep 0.2
for group in /sys/fs/cgroup/*/"$cgroup"/* /sys/fs/cgroup/*/"$cgroup"; do
  [ -d "$group" ] && rmdir "$group" 2>/dev/null
done
grep -F "$dir" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n 1 umount -l 2>/dev/null
rm -rf "$dir"
"#;

impl Engine {
    fn start() -> Engine {
        for file in [DOCKERD, CONTAINERD, "/usr/sbin/runc", DOCKER] {
            require_file(file, "docker.io, containerd and runc");
        }
        require_busybox_static();
        let dir = tempfile::Builder::new()
            .prefix("coffer-engine-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let cgroup = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let watchdog = Command::new("sh")
            .args(["-c", WATCHDOG, "coffer-engine-watchdog"])
            .arg(&dir)
            .arg(&cgroup)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the engine's watchdog");

        // Its own containerd: dockerd would start one only when /run/containerd has none, and
        // would otherwise use the system's, whose shims and state are not ours to clean up.
        let containerd_socket = dir.join("containerd.sock");
        let config = dir.join("containerd.toml");
        fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{socket}\"\n[debug]\n  address = \"\"\n",
                root = dir.join("containerd").display(),
                state = dir.join("containerd-state").display(),
                socket = containerd_socket.display(),
            ),
        )
        .expect("containerd config");
        let containerd = spawn_logged(
            Command::new(CONTAINERD).arg("--config").arg(&config),
            &dir.join("containerd.log"),
        );
        fs::write(dir.join("containerd.pid"), containerd.id().to_string()).expect("pid");

        let socket = dir.join("docker.sock");
        fs::write(dir.join("daemon.json"), "{}").expect("daemon.json");
        let mut dockerd = Command::new(DOCKERD);
        dockerd
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
                "--shutdown-timeout=2",
                "--log-level=warn",
            ])
            // Not /etc/docker/daemon.json: the machine's settings stay out.
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--containerd")
            .arg(&containerd_socket)
            .arg("--cgroup-parent")
            .arg(format!("/{cgroup}"))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()));
        let mut dockerd = spawn_logged(&mut dockerd, &dir.join("dockerd.log"));
        wait_until_it_answers(&dir, &socket, &mut dockerd);
        Engine {
            dir,
            socket,
            swarm: Mutex::new(false),
            _daemons: [containerd, dockerd],
            _watchdog: watchdog,
        }
    }

    /// `unix://` and the socket: DOCKER_HOST for clients.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Debian's docker CLI on this engine, in `env`, with the classic builder.
    pub fn docker_command(&self, env: &Env) -> Command {
        let mut cmd = env.command(DOCKER);
        cmd.env("DOCKER_HOST", self.host())
            .env("DOCKER_BUILDKIT", "0");
        cmd
    }

    pub fn docker(&self, env: &Env, args: &[&str], input: &str) -> Run {
        Run::of(self.docker_command(env).args(args), input)
    }

    /// Builds `image` (busybox printing `greeting`), pushes it, removes it, pulls it back and
    /// runs it: every registry step with what the docker CLI gets from the credential store.
    /// The image stays pulled.
    pub fn build_push_pull_run(&self, env: &Env, image: &str, greeting: &str) {
        let docker = |args: &[&str]| self.docker(env, args, "");
        let context = busybox_context(env.root(), greeting);
        docker(&[
            "build",
            "--quiet",
            "--tag",
            image,
            &context.to_string_lossy(),
        ])
        .success();
        docker(&["push", image]).success();
        docker(&["rmi", image]).success();
        docker(&["pull", image]).success();
        let run = docker(&["run", "--rm", "--network", "none", image]);
        assert_eq!(run.success().stdout(), format!("{greeting}\n"));
    }

    /// Makes the engine a one-node Swarm manager, once: services of several tests share it.
    pub fn swarm(&self) {
        let mut joined = self.swarm.lock().unwrap_or_else(|e| e.into_inner());
        if *joined {
            return;
        }
        // A port of its own for the cluster API: other engines on the machine may hold 2377.
        let listen = format!("127.0.0.1:{}", free_port());
        let config = self.dir.join("swarm-cli");
        fs::create_dir_all(&config).expect("mkdir");
        Run::of(
            Command::new(DOCKER)
                .env_clear()
                .env("DOCKER_HOST", self.host())
                .env("DOCKER_CONFIG", &config)
                .args(["swarm", "init", "--advertise-addr", "127.0.0.1"])
                .args(["--listen-addr", &listen]),
            "",
        )
        .success();
        *joined = true;
    }
}

fn wait_until_it_answers(dir: &Path, socket: &Path, dockerd: &mut Child) {
    let started = Instant::now();
    loop {
        if ping(socket) {
            return;
        }
        let log = || fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
        if let Ok(Some(status)) = dockerd.try_wait() {
            panic!("dockerd exited at start ({status}):\n{}", log());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "dockerd did not answer on {} within 60 s:\n{}",
            socket.display(),
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let mut answer = String::new();
    stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .and_then(|()| stream.read_to_string(&mut answer))
        .is_ok_and(|_| answer.starts_with("HTTP/1.0 200") && answer.ends_with("OK"))
}

/// Starts a daemon in its own process group, its output written to `log`.
fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let log = fs::File::create(log).expect("log");
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

fn require_busybox_static() {
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "busybox-static"])
        .output()
        .expect("dpkg-query");
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("install ok installed"),
        "busybox-static is not installed ({BUSYBOX} must be static to run in a FROM scratch \
         image); run scripts/test, which installs what the tests need"
    );
}

/// A build context in `dir`: a `FROM scratch` image holding busybox-static as `/bin/busybox`,
/// which prints `greeting` when run.
fn busybox_context(dir: &Path, greeting: &str) -> PathBuf {
    let context = dir.join("busybox-context");
    fs::create_dir_all(&context).expect("mkdir");
    fs::copy(BUSYBOX, context.join("busybox")).expect("copy busybox");
    fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\nCMD [\"echo\", \"{greeting}\"]\n"
        ),
    )
    .expect("Dockerfile");
    context
}

/// A build context in `dir` whose image starts `FROM base` and prints `greeting`.
pub fn derived_context(dir: &Path, base: &str, greeting: &str) -> PathBuf {
    let context = dir.join("derived-context");
    fs::create_dir_all(&context).expect("mkdir");
    fs::write(
        context.join("Dockerfile"),
        format!("FROM {base}\nCMD [\"echo\", \"{greeting}\"]\n"),
    )
    .expect("Dockerfile");
    context
}
