//! The agent as a sidecar: the gRPC service of `proto/agent.proto` around
//! an in-process [`Agent`], shared by every CN of the cluster, and the
//! start-up that `dn-plugin serve` (and the multi-CN playground) runs.
//!
//! Admissions are held on streams: the service keeps the admission it
//! granted for as long as the stream of the `Admit` call lives, and drops it
//! when the stream ends, so a CN that dies while holding the gate (or
//! waiting for it) never keeps it closed. HTTP/2 keepalive (every
//! [`KEEPALIVE`], dead after [`KEEPALIVE_TIMEOUT`]) ends the streams of a CN
//! that vanished without closing its connection.

use crate::agent::{self, Admission, Agent, AgentApi, AgentError, CommitKind, Outcome};
use proto::agent::agent_server::{Agent as AgentRpc, AgentServer};
use proto::agent::{
    admit_reply, admit_request, AdmitReply, AdmitRequest, AttachReply, AttachRequest, BoolReply, DecideRequest, Empty,
    Entry, FinishOutcome, InDoubtRequest, StatusReply, TsReply, XidRequest,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// HTTP/2 keepalive ping interval of the service (and of the client).
pub const KEEPALIVE: Duration = Duration::from_secs(1);
/// A peer that does not answer a keepalive ping within this is dead: its
/// streams end and its admissions are released.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Errors starting a sidecar.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The DN could not be reached, or bootstrapping or rebuilding failed.
    #[error("DN {dn}: {source}")]
    Dn {
        dn: String,
        #[source]
        source: AgentError,
    },
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

fn status(e: AgentError) -> Status {
    match e {
        AgentError::NotDecidable { .. } => Status::failed_precondition(e.to_string()),
        AgentError::Unavailable(m) => Status::unavailable(m),
        other => Status::internal(other.to_string()),
    }
}

struct Service {
    agent: Agent,
    /// Flips to true on shutdown: open streams end, so the graceful
    /// shutdown of the listener does not wait for clients to hang up.
    stopping: watch::Receiver<bool>,
}

type ReplyStream<T> = ReceiverStream<Result<T, Status>>;

/// Holds one admission for the life of its stream (see the module doc).
async fn run_admission(
    agent: Agent,
    mut inbound: Streaming<AdmitRequest>,
    tx: mpsc::Sender<Result<AdmitReply, Status>>,
    mut stopping: watch::Receiver<bool>,
) {
    let reply = |r| Ok(AdmitReply { reply: Some(r) });
    let first = tokio::select! {
        m = inbound.message() => m,
        _ = stopping.wait_for(|s| *s) => return,
    };
    let Ok(Some(AdmitRequest { req: Some(first) })) = first else { return };
    let admitting = async {
        match first {
            admit_request::Req::Open(s) => agent.admit_open(s).await,
            admit_request::Req::CommitPrepared(c) => agent.admit_commit(CommitKind::Prepared { commit_ts: c }).await,
            admit_request::Req::CommitOnePhase(l) => agent.admit_commit(CommitKind::OnePhase { lower_bound: l }).await,
            admit_request::Req::Finish(_) => Err(AgentError::Unavailable("finish before admission".into())),
        }
    };
    // The client may go away while it waits: the wait is then abandoned
    // (the agent's waits are cancel-safe).
    let admitted = tokio::select! {
        r = admitting => r,
        _ = inbound.message() => return,
        _ = stopping.wait_for(|s| *s) => return,
    };
    let admission: Box<dyn Admission> = match admitted {
        Ok(a) => a,
        Err(AgentError::Raise { amx, .. }) => {
            let _ = tx.send(reply(admit_reply::Reply::Raise(amx))).await;
            return;
        }
        Err(e) => {
            let _ = tx.send(Err(status(e))).await;
            return;
        }
    };
    if tx.send(reply(admit_reply::Reply::Admitted(admission.ts()))).await.is_err() {
        return; // dropped: released
    }
    let next = tokio::select! {
        m = inbound.message() => m,
        _ = stopping.wait_for(|s| *s) => return,
    };
    if let Ok(Some(AdmitRequest { req: Some(admit_request::Req::Finish(f)) })) = next {
        let outcome = match f.outcome() {
            FinishOutcome::Released => Outcome::Released,
            FinishOutcome::Applied => Outcome::Applied { forget: (!f.forget.is_empty()).then_some(f.forget) },
            FinishOutcome::Failed => Outcome::Failed,
        };
        let r =
            admission.finish(outcome).await.map(|()| AdmitReply { reply: Some(admit_reply::Reply::Finished(true)) });
        let _ = tx.send(r.map_err(status)).await;
    }
    // Anything else (the stream ended or broke): the admission drops here.
}

#[tonic::async_trait]
impl AgentRpc for Service {
    type AdmitStream = ReplyStream<AdmitReply>;
    type AttachStream = ReplyStream<AttachReply>;

    async fn admit(&self, request: Request<Streaming<AdmitRequest>>) -> Result<Response<Self::AdmitStream>, Status> {
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(run_admission(self.agent.clone(), request.into_inner(), tx, self.stopping.clone()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn attach(&self, request: Request<AttachRequest>) -> Result<Response<Self::AttachStream>, Status> {
        let cn = request.into_inner().cn;
        let (tx, rx) = mpsc::channel::<Result<AttachReply, Status>>(1);
        let session = self.agent.attach(cn);
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let _session = session;
            tokio::select! {
                _ = tx.closed() => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn register_prepare(&self, request: Request<XidRequest>) -> Result<Response<TsReply>, Status> {
        let r = request.into_inner();
        Ok(Response::new(TsReply { ts: self.agent.register_prepare_for(&r.xid, Some(r.cn)) }))
    }

    async fn forget(&self, request: Request<XidRequest>) -> Result<Response<Empty>, Status> {
        self.agent.forget(&request.into_inner().xid).await.map_err(status)?;
        Ok(Response::new(Empty {}))
    }

    async fn decide(&self, request: Request<DecideRequest>) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        self.agent.decide(&r.xid, r.commit_ts).await.map_err(status)?;
        Ok(Response::new(Empty {}))
    }

    async fn read_ts(&self, _: Request<Empty>) -> Result<Response<TsReply>, Status> {
        Ok(Response::new(TsReply { ts: self.agent.read_ts().await.map_err(status)? }))
    }

    async fn wait_decided(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.agent.wait_decided().await.map_err(status)?;
        Ok(Response::new(Empty {}))
    }

    async fn register_in_doubt(&self, request: Request<InDoubtRequest>) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        self.agent.register_in_doubt(&r.xid, r.min_commit_ts).await.map_err(status)?;
        Ok(Response::new(Empty {}))
    }

    async fn is_prepared(&self, request: Request<XidRequest>) -> Result<Response<BoolReply>, Status> {
        let value = self.agent.is_prepared(&request.into_inner().xid).await.map_err(status)?;
        Ok(Response::new(BoolReply { value }))
    }

    async fn claim(&self, request: Request<XidRequest>) -> Result<Response<BoolReply>, Status> {
        let r = request.into_inner();
        Ok(Response::new(BoolReply { value: self.agent.claim_for(&r.xid, Some(r.cn)) }))
    }

    async fn status(&self, _: Request<Empty>) -> Result<Response<StatusReply>, Status> {
        let st = self.agent.status().await.map_err(status)?;
        let entries = |v: Vec<(String, u64)>| v.into_iter().map(|(xid, ts)| Entry { xid, ts }).collect();
        Ok(Response::new(StatusReply {
            mrt: st.mrt,
            amx: st.amx,
            prepared: entries(st.prepared),
            decided: entries(st.decided),
            commits_in_flight: st.commits_in_flight as u64,
            opens_in_flight: st.opens_in_flight as u64,
        }))
    }

    async fn set_gating(&self, request: Request<BoolReply>) -> Result<Response<Empty>, Status> {
        self.agent.set_gating(request.into_inner().value).await.map_err(status)?;
        Ok(Response::new(Empty {}))
    }

    async fn gating(&self, _: Request<Empty>) -> Result<Response<BoolReply>, Status> {
        Ok(Response::new(BoolReply { value: self.agent.gating().await.map_err(status)? }))
    }
}

/// A running agent service. Dropping it does not stop it; call
/// [`RunningAgent::shutdown`].
pub struct RunningAgent {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The agent it serves (shared with the service).
    pub agent: Agent,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningAgent {
    /// The URL clients connect to (`http://addr`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Ends every open stream (releasing its admission) and closes the
    /// listener.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let mut t = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut t).await.is_err() {
            t.abort();
        }
    }
}

/// Serves `agent` on `listen` (`127.0.0.1:0` picks a free port). Errors:
/// the address cannot be bound.
pub async fn serve(agent: Agent, listen: SocketAddr) -> Result<RunningAgent, ServeError> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| ServeError::Listen { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: listen, source })?;
    let (stop, stopped) = watch::channel(false);
    let service = Service { agent: agent.clone(), stopping: stopped.clone() };
    let mut stop_rx = stopped;
    let task = tokio::spawn(async move {
        // TCP_NODELAY on every accepted connection (the builder's setting
        // does not reach a listener passed in): an admission's reply
        // follows its stream's headers in a second small write, which
        // Nagle would hold until the client's delayed ACK (~15 ms).
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let result = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .add_service(AgentServer::new(service))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!("agent gRPC server: {e}");
        }
    });
    Ok(RunningAgent { addr, agent, stop, task })
}

