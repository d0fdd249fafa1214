//! [`RemoteAgent`]: the client of a sidecar agent (`proto/agent.proto`,
//! [`crate::service`]), implementing [`AgentApi`] so the CN uses it exactly
//! as the in-process [`crate::Agent`].

use crate::agent::{Admission, AgentApi, AgentError, AgentStatus, CommitKind, Outcome};
use crate::service::{KEEPALIVE, KEEPALIVE_TIMEOUT};
use async_trait::async_trait;
use proto::agent::agent_client::AgentClient;
use proto::agent::{
    admit_reply, admit_request, AdmitReply, AdmitRequest, AttachRequest, BoolReply, DecideRequest, Empty, Finish,
    FinishOutcome, InDoubtRequest, XidRequest,
};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

/// How long connecting to the agent may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

fn unavailable(s: Status) -> AgentError {
    AgentError::Unavailable(format!("{}: {}", s.code(), s.message()))
}

/// A sidecar agent reached over gRPC, for CN `cn`. Cheap to share behind an
/// `Arc`; the connection is made lazily and re-made after a failure. While
/// it lives it holds a session at the agent (re-opened when it breaks), so
/// the branches this CN registers are its own ([`AgentApi::claim`]).
pub struct RemoteAgent {
    dn: String,
    cn: u64,
    client: AgentClient<Channel>,
    session: tokio::task::JoinHandle<()>,
}

impl Drop for RemoteAgent {
    fn drop(&mut self) {
        self.session.abort();
    }
}

