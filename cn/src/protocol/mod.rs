//! The MySQL client/server protocol, server side.
//!
//! Reference: MySQL's "Client/Server Protocol" pages
//! (<https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html>) and
//! MariaDB's protocol documentation. Layers:
//! - [`packet`]: framing (3-byte length, sequence id, 16 MiB splitting);
//! - [`codec`]: length-encoded integers and strings;
//! - [`handshake`]: Handshake v10, HandshakeResponse41, `mysql_native_password`;
//! - [`resultset`]: column definitions, text and binary rows, OK/ERR/EOF.

pub mod codec;
pub mod constants;
pub mod handshake;
pub mod packet;
pub mod resultset;
