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
    /// A read view not made yet: the first [`ViewConn::query_iter`] makes it.
    deferred: Option<dn_plugin::agent::DeferredOpen>,
    /// The deferred view could not be made: every later query fails.
    unmade: bool,
    /// The read view was ended by its last query ([`ViewConn::ended`]):
    /// every later query fails.
    ended: bool,
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
        ViewConn { conn: Some(conn), on_drop: Some(on_drop), deferred: None, unmade: false, ended: false }
    }

    /// Wraps `conn` for a read view whose admission `open` holds; the view
    /// is made by the first [`ViewConn::query_iter`], in that query's
    /// round trip. `on_drop` as for [`ViewConn::new`].
    pub fn deferred(conn: Conn, open: dn_plugin::agent::DeferredOpen, on_drop: Vec<String>) -> Self {
        ViewConn { conn: Some(conn), on_drop: Some(on_drop), deferred: Some(open), unmade: false, ended: false }
    }

    /// Runs `sql` in the view (making it first when it is deferred).
    /// Errors: the DN's; an I/O error for every query after a deferred
    /// view's first one failed (the view may not exist: a query then could
    /// read outside the snapshot).
    pub async fn query_iter<'a>(
        &'a mut self,
        sql: &'a str,
    ) -> Result<mysql_async::QueryResult<'a, 'static, mysql_async::TextProtocol>, mysql_async::Error> {
        if self.unmade {
            return Err(std::io::Error::other("the statement's read view on this DN could not be made").into());
        }
        if self.ended {
            return Err(std::io::Error::other("the statement's read view on this DN has ended").into());
        }
        let conn = self.conn.as_mut().expect("a ViewConn is used only before it is abandoned");
        match self.deferred.take() {
            None => conn.query_iter(sql).await,
            Some(open) => {
                // Set until the query answered (also when its future is
                // dropped half way): after an error it is unknown whether
                // the view was made, so the connection reads no more.
                self.unmade = true;
                let r = open.query_iter(conn, sql).await;
                self.unmade = r.is_err();
                r
            }
        }
    }

    /// The transaction ended (committed or rolled back): the connection is
    /// clean and goes back to the pool as it is.
    pub fn finished(&mut self) {
        self.on_drop = None;
    }

    /// The read view was ended by the statement that was its last read
    /// (`…; ROLLBACK` in that query's round trip): the connection goes
    /// back to the pool as it is, and a later query here fails rather than
    /// read outside the snapshot.
    pub fn ended(&mut self) {
        self.on_drop = None;
        self.ended = true;
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
        debug_assert!(self.deferred.is_none(), "a deferred read view is queried only through ViewConn::query_iter");
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
