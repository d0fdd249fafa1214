//! Typed errors of the TSO server and client, and their gRPC status codes.

use std::path::PathBuf;
use std::time::Duration;
use tonic::{Code, Status};

/// gRPC metadata key carrying the leader's address on a NOT-leader answer.
pub const LEADER_METADATA: &str = "x-tso-leader";

/// Everything a TSO call or a TSO process can fail with.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TsoError {
    /// A request for zero timestamps, or for more than [`crate::MAX_COUNT`].
    #[error("invalid timestamp count {0}: ask for 1 to {max}", max = crate::MAX_COUNT)]
    InvalidCount(u64),
    /// The process asked is a standby (or has just lost its lease).
    #[error("this TSO process is not the leader{}", .leader.as_ref().map(|l| format!("; the leader is {l}")).unwrap_or_default())]
    NotLeader {
        /// The leader's address when the standby knows it.
        leader: Option<String>,
    },
    /// No leader could be reached (connection refused, stream broken, …).
    #[error("TSO unavailable: {0}")]
    Unavailable(String),
    /// The call did not get a timestamp within the client's timeout.
    #[error("no timestamp from the TSO within {0:?}")]
    Timeout(Duration),
    /// The upper bound could not be persisted or read (file or metadb).
    #[error("TSO storage: {0}")]
    Storage(String),
    /// The data directory is unusable; the process refuses to start rather
    /// than risk handing out a timestamp it handed out before.
    #[error("TSO data directory {}: {msg}", .dir.display())]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it and what to do.
        msg: String,
    },
    /// A server answered a timestamp not above one this client returned
    /// before; the client refuses it.
    #[error("TSO answered {got}, not above {last} returned before: refusing a timestamp that goes backwards")]
    Regression {
        /// The first timestamp of the answer.
        got: u64,
        /// The highest timestamp this client returned before.
        last: u64,
    },
    /// The client was dropped while a call waited.
    #[error("TSO client closed")]
    Closed,
}

impl From<TsoError> for Status {
    fn from(e: TsoError) -> Status {
        match &e {
            TsoError::InvalidCount(_) => Status::invalid_argument(e.to_string()),
            TsoError::NotLeader { leader } => {
                let mut s = Status::failed_precondition(e.to_string());
                if let Some(l) = leader.as_ref().and_then(|l| l.parse().ok()) {
                    s.metadata_mut().insert(LEADER_METADATA, l);
                }
                s
            }
            _ => Status::unavailable(e.to_string()),
        }
    }
}

impl From<Status> for TsoError {
    fn from(s: Status) -> TsoError {
        match s.code() {
            Code::FailedPrecondition => TsoError::NotLeader {
                leader: s
                    .metadata()
                    .get(LEADER_METADATA)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
            },
            Code::InvalidArgument => TsoError::Unavailable(format!("server refused the request: {}", s.message())),
            _ => TsoError::Unavailable(format!("{:?}: {}", s.code(), s.message())),
        }
    }
}

pub type Result<T, E = TsoError> = std::result::Result<T, E>;
