//! The client library the CN uses.
//!
//! Callers on any task ask for timestamps; one dispatcher task per client
//! owns one bidirectional stream to the leader and keeps exactly one request
//! in flight on it. Every caller that arrives while a request is in flight
//! joins the next one, so N concurrent callers cost one round trip, not N
//! (PD's client batching). On a broken stream the dispatcher reconnects with
//! exponential backoff, trying the endpoints in turn and following a
//! standby's hint to the leader; each caller gives up after its timeout.

use crate::error::{Result, TsoError};
use crate::MAX_COUNT;
use proto::tso::tso_client::TsoClient as GrpcClient;
use proto::tso::{TimestampRequest, TimestampResponse};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// Tuning of a [`TsoClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long one call waits for its timestamp (default 3 s).
    pub timeout: Duration,
    /// How long connecting to one endpoint may take (default 1 s).
    pub connect_timeout: Duration,
    /// The first wait after a failure; it doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest wait between attempts (default 1 s).
    pub max_backoff: Duration,
    /// Streams (HTTP/2 connections) to the leader, each with its own
    /// dispatcher and one request in flight; callers are spread over them
    /// round robin. More than one pipelines batches for many concurrent
    /// callers (default 1).
    pub streams: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
            streams: 1,
        }
    }
}

struct Waiter {
    count: u32,
    /// When the caller gives up. The dispatcher enforces it, so a call sets
    /// no timer of its own (a timer per call costs more than the rest of
    /// the call under load).
    deadline: Instant,
    reply: oneshot::Sender<Result<u64>>,
}

/// A handle to the TSO; cheap to clone, all clones share one stream.
#[derive(Clone)]
pub struct TsoClient {
    dispatchers: std::sync::Arc<[mpsc::UnboundedSender<Waiter>]>,
    next: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    timeout: Duration,
}

impl TsoClient {
    /// A client of the TSO group at `endpoints` (`host:port`, any member;
    /// the leader is found by itself). Connects lazily, on the first call.
    /// Must be called inside a tokio runtime.
    pub fn new(endpoints: Vec<String>, options: ClientOptions) -> TsoClient {
        let timeout = options.timeout;
        let dispatchers: Vec<_> = (0..options.streams.max(1))
            .map(|i| {
                let (tx, rx) = mpsc::unbounded_channel();
                let d = Dispatcher {
                    endpoints: endpoints.clone(),
                    next: i,
                    hint: None,
                    conn: None,
                    last: 0,
                    options: options.clone(),
                    rx,
                    carry: None,
                };
                tokio::spawn(d.run());
                tx
            })
            .collect();
        TsoClient { dispatchers: dispatchers.into(), next: Default::default(), timeout }
    }

    /// One timestamp, greater than every one this client returned before.
    pub async fn get_ts(&self) -> Result<u64> {
        self.get_range(1).await
    }

    /// The first of `count` consecutive timestamps (1 to [`MAX_COUNT`]).
    /// Errors: [`TsoError::InvalidCount`], [`TsoError::Timeout`] when no
    /// leader answered in time (the last failure is logged),
    /// [`TsoError::Regression`] if a server ever answered below an earlier
    /// answer.
    pub async fn get_range(&self, count: u32) -> Result<u64> {
        if count == 0 || count > MAX_COUNT {
            return Err(TsoError::InvalidCount(count as u64));
        }
        let (reply, rx) = oneshot::channel();
        let i = if self.dispatchers.len() == 1 {
            0
        } else {
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.dispatchers.len()
        };
        let deadline = Instant::now() + self.timeout;
        self.dispatchers[i].send(Waiter { count, deadline, reply }).map_err(|_| TsoError::Closed)?;
        rx.await.unwrap_or(Err(TsoError::Closed))
    }
}

struct Conn {
    requests: mpsc::Sender<TimestampRequest>,
    responses: Streaming<TimestampResponse>,
    endpoint: String,
}

struct Dispatcher {
    endpoints: Vec<String>,
    next: usize,
    hint: Option<String>,
    conn: Option<Conn>,
    /// The highest timestamp handed to a caller.
    last: u64,
    options: ClientOptions,
    rx: mpsc::UnboundedReceiver<Waiter>,
    /// A waiter received that did not fit in the previous batch.
    carry: Option<Waiter>,
}

