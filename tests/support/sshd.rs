//! An `sshd` of the test's own on 127.0.0.1 (Debian's openssh-server), with a host key, a user
//! key and a known-hosts file the test makes; and the client configuration that reaches it as
//! the host `dee-sshd`, used through an `ssh` first on the exporter's PATH that is the system's
//! `ssh` given that configuration (`-F`), since `ssh` reads `~/.ssh` of the user's passwd entry
//! and not of `$HOME`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, run_ok, tempdir, wait_until};

/// The `Host` the client configuration names it by.
pub const HOST: &str = "dee-sshd";

pub struct Sshd {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
}

impl Sshd {
    pub fn start() -> Self {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "the ssh test needs sshd (apt-get install openssh-server)"
        );
        let dir = tempdir("sshd");
        let d = dir.display().to_string();
        for key in ["host_key", "id"] {
            run_ok(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-f", &format!("{d}/{key}")],
            );
        }
        let port = free_port();
        let user = run_ok("id", &["-un"]).trim().to_owned();
        // The key is this user's only: another user's login is refused.
        std::fs::copy(
            dir.join("id.pub"),
            dir.join(format!("authorized_keys_{user}")),
        )
        .expect("authorized_keys");
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys_%u\nPidFile {d}/sshd.pid\nStrictModes no\n\
                 UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n"
            ),
        )
        .expect("sshd_config");
        // Its privilege separation folder.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).expect("sshd.log"))
            .spawn()
            .expect("sshd starts");
        let listening = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(listening, "sshd did not listen on {port}");
        let host_key = std::fs::read_to_string(dir.join("host_key.pub")).expect("host key");
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_key}"),
        )
        .expect("known_hosts");
        std::fs::write(
            dir.join("ssh_config"),
            format!(
                "Host {HOST}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  \
                 IdentityFile {d}/id\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  \
                 StrictHostKeyChecking yes\n"
            ),
        )
        .expect("ssh_config");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        let wrapper = bin.join("ssh");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nexec /usr/bin/ssh -F {d}/ssh_config \"$@\"\n"),
        )
        .expect("the ssh wrapper");
        run_ok("chmod", &["755", wrapper.to_str().expect("utf-8")]);
        Self { child, dir, port }
    }

    /// A PATH whose `ssh` uses this server's client configuration.
    pub fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// Kills every `ssh` that uses this server's client configuration (the exporter's
    /// connections); how many.
    pub fn kill_clients(&self) -> usize {
        let pattern = format!("ssh -F {}/ssh_config", self.dir.display());
        let out = Command::new("pkill")
            .args(["-e", "-f", &pattern])
            .output()
            .expect("pkill runs");
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
