//! The gRPC service (`proto/tso.proto`) and the process around it: the
//! oracle, the bound maintenance ticker, and in HA mode the lease loop.

use crate::clock::Clock;
use crate::election::{Election, MetadbStore};
use crate::error::{Result, TsoError};
use crate::oracle::Oracle;
use crate::store::{BoundStore, FileStore};
use proto::tso::tso_server::{Tso, TsoServer};
use proto::tso::{GetLeaderRequest, GetLeaderResponse, TimestampRequest, TimestampResponse};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// How a `tso serve` process runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Data directory holding the persisted bound.
    pub data_dir: PathBuf,
    /// HA: the metadb holding the lease row (`mysql://root@127.0.0.1:4000`).
    /// Without it the process leads alone.
    pub metadb: Option<String>,
    /// HA: the address clients reach this process at (defaults to the
    /// listening address).
    pub advertise: Option<String>,
    /// HA: the TSO group's name in the lease table.
    pub group: String,
    /// HA: lease length (default 3 s).
    pub lease: Duration,
    /// How far ahead of use the bound is persisted (default 3000 ms).
    pub window_ms: u64,
}

impl ServeOptions {
    /// Defaults for a process listening on `listen` with data in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> ServeOptions {
        ServeOptions {
            listen,
            data_dir: data_dir.into(),
            metadb: None,
            advertise: None,
            group: "tso".into(),
            lease: Duration::from_secs(3),
            window_ms: 3000,
        }
    }
}

struct Service {
    oracle: Arc<Oracle>,
    advertise: String,
    /// Flips to true on shutdown: open streams end, so the graceful
    /// shutdown of the listener does not wait for clients to hang up.
    stopping: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl Tso for Service {
    type TimestampsStream = ReceiverStream<Result<TimestampResponse, Status>>;

    async fn timestamps(
        &self,
        request: Request<Streaming<TimestampRequest>>,
    ) -> Result<Response<Self::TimestampsStream>, Status> {
        if !self.oracle.is_serving() {
            return Err(self.oracle.not_leader().into());
        }
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let oracle = self.oracle.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            loop {
                let req = tokio::select! {
                    m = inbound.message() => match m {
                        Ok(Some(req)) => req,
                        _ => break,
                    },
                    _ = stopping.wait_for(|s| *s) => break,
                };
                let answer = oracle
                    .allocate(req.count)
                    .await
                    .map(|first| TimestampResponse { first, count: req.count })
                    .map_err(Status::from);
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_timestamps(&self, request: Request<TimestampRequest>) -> Result<Response<TimestampResponse>, Status> {
        let count = request.into_inner().count;
        let first = self.oracle.allocate(count).await?;
        Ok(Response::new(TimestampResponse { first, count }))
    }

    async fn get_leader(&self, _: Request<GetLeaderRequest>) -> Result<Response<GetLeaderResponse>, Status> {
        let is_leader = self.oracle.is_serving();
        let leader = if is_leader {
            self.advertise.clone()
        } else {
            match self.oracle.not_leader() {
                TsoError::NotLeader { leader } => leader.unwrap_or_default(),
                _ => String::new(),
            }
        };
        Ok(Response::new(GetLeaderResponse { leader, is_leader }))
    }
}

/// A running TSO process (or an in-process one in tests and the
/// playground). Dropping it does not stop it; call [`RunningTso::shutdown`].
pub struct RunningTso {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The allocator.
    pub oracle: Arc<Oracle>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningTso {
    /// Stops serving, gives up the lease (HA) and closes the listener.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for mut t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), &mut t).await.is_err() {
                t.abort();
            }
        }
    }
}

/// Opens the data directory (refusing a corrupt or lost one), binds the
/// listener and starts serving: at once without a metadb, or once this
/// process wins the lease with one.
pub async fn start(opts: ServeOptions, clock: Arc<dyn Clock>) -> Result<RunningTso> {
    let file = FileStore::open(&opts.data_dir)?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| TsoError::Unavailable(format!("cannot listen on {}: {e}", opts.listen)))?;
    let addr = listener.local_addr().map_err(|e| TsoError::Unavailable(e.to_string()))?;
    let advertise = opts.advertise.clone().unwrap_or_else(|| addr.to_string());
    let election = match &opts.metadb {
        Some(url) => Some(Arc::new(Election::connect(url, &opts.group, &advertise, opts.lease).await?)),
        None => None,
    };
    let store: Arc<dyn BoundStore> = match &election {
        Some(e) => Arc::new(MetadbStore { election: e.clone(), file }),
        None => Arc::new(file),
    };
    let oracle = Arc::new(Oracle::new(clock, store, opts.window_ms));
    if election.is_none() {
        oracle.start_serving(None).await?;
    }
    let (stop, mut stopped) = watch::channel(false);
    let service = Service { oracle: oracle.clone(), advertise, stopping: stopped.clone() };
    let mut stop_rx = stopped.clone();
    let grpc = tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let result = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(TsoServer::new(service))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!("TSO gRPC server: {e}");
        }
    });
    let o = oracle.clone();
    let keeper = tokio::spawn(async move {
        let mut leading_since: Option<Instant> = None;
        let mut last_renew = Instant::now();
        loop {
            if let Some(e) = &election {
                lease_step(e, &o, &mut leading_since, &mut last_renew).await;
            }
            if let Err(e) = o.maintain().await {
                tracing::warn!("persisting the TSO bound: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
        }
        o.stop_serving(None);
        if let Some(e) = &election {
            e.resign().await;
        }
    });
    Ok(RunningTso { addr, oracle, stop, tasks: vec![grpc, keeper] })
}

/// One turn of the lease loop: acquire when standing by, renew when leading.
async fn lease_step(e: &Election, oracle: &Oracle, leading_since: &mut Option<Instant>, last_renew: &mut Instant) {
    if leading_since.is_some() && !oracle.is_serving() {
        // The local deadline passed (renewals failed): stand down.
        *leading_since = None;
    }
    if leading_since.is_none() {
        let sent = Instant::now();
        match e.try_acquire().await {
            Ok(true) => match oracle.start_serving(Some(e.deadline(sent))).await {
                Ok(()) => {
                    *leading_since = Some(sent);
                    *last_renew = sent;
                }
                Err(err) => {
                    tracing::error!("cannot serve after winning the lease: {err}");
                    oracle.stop_serving(None);
                    e.resign().await;
                }
            },
            Ok(false) => oracle.set_leader_hint(e.leader().await.ok().flatten()),
            Err(err) => tracing::warn!("TSO lease: {err}"),
        }
        return;
    }
    if last_renew.elapsed() < e.lease() / 3 {
        return;
    }
    let sent = Instant::now();
    match e.renew().await {
        Ok(true) => {
            oracle.extend_lease(e.deadline(sent));
            *last_renew = sent;
        }
        Ok(false) => {
            tracing::warn!("lost the TSO lease");
            oracle.stop_serving(e.leader().await.ok().flatten());
            *leading_since = None;
        }
        Err(err) => tracing::warn!("renewing the TSO lease: {err}"),
    }
}
