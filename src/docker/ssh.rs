//! `ssh://[USER@]HOST[:PORT]`, as the docker CLI reaches such an engine: the system's `ssh`
//! (its config, agent and known hosts) runs `docker system dial-stdio` on the other side, and
//! that process's standard input and output are the connection. One `ssh` a connection.
//!
//! `ssh` runs with `BatchMode=yes` (no prompt for a password or a passphrase, which nobody
//! could answer) and nothing that weakens its host key checks. When it fails (no such command,
//! a refused key, an unknown host key, a remote without `docker`), the connection ends with an
//! error carrying the end of what it wrote on its standard error.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

/// The most of `ssh`'s standard error an error shows (its end).
const MAX_STDERR_BYTES: usize = 1024;

/// Where to reach the engine: `ssh`'s destination and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `[USER@]HOST`, as `ssh` takes it (a `Host` of its config too).
    pub destination: String,
    pub port: Option<u16>,
}

impl Target {
    /// `[USER@]HOST[:PORT]`, the part after `ssh://`; `Err` says what is wrong.
    pub fn parse(rest: &str) -> Result<Self, &'static str> {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err("no path after the host; the remote's docker finds its own engine");
        }
        let (user, host_port) = match rest.rsplit_once('@') {
            Some((user, hp)) if !user.is_empty() => (Some(user), hp),
            Some(_) => return Err("an empty user before @"),
            None => (None, rest),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p.parse::<u16>().map_err(|_| "the port is not a number")?;
                (h, Some(port))
            }
            _ => (host_port, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.starts_with('-') {
            return Err("no host; use ssh://[USER@]HOST[:PORT]");
        }
        if user.is_some_and(|u| u.starts_with('-')) {
            return Err("a user cannot start with -");
        }
        Ok(Self {
            destination: match user {
                Some(u) => format!("{u}@{host}"),
                None => host.to_owned(),
            },
            port,
        })
    }

    /// Starts `ssh` and its `docker system dial-stdio`: the connection.
    pub fn connect(&self) -> io::Result<SshStream> {
        let mut cmd = Command::new("ssh");
        cmd.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-T"]);
        if let Some(port) = self.port {
            cmd.arg("-p").arg(port.to_string());
        }
        cmd.arg("--")
            .arg(&self.destination)
            .args(["docker", "system", "dial-stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(
                    e.kind(),
                    "ssh:// needs the ssh command, and there is none on the PATH (apt-get install openssh-client)",
                )
            } else {
                io::Error::new(e.kind(), format!("starting ssh: {e}"))
            }
        })?;
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => return Err(io::Error::other("ssh started without its pipes")),
            };
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let mut all = Vec::new();
            let mut stderr = stderr;
            let mut buf = [0u8; 1024];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        all.extend_from_slice(&buf[..n]);
                        if all.len() > 2 * MAX_STDERR_BYTES {
                            all.drain(..all.len() - MAX_STDERR_BYTES);
                        }
                    }
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&all).into_owned());
        });
        Ok(SshStream {
            _child: child,
            stdin,
            stdout,
            stderr: Some(rx),
            ended: false,
        })
    }
}

/// The connection: `ssh`'s standard output read, its standard input written. It ends when `ssh`
/// does: cleanly if `ssh` wrote nothing on its standard error, else with that as the error.
pub struct SshStream {
    /// Killed when the connection is dropped.
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// What `ssh` wrote on its standard error, once it closed it (it exited).
    stderr: Option<oneshot::Receiver<String>>,
    ended: bool,
}

impl AsyncRead for SshStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.ended {
            let before = buf.filled().len();
            match Pin::new(&mut this.stdout).poll_read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                    this.ended = true;
                }
                other => return other,
            }
        }
        // Its output ended: why, once its standard error is closed too.
        let Some(rx) = this.stderr.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let said = match Pin::new(rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(said) => said.unwrap_or_default(),
        };
        this.stderr = None;
        let said = said.trim();
        if said.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let start = said
            .char_indices()
            .map(|(i, _)| i)
            .find(|i| said.len() - i <= MAX_STDERR_BYTES)
            .unwrap_or(0);
        let said = said[start..].replace('\n', " / ");
        // Its own messages start with "ssh: " already; the remote's do not.
        let said = if said.starts_with("ssh: ") {
            said
        } else {
            format!("ssh: {said}")
        };
        Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, said)))
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stdin).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_as_the_docker_cli_reads_them() {
        let t = |s: &str| Target::parse(s).map(|t| (t.destination, t.port));
        assert_eq!(t("me@host"), Ok(("me@host".into(), None)));
        assert_eq!(t("host:2222"), Ok(("host".into(), Some(2222))));
        assert_eq!(t("me@10.0.0.5:22/"), Ok(("me@10.0.0.5".into(), Some(22))));
        assert_eq!(t("[::1]:2222"), Ok(("::1".into(), Some(2222))));
        assert_eq!(t("alias"), Ok(("alias".into(), None)));
        assert_eq!(
            t("host/var/run/docker.sock"),
            Err("no path after the host; the remote's docker finds its own engine")
        );
        assert_eq!(
            t("-oProxyCommand=x"),
            Err("no host; use ssh://[USER@]HOST[:PORT]")
        );
        assert_eq!(t("-x@host"), Err("a user cannot start with -"));
        assert_eq!(t("host:ssh"), Err("the port is not a number"));
    }
}
