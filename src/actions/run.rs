//! `run`: argv executed directly, never through a shell, in its own process group, killed as a
//! group at its timeout. Its exit status and the end of its stderr are reported.

use std::borrow::Cow;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;

use super::{ActionResult, MAX_FIELD_BYTES, Outcome};
use crate::rules::RunAction;
use crate::rules::template::Context;

/// How much of a command's stderr is kept for the log (its end).
const STDERR_TAIL_BYTES: usize = 2048;
/// How long to wait for stderr to close after the command exited (a background child of the
/// command may hold it open).
const STDERR_GRACE: Duration = Duration::from_secs(1);

pub async fn execute(a: &RunAction, ctx: &Context<'_>, dry: super::Dry) -> ActionResult {
    // Literal arguments (the program, most flags) are borrowed, not copied per firing.
    let argv: Vec<Cow<'_, str>> = a
        .argv
        .iter()
        .map(|t| t.render_cow(ctx, MAX_FIELD_BYTES))
        .collect();
    let env: Vec<(String, String)> = a
        .env
        .iter()
        .map(|(k, t)| (k.clone(), t.render(ctx, MAX_FIELD_BYTES)))
        .collect();
    let Some((program, args)) = argv.split_first() else {
        return Err((Outcome::Failure, "empty argv".to_owned()));
    };
    if dry.on() {
        if dry.logs() {
            tracing::info!(rule = ctx.rule, argv = ?argv, env = ?env.iter().map(|(k, _)| k).collect::<Vec<_>>(), "dry run: would run");
        }
        return Ok(());
    }
    let mut cmd = tokio::process::Command::new(program.as_ref());
    for var in &a.scrub_env {
        cmd.env_remove(var);
    }
    cmd.args(args.iter().map(|a| a.as_ref()))
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &a.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| (Outcome::Failure, format!("cannot start {program}: {e}")))?;
    let pid = child.id();
    let mut stderr = child.stderr.take();
    let tail = tokio::spawn(async move {
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        if let Some(s) = stderr.as_mut() {
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL_BYTES {
                    tail.drain(..tail.len() - STDERR_TAIL_BYTES);
                }
            }
        }
        String::from_utf8_lossy(&tail).trim().to_owned()
    });
    let waited = tokio::time::timeout(a.timeout, child.wait()).await;
    let timed_out = waited.is_err();
    if timed_out {
        // The whole group: a shell script's children go with it.
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = child.wait().await;
    }
    let stderr_tail = match tokio::time::timeout(STDERR_GRACE, tail).await {
        Ok(Ok(t)) => t,
        _ => String::new(),
    };
    let with_stderr = |msg: String| {
        if stderr_tail.is_empty() {
            msg
        } else {
            format!("{msg}; stderr: {stderr_tail}")
        }
    };
    match waited {
        Err(_) => Err((
            Outcome::Timeout,
            with_stderr(format!(
                "{program} did not finish within {:?}; killed its process group",
                a.timeout
            )),
        )),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err((Outcome::Failure, with_stderr(format!("{program} {status}")))),
        Ok(Err(e)) => Err((Outcome::Failure, format!("waiting for {program}: {e}"))),
    }
}
