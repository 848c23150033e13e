//! `run`: argv executed directly, never through a shell, in its own process group, killed as a
//! group at its timeout. Its exit status and the end of its stderr are reported.

use std::borrow::Cow;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::future::BoxFuture;
use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;

use super::{Action, ActionResult, BoxedAction, MAX_FIELD_BYTES, Outcome, Runtime};
use crate::rules::config::Named;
use crate::rules::template::{Context, Template};
use crate::rules::{ActionConfig, ActionKind, Checker, Resolver};

/// The rule key that asks for this action, and its `action` label.
const NAME: &str = "run";

/// Default time a command may take before its process group is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a command's stderr is kept for the log (its end).
const STDERR_TAIL_BYTES: usize = 2048;
/// How long to wait for stderr to close after the command exited (a background child of the
/// command may hold it open).
const STDERR_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct RunAction {
    /// `argv[0]` is a plain program name or path: no placeholders.
    pub argv: Vec<Template>,
    pub timeout: Duration,
    pub env: Vec<(String, Template)>,
    /// The folder it runs in, and how a problem with it names it.
    pub cwd: Option<(Named, String)>,
}

/// `run: [program, arg, ...]`, with `timeout`, `env` and `cwd` beside it in the rule.
pub struct Kind;

impl ActionKind<BoxedAction> for Kind {
    fn key(&self) -> &'static str {
        NAME
    }

    fn options(&self) -> &'static [&'static str] {
        &["timeout", "env", "cwd"]
    }

    fn compile(
        &self,
        c: &mut Checker<'_>,
        node: &Node,
        body: &MarkedMappingNode,
        place: &str,
    ) -> Option<BoxedAction> {
        let Some(seq) = node.as_sequence() else {
            c.err(node.span(), format!("run of {place} must be a list: the program and its arguments, e.g. run: [\"notify\", \"%%actor.name%%\"]"));
            return None;
        };
        if seq.is_empty() {
            c.err(node.span(), format!("run of {place} is empty; give the program and its arguments, e.g. run: [\"notify\", \"%%actor.name%%\"]"));
            return None;
        }
        let mut argv = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let Some(s) = c.scalar(item, &format!("each element of run of {place}")) else {
                continue;
            };
            let Some(t) = c.template(s) else { continue };
            if i == 0 && (t.has_placeholders() || s.as_str().is_empty()) {
                c.err(s.span(), format!("the program of run of {place} must be a fixed name or path, without placeholders; pass event fields as arguments"));
                continue;
            }
            argv.push(t);
        }
        let timeout = match body.get_node("timeout") {
            Some(n) => c.duration(n, &format!("timeout of {place}"))?,
            None => DEFAULT_TIMEOUT,
        };
        let mut env = Vec::new();
        if let Some(n) = body.get_node("env") {
            let map = c.mapping(n, &format!("env of {place}"))?;
            for (k, v) in map.iter() {
                if k.as_str().is_empty() || k.as_str().contains(['=', '\0']) {
                    c.err(
                        k.span(),
                        format!("{:?} is not an environment variable name", k.as_str()),
                    );
                    continue;
                }
                let Some(s) = c.scalar(v, &format!("env.{} of {place}", k.as_str())) else {
                    continue;
                };
                if let Some(t) = c.template(s) {
                    env.push((k.as_str().to_owned(), t));
                }
            }
        }
        let cwd = match body.get_node("cwd") {
            Some(n) => {
                let what = format!("cwd of {place}");
                Some((Named::new(c.scalar(n, &what)?), what))
            }
            None => None,
        };
        Some(Box::new(RunAction {
            argv,
            timeout,
            env,
            cwd,
        }))
    }
}

impl ActionConfig for RunAction {
    fn templates(&self) -> Vec<&Template> {
        self.argv
            .iter()
            .chain(self.env.iter().map(|(_, t)| t))
            .collect()
    }

    fn resolve(&mut self, r: &mut Resolver<'_>) {
        if let Some((dir, what)) = &self.cwd {
            r.directory(dir, what);
        }
    }
}

impl RunAction {
    /// The argv and environment, rendered. Literal arguments (the program, most flags) are
    /// borrowed, not copied per firing.
    fn render<'a>(&'a self, ctx: &Context<'_>) -> (Vec<Cow<'a, str>>, Vec<(String, String)>) {
        let argv = self
            .argv
            .iter()
            .map(|t| t.render_cow(ctx, MAX_FIELD_BYTES))
            .collect();
        let env = self
            .env
            .iter()
            .map(|(k, t)| (k.clone(), t.render(ctx, MAX_FIELD_BYTES)))
            .collect();
        (argv, env)
    }
}

impl Action for RunAction {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn dry_run(&self, ctx: &Context<'_>, log: bool) {
        let (argv, env) = self.render(ctx);
        if log {
            tracing::info!(rule = ctx.rule, argv = ?argv, env = ?env.iter().map(|(k, _)| k).collect::<Vec<_>>(), "dry run: would run");
        }
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, rt: Runtime<'a>) -> BoxFuture<'a, ActionResult> {
        Box::pin(execute(self, ctx, rt.secret_vars))
    }
}

async fn execute(a: &RunAction, ctx: &Context<'_>, scrub_env: &[String]) -> ActionResult {
    let (argv, env) = a.render(ctx);
    let Some((program, args)) = argv.split_first() else {
        return Err((Outcome::Failure, "empty argv".to_owned()));
    };
    let mut cmd = tokio::process::Command::new(program.as_ref());
    // Secrets stay out of the commands the rules run, whichever rule reads them.
    for var in scrub_env {
        cmd.env_remove(var);
    }
    cmd.args(args.iter().map(|a| a.as_ref()))
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some((cwd, _)) = &a.cwd {
        cmd.current_dir(PathBuf::from(&cwd.value));
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
