//! Failpoints: named places in the transaction protocol where a test makes
//! something fail, to check that recovery leaves every transaction whole
//! or absent and every acknowledged one present.
//!
//! A failpoint is armed for one hit with an [`Action`]:
//! - [`Action::Crash`] (in-process tests): the caller behaves as if its
//!   process died there (connections dropped without cleanup, the agents'
//!   memory of the transaction lost);
//! - [`Action::Exec`] (process tests): a shell command runs at that place
//!   and the caller goes on. `kill -9 $PPID` kills the CN itself there (the
//!   shell's parent); `kill -9 <pid>` kills a sidecar agent or a `mariadbd`,
//!   and the CN then meets that failure from the next step on.
//!
//! Armed through [`arm`] (tests) or, in a CN process, through the
//! environment variable [`ENV`] read once at start ([`arm_from_env`]); never
//! through SQL. When none is armed a check is one atomic load.
//!
//! The places, in protocol order: [`OPEN_AFTER_ADMISSION`] (a snapshot's
//! admission is held at the agent, the gate closed to commits, no read
//! view made yet), then the commit path: [`BEFORE_PREPARE`],
//! [`AFTER_FIRST_PREPARE`] (one branch prepared, the others not),
//! [`AFTER_PREPARES`] (every branch prepared; async commit has decided, the
//! client has no answer), [`AFTER_DECISION`] (2PC: decision row written),
//! [`AFTER_FIRST_COMMIT`] (one branch committed; under async commit the
//! client has its answer). (fail-rs would do for the in-process part, but
//! its callbacks are synchronous, and the crash needs to close connections
//! on the way out.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub const OPEN_AFTER_ADMISSION: &str = "open-after-admission";
pub const BEFORE_PREPARE: &str = "commit-before-prepare";
pub const AFTER_FIRST_PREPARE: &str = "commit-after-first-prepare";
pub const AFTER_PREPARES: &str = "commit-after-prepares";
pub const AFTER_DECISION: &str = "commit-after-decision";
pub const AFTER_FIRST_COMMIT: &str = "commit-after-first-commit";

/// The commit path's failpoints, in order.
pub const COMMIT: [&str; 5] = [BEFORE_PREPARE, AFTER_FIRST_PREPARE, AFTER_PREPARES, AFTER_DECISION, AFTER_FIRST_COMMIT];

/// Before each batch an online CREATE INDEX copies (`crate`-external: the
/// CN's backfill). Not in [`ALL`], which lists the transaction protocol's
/// points; tests arm it with an `exec:sleep N` to hold a creation in its
/// backfill.
pub const GSI_BACKFILL_BATCH: &str = "gsi-backfill-batch";

/// Every failpoint, in protocol order.
pub const ALL: [&str; 6] =
    [OPEN_AFTER_ADMISSION, BEFORE_PREPARE, AFTER_FIRST_PREPARE, AFTER_PREPARES, AFTER_DECISION, AFTER_FIRST_COMMIT];

/// The environment variable a CN process arms a failpoint from:
/// `<point>=crash` or `<point>=exec:<shell command>`.
pub const ENV: &str = "CN_FAILPOINT";

/// What happens when an armed failpoint is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The caller simulates its own crash.
    Crash,
    /// `sh -c <command>` runs to its end, then the caller goes on.
    Exec(String),
}

static ARMED: AtomicBool = AtomicBool::new(false);
static POINT: Mutex<Option<(&'static str, Action)>> = Mutex::new(None);

/// Arms `point` for its next hit (one shot).
pub fn arm(point: &'static str, action: Action) {
    *POINT.lock().unwrap_or_else(|e| e.into_inner()) = Some((point, action));
    ARMED.store(true, Ordering::SeqCst);
}

/// Disarms any failpoint.
pub fn disarm() {
    *POINT.lock().unwrap_or_else(|e| e.into_inner()) = None;
    ARMED.store(false, Ordering::SeqCst);
}

/// Whether a failpoint is armed (it has not been reached yet).
pub fn armed() -> bool {
    ARMED.load(Ordering::SeqCst)
}

/// Whether `point` is the armed failpoint (callers that must order their
/// work around it, e.g. one branch before the others, ask first).
pub fn armed_at(point: &str) -> bool {
    ARMED.load(Ordering::Relaxed)
        && POINT.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|p| p.0 == point)
}

/// Parses `<point>=crash` or `<point>=exec:<command>`. Errors: an unknown
/// point or action, with the accepted forms.
pub fn parse(spec: &str) -> Result<(&'static str, Action), String> {
    let (name, action) = spec.split_once('=').ok_or_else(|| format!("{ENV}={spec:?}: expected <point>=<action>"))?;
    let point = ALL
        .into_iter()
        .find(|p| *p == name.trim())
        .ok_or_else(|| format!("{ENV}: unknown failpoint {name:?}; known: {}", ALL.join(", ")))?;
    let action = match action.trim() {
        "crash" => Action::Crash,
        a => match a.strip_prefix("exec:") {
            Some(cmd) if !cmd.trim().is_empty() => Action::Exec(cmd.to_string()),
            _ => return Err(format!("{ENV}: unknown action {a:?}; expected crash or exec:<command>")),
        },
    };
    Ok((point, action))
}

/// Arms the failpoint named by [`ENV`], if set. Errors: as [`parse`].
pub fn arm_from_env() -> Result<(), String> {
    match std::env::var(ENV) {
        Ok(spec) if !spec.trim().is_empty() => {
            let (point, action) = parse(&spec)?;
            tracing::warn!(point, ?action, "failpoint armed from {ENV}");
            arm(point, action);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Called at `point`. When it is armed (which disarms it): runs an
/// [`Action::Exec`] command and returns `false`, or returns `true` for
/// [`Action::Crash`] (the caller simulates its crash). Otherwise `false`.
pub async fn reached(point: &str) -> bool {
    if !ARMED.load(Ordering::Relaxed) {
        return false;
    }
    let action = {
        let mut p = POINT.lock().unwrap_or_else(|e| e.into_inner());
        match p.as_ref() {
            Some((armed, _)) if *armed == point => {
                ARMED.store(false, Ordering::SeqCst);
                p.take().map(|(_, a)| a)
            }
            _ => None,
        }
    };
    match action {
        Some(Action::Crash) => true,
        Some(Action::Exec(cmd)) => {
            tracing::warn!(point, cmd, "failpoint reached: running its command");
            match tokio::process::Command::new("sh").arg("-c").arg(&cmd).status().await {
                Ok(s) if s.success() => {}
                Ok(s) => tracing::warn!(point, cmd, status = %s, "the failpoint's command failed"),
                Err(e) => tracing::warn!(point, cmd, error = %e, "the failpoint's command did not start"),
            }
            false
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_env_forms() {
        assert_eq!(parse("commit-after-decision=crash").unwrap(), (AFTER_DECISION, Action::Crash));
        assert_eq!(
            parse("open-after-admission=exec:kill -9 $PPID").unwrap(),
            (OPEN_AFTER_ADMISSION, Action::Exec("kill -9 $PPID".into()))
        );
        assert!(parse("nowhere=crash").unwrap_err().contains("unknown failpoint"));
        assert!(parse("commit-before-prepare=explode").unwrap_err().contains("unknown action"));
        assert!(parse("commit-before-prepare").is_err());
    }
}
