//! [`ViewConn`]: a DN connection that holds an open transaction, an XA
//! branch or a read view, and never goes back to the pool with it.

use mysql_async::prelude::*;
use mysql_async::Conn;

/// A pooled DN connection holding an open transaction. Dropped before it is
/// [`finished`](ViewConn::finished), it runs its clean-up SQL (a rollback)
/// in the background and only then returns to the pool (or is closed when
/// the clean-up fails); [`abandon`](ViewConn::abandon) closes it instead,
/// which a prepared XA branch needs so that recovery can commit it from
/// another connection (MariaDB lets only the preparing connection commit
/// while it lives).
pub struct ViewConn {
    conn: Option<Conn>,
    on_drop: Option<Vec<String>>,
}

/// Runs the clean-up statements one by one (a failing `XA END` must not
/// stop the `XA ROLLBACK` after it); true when the last one succeeded.
async fn clean_up(c: &mut Conn, sql: &[String]) -> bool {
    let mut ok = true;
    for s in sql {
        ok = c.query_drop(s.as_str()).await.is_ok();
    }
    ok
}

impl ViewConn {
    /// Wraps `conn`; `on_drop` are the statements that end its
    /// transaction, run in order with errors ignored.
    pub fn new(conn: Conn, on_drop: Vec<String>) -> Self {
        ViewConn { conn: Some(conn), on_drop: Some(on_drop) }
    }

    /// The transaction ended (committed or rolled back): the connection is
    /// clean and goes back to the pool as it is.
    pub fn finished(&mut self) {
        self.on_drop = None;
    }

    /// Closes the connection without ending its transaction.
    pub fn abandon(&mut self) {
        self.on_drop = None;
        if let Some(c) = self.conn.take() {
            spawn(async move {
                let _ = c.disconnect().await;
            });
        }
    }

    /// Whether [`ViewConn::abandon`] closed the connection (a branch that
    /// failed to start): it must not be used.
    pub fn is_abandoned(&self) -> bool {
        self.conn.is_none()
    }

    /// Ends the transaction now with the clean-up SQL (errors ignored: a
    /// connection whose clean-up fails is closed).
    pub async fn end(&mut self) {
        if let (Some(sql), Some(c)) = (self.on_drop.take(), self.conn.as_mut()) {
            if !clean_up(c, &sql).await {
                self.abandon();
            }
        }
    }
}

fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        h.spawn(f);
    }
}

impl std::ops::Deref for ViewConn {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("a ViewConn is used only before it is abandoned")
    }
}

impl std::ops::DerefMut for ViewConn {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("a ViewConn is used only before it is abandoned")
    }
}

impl Drop for ViewConn {
    fn drop(&mut self) {
        let (Some(mut c), Some(sql)) = (self.conn.take(), self.on_drop.take()) else { return };
        spawn(async move {
            if !clean_up(&mut c, &sql).await {
                let _ = c.disconnect().await;
            }
        });
    }
}
