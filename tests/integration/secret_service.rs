//! A private session D-Bus per test, with gnome-keyring's real Secret Service on it, unlocked by
//! a throw-away password. Nothing of the developer's own session is reached: the bus has no
//! activatable services, and the keyring lives in a temp home.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::require;

pub const KEYRING_PASSWORD: &str = "throw-away-keyring-password";

pub struct SecretService {
    pub address: String,
    dir: tempfile::TempDir,
    bus: Child,
    keyring: Option<Child>,
}

impl SecretService {
    /// A session bus with an unlocked gnome-keyring on it.
    pub fn start() -> SecretService {
        let mut service = SecretService::bus_only();
        require("gnome-keyring-daemon");
        let home = service.dir.path().join("home");
        fs::create_dir(&home).expect("mkdir");
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", service.dir.path())
            .env("DBUS_SESSION_BUS_ADDRESS", &service.address)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        let mut stdin = keyring.stdin.take().expect("stdin");
        stdin
            .write_all(KEYRING_PASSWORD.as_bytes())
            .expect("keyring password");
        drop(stdin);
        service.keyring = Some(keyring);
        service.wait_for(
            |s| s.name_has_owner("org.freedesktop.secrets"),
            "gnome-keyring",
        );
        service.wait_for(|s| s.default_locked() == Some(false), "the login keyring");
        service
    }

    /// A session bus with nothing on it: no Secret Service.
    pub fn bus_only() -> SecretService {
        require("dbus-daemon");
        require("dbus-send");
        let dir = tempfile::Builder::new()
            .prefix("coffer-bus-")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("bus");
        let config = dir.path().join("bus.conf");
        fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .expect("bus config");
        let bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let service = SecretService {
            address: format!("unix:path={}", socket.display()),
            dir,
            bus,
            keyring: None,
        };
        service.wait_for(|_| socket_exists(&socket), "dbus-daemon");
        service
    }

    /// Puts `cmd` on this bus.
    pub fn apply<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &self.address)
    }

    /// Locks the login keyring, as a screen lock or a timeout would.
    pub fn lock(&self) {
        let out = self
            .send(&[
                "--dest=org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.Lock",
                "array:objpath:/org/freedesktop/secrets/collection/login",
            ])
            .output()
            .expect("dbus-send");
        assert!(out.status.success(), "lock failed: {out:?}");
        assert_eq!(self.default_locked(), Some(true));
    }

    /// Ends the session as a logout does: the keyring daemon and the bus are gone.
    pub fn log_out(&mut self) {
        if let Some(keyring) = &mut self.keyring {
            let _ = keyring.kill();
            let _ = keyring.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }

    /// `secret-tool` with `args`, on this bus.
    pub fn secret_tool(&self, args: &[&str]) -> String {
        require("secret-tool");
        let out = self
            .apply(&mut Command::new("secret-tool"))
            .args(args)
            .output()
            .expect("secret-tool");
        assert!(out.status.success(), "secret-tool {args:?}: {out:?}");
        // `search` prints label and secret on stdout, the attributes on stderr.
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn send(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("dbus-send");
        cmd.args(["--session", "--print-reply"])
            .args(args)
            .env_clear()
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        cmd
    }

    fn name_has_owner(&self, name: &str) -> bool {
        self.send(&[
            "--dest=org.freedesktop.DBus",
            "/",
            "org.freedesktop.DBus.NameHasOwner",
            &format!("string:{name}"),
        ])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("boolean true"))
    }

    fn default_locked(&self) -> Option<bool> {
        let out = self
            .send(&[
                "--dest=org.freedesktop.secrets",
                "/org/freedesktop/secrets/aliases/default",
                "org.freedesktop.DBus.Properties.Get",
                "string:org.freedesktop.Secret.Collection",
                "string:Locked",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("boolean true") {
            Some(true)
        } else if text.contains("boolean false") {
            Some(false)
        } else {
            None
        }
    }

    fn wait_for(&self, ready: impl Fn(&Self) -> bool, what: &str) {
        let started = Instant::now();
        while !ready(self) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what} was not ready within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A socket where a session bus would be, that counts who connects and answers nobody: a
/// process given its address and never connecting has not even tried D-Bus.
pub struct ConnectionCounter {
    pub address: String,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl ConnectionCounter {
    pub fn start() -> ConnectionCounter {
        let dir = tempfile::Builder::new()
            .prefix("coffer-fake-bus-")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("bus");
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        // Runs until the test process ends; each connection is counted and closed at once.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        ConnectionCounter {
            address: format!("unix:path={}", socket.display()),
            count,
            _dir: dir,
        }
    }

    /// Puts `cmd` on this "bus".
    pub fn apply<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &self.address)
    }

    pub fn connections(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn socket_exists(path: &Path) -> bool {
    path.exists()
}

impl Drop for SecretService {
    fn drop(&mut self) {
        if let Some(keyring) = &mut self.keyring {
            let _ = keyring.kill();
            let _ = keyring.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}