/// What `dn-plugin serve` does before serving: connects to the DN at
/// `dn_url` (`mysql://…`, a `socket=` parameter for a Unix socket), creates
/// the agent's tables ([`agent::bootstrap`]) and makes an agent named
/// `dn` whose `mrt`/`amx` start at `start_ts` (a fresh TSO value) with `P`
/// rebuilt from `XA RECOVER` and the agent's log: every branch with a CN XA
/// id ([`agent::is_cn_xid`]) is registered in doubt, so snapshots wait for
/// it until a CN's recovery settles it and forgets it. Errors: the DN.
pub async fn start_agent(dn: &str, dn_url: &str, start_ts: u64) -> Result<Agent, ServeError> {
    let err = |e: AgentError| ServeError::Dn { dn: dn.to_string(), source: e };
    let opts = mysql_async::Opts::from_url(dn_url)
        .map_err(|e| err(AgentError::Unavailable(format!("bad DN URL {dn_url:?}: {e}"))))?;
    let mut conn = mysql_async::Conn::new(opts).await.map_err(|e| err(e.into()))?;
    agent::bootstrap(&mut conn).await.map_err(|e| err(e.into()))?;
    let a = Agent::new(dn, start_ts);
    let xids = agent::rebuild(&a, &mut conn, agent::is_cn_xid).await.map_err(err)?;
    if !xids.is_empty() {
        tracing::info!(dn, in_doubt = xids.len(), "registered the branches left prepared");
    }
    let _ = conn.disconnect().await;
    Ok(a)
}