impl Dispatcher {
    async fn run(mut self) {
        loop {
            let first = match self.carry.take() {
                Some(w) => w,
                None => match self.rx.recv().await {
                    Some(w) => w,
                    None => return,
                },
            };
            let mut total = first.count;
            let mut batch = vec![first];
            while let Ok(w) = self.rx.try_recv() {
                if total + w.count > MAX_COUNT {
                    self.carry = Some(w);
                    break;
                }
                total += w.count;
                batch.push(w);
            }
            self.serve(batch).await;
        }
    }

    async fn serve(&mut self, mut batch: Vec<Waiter>) {
        let mut backoff = self.options.min_backoff;
        let mut followed_hint = false;
        loop {
            let now = Instant::now();
            let (expired, live): (Vec<Waiter>, Vec<Waiter>) = batch.into_iter().partition(|w| w.deadline <= now);
            for w in expired {
                let _ = w.reply.send(Err(TsoError::Timeout(self.options.timeout)));
            }
            batch = live.into_iter().filter(|w| !w.reply.is_closed()).collect();
            let Some(earliest) = batch.iter().map(|w| w.deadline).min() else {
                return;
            };
            let total: u32 = batch.iter().map(|w| w.count).sum();
            let attempt = tokio::time::timeout(earliest - now, self.request(total)).await;
            let answer =
                attempt.unwrap_or_else(|_| Err(TsoError::Unavailable("no answer before a caller's deadline".into())));
            match answer {
                Ok(first) if first <= self.last => {
                    let e = TsoError::Regression { got: first, last: self.last };
                    tracing::error!("{e}");
                    self.conn = None;
                    for w in batch {
                        let _ = w.reply.send(Err(e.clone()));
                    }
                    return;
                }
                Ok(first) => {
                    let mut ts = first;
                    for w in batch {
                        let _ = w.reply.send(Ok(ts));
                        ts += w.count as u64;
                    }
                    self.last = ts - 1;
                    return;
                }
                Err(e) => {
                    let from = self.conn.take().map(|c| c.endpoint);
                    tracing::debug!(?from, "TSO request failed: {e}");
                    if let TsoError::NotLeader { leader: Some(l) } = &e {
                        // Follow a standby's hint at once, but only once per
                        // batch: stale hints pointing at each other back off.
                        if from.as_deref() != Some(l) && !followed_hint {
                            followed_hint = true;
                            self.hint = Some(l.clone());
                            continue;
                        }
                        self.hint = Some(l.clone());
                    }
                    let wake = (Instant::now() + backoff).min(batch.iter().map(|w| w.deadline).min().unwrap_or(now));
                    tokio::time::sleep_until(wake.into()).await;
                    backoff = (backoff * 2).min(self.options.max_backoff);
                }
            }
        }
    }

    async fn request(&mut self, count: u32) -> Result<u64> {
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        conn.requests
            .send(TimestampRequest { count })
            .await
            .map_err(|_| TsoError::Unavailable(format!("stream to {} closed", conn.endpoint)))?;
        match tokio::time::timeout(self.options.timeout, conn.responses.message()).await {
            Err(_) => {
                Err(TsoError::Unavailable(format!("{} did not answer in {:?}", conn.endpoint, self.options.timeout)))
            }
            Ok(Err(status)) => Err(status.into()),
            Ok(Ok(None)) => Err(TsoError::Unavailable(format!("{} ended the stream", conn.endpoint))),
            Ok(Ok(Some(r))) if r.count != count => {
                Err(TsoError::Unavailable(format!("{} answered {} timestamps for {count}", conn.endpoint, r.count)))
            }
            Ok(Ok(Some(r))) => Ok(r.first),
        }
    }

    async fn connect(&mut self) -> Result<Conn> {
        let endpoint = match self.hint.take() {
            Some(h) => h,
            None => {
                if self.endpoints.is_empty() {
                    return Err(TsoError::Unavailable("no TSO endpoints configured".into()));
                }
                let e = self.endpoints[self.next % self.endpoints.len()].clone();
                self.next += 1;
                e
            }
        };
        let unavailable = |e: &dyn std::fmt::Display| TsoError::Unavailable(format!("{endpoint}: {e}"));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
            .map_err(|e| unavailable(&e))?
            .connect_timeout(self.options.connect_timeout)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| unavailable(&e))?;
        let (requests, rx) = mpsc::channel(4);
        let mut client = GrpcClient::new(channel);
        let opened = tokio::time::timeout(self.options.connect_timeout, client.timestamps(ReceiverStream::new(rx)))
            .await
            .map_err(|_| unavailable(&"opening the stream timed out"))?;
        let responses = opened?.into_inner();
        Ok(Conn { requests, responses, endpoint })
    }
}