impl RemoteAgent {
    /// A client of the agent of DN `dn` at `url` (`http://host:port`) for
    /// the CN whose id is `cn` (unique among the CNs sharing the agent).
    /// Does not wait for the agent; must be called inside a tokio runtime.
    /// Errors: a malformed URL.
    pub fn connect(dn: impl Into<String>, url: &str, cn: u64) -> Result<RemoteAgent, AgentError> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| AgentError::Unavailable(format!("bad agent URL {url:?}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let client = AgentClient::new(endpoint.connect_lazy());
        let mut c = client.clone();
        let session = tokio::spawn(async move {
            loop {
                if let Ok(r) = c.attach(AttachRequest { cn }).await {
                    let mut s = r.into_inner();
                    while let Ok(Some(_)) = s.message().await {}
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Ok(RemoteAgent { dn: dn.into(), cn, client, session })
    }

    fn xid(&self, xid: &str) -> XidRequest {
        XidRequest { xid: xid.to_string(), cn: self.cn }
    }

    async fn admit(&self, first: admit_request::Req) -> Result<(RemoteAdmission, u64), Result<u64, AgentError>> {
        let (tx, rx) = mpsc::channel(2);
        let _ = tx.try_send(AdmitRequest { req: Some(first) });
        let mut client = self.client.clone();
        let mut replies = client.admit(ReceiverStream::new(rx)).await.map_err(|s| Err(unavailable(s)))?.into_inner();
        match replies.message().await {
            Ok(Some(AdmitReply { reply: Some(admit_reply::Reply::Admitted(ts)) })) => {
                Ok((RemoteAdmission { tx, replies, ts }, ts))
            }
            Ok(Some(AdmitReply { reply: Some(admit_reply::Reply::Raise(amx)) })) => Err(Ok(amx)),
            Ok(_) => Err(Err(AgentError::Unavailable("the agent ended the admission".into()))),
            Err(s) => Err(Err(unavailable(s))),
        }
    }
}

/// An admission held on an `Admit` stream; dropping it ends the stream,
/// which releases it at the agent.
struct RemoteAdmission {
    tx: mpsc::Sender<AdmitRequest>,
    replies: Streaming<AdmitReply>,
    ts: u64,
}

#[async_trait]
impl Admission for RemoteAdmission {
    fn ts(&self) -> u64 {
        self.ts
    }

    async fn finish(mut self: Box<Self>, outcome: Outcome) -> Result<(), AgentError> {
        let (outcome, forget) = match outcome {
            Outcome::Released => (FinishOutcome::Released, String::new()),
            Outcome::Applied { forget } => (FinishOutcome::Applied, forget.unwrap_or_default()),
            Outcome::Failed => (FinishOutcome::Failed, String::new()),
        };
        let finish = Finish { outcome: outcome as i32, forget };
        let req = AdmitRequest { req: Some(admit_request::Req::Finish(finish)) };
        if self.tx.send(req).await.is_err() {
            return Err(AgentError::Unavailable("the admission's stream broke".into()));
        }
        match self.replies.message().await {
            Ok(Some(AdmitReply { reply: Some(admit_reply::Reply::Finished(_)) })) => Ok(()),
            Ok(_) => Err(AgentError::Unavailable("the agent ended the admission".into())),
            Err(s) => Err(unavailable(s)),
        }
    }
}

#[async_trait]
impl AgentApi for RemoteAgent {
    fn dn(&self) -> &str {
        &self.dn
    }

    async fn admit_open(&self, s: u64) -> Result<Box<dyn Admission>, AgentError> {
        match self.admit(admit_request::Req::Open(s)).await {
            Ok((a, _)) => Ok(Box::new(a)),
            Err(Ok(amx)) => Err(AgentError::Raise { snapshot: s, amx }),
            Err(Err(e)) => Err(e),
        }
    }

    async fn register_prepare(&self, xid: &str) -> Result<u64, AgentError> {
        let r = self.client.clone().register_prepare(self.xid(xid)).await.map_err(unavailable)?;
        Ok(r.into_inner().ts)
    }

    async fn forget(&self, xid: &str) -> Result<(), AgentError> {
        self.client.clone().forget(self.xid(xid)).await.map_err(unavailable)?;
        Ok(())
    }

    async fn decide(&self, xid: &str, c: u64) -> Result<(), AgentError> {
        match self.client.clone().decide(DecideRequest { xid: xid.to_string(), commit_ts: c }).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::FailedPrecondition => Err(AgentError::NotDecidable { xid: xid.to_string() }),
            Err(s) => Err(unavailable(s)),
        }
    }

    async fn read_ts(&self) -> Result<u64, AgentError> {
        Ok(self.client.clone().read_ts(Empty {}).await.map_err(unavailable)?.into_inner().ts)
    }

    async fn wait_decided(&self) -> Result<(), AgentError> {
        self.client.clone().wait_decided(Empty {}).await.map_err(unavailable)?;
        Ok(())
    }

    async fn admit_commit(&self, kind: CommitKind) -> Result<Box<dyn Admission>, AgentError> {
        let req = match kind {
            CommitKind::Prepared { commit_ts } => admit_request::Req::CommitPrepared(commit_ts),
            CommitKind::OnePhase { lower_bound } => admit_request::Req::CommitOnePhase(lower_bound),
        };
        match self.admit(req).await {
            Ok((a, _)) => Ok(Box::new(a)),
            Err(Ok(_)) => Err(AgentError::Unavailable("a commit admission answered RAISE".into())),
            Err(Err(e)) => Err(e),
        }
    }

    async fn register_in_doubt(&self, xid: &str, min_commit_ts: Option<u64>) -> Result<(), AgentError> {
        let req = InDoubtRequest { xid: xid.to_string(), min_commit_ts };
        self.client.clone().register_in_doubt(req).await.map_err(unavailable)?;
        Ok(())
    }

    async fn is_prepared(&self, xid: &str) -> Result<bool, AgentError> {
        Ok(self.client.clone().is_prepared(self.xid(xid)).await.map_err(unavailable)?.into_inner().value)
    }

    async fn claim(&self, xid: &str) -> Result<bool, AgentError> {
        Ok(self.client.clone().claim(self.xid(xid)).await.map_err(unavailable)?.into_inner().value)
    }

    async fn status(&self) -> Result<AgentStatus, AgentError> {
        let r = self.client.clone().status(Empty {}).await.map_err(unavailable)?.into_inner();
        let entries = |v: Vec<proto::agent::Entry>| v.into_iter().map(|e| (e.xid, e.ts)).collect();
        Ok(AgentStatus {
            mrt: r.mrt,
            amx: r.amx,
            prepared: entries(r.prepared),
            decided: entries(r.decided),
            commits_in_flight: r.commits_in_flight as usize,
            opens_in_flight: r.opens_in_flight as usize,
        })
    }

    async fn set_gating(&self, on: bool) -> Result<(), AgentError> {
        self.client.clone().set_gating(BoolReply { value: on }).await.map_err(unavailable)?;
        Ok(())
    }

    async fn gating(&self) -> Result<bool, AgentError> {
        Ok(self.client.clone().gating(Empty {}).await.map_err(unavailable)?.into_inner().value)
    }
}
