//! Packet framing: a 3-byte little-endian payload length, a 1-byte sequence
//! id, then the payload; payloads of 16 MiB - 1 or more are split, and a split
//! ending on a full chunk is followed by an empty packet.

use crate::error::{code, CnError, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

/// Largest payload of one physical packet.
pub const MAX_CHUNK: usize = 0xff_ffff;

/// A framed MySQL connection. Writes are buffered until [`PacketIo::flush`].
pub struct PacketIo<R, W> {
    reader: BufReader<R>,
    writer: BufWriter<W>,
    /// Sequence id of the next packet to write.
    pub seq: u8,
    /// Largest logical packet accepted from the client (`max_allowed_packet`).
    pub max_packet: usize,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> PacketIo<R, W> {
    pub fn new(r: R, w: W) -> Self {
        PacketIo {
            reader: BufReader::with_capacity(16 * 1024, r),
            writer: BufWriter::with_capacity(64 * 1024, w),
            seq: 0,
            max_packet: 64 << 20,
        }
    }

    /// Reads one logical packet. `Ok(None)` on a clean EOF before a header.
    pub async fn read_packet(&mut self) -> Result<Option<Vec<u8>>> {
        let mut payload = Vec::new();
        loop {
            let mut hdr = [0u8; 4];
            match self.reader.read_exact(&mut hdr).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && payload.is_empty() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            let len = hdr[0] as usize | (hdr[1] as usize) << 8 | (hdr[2] as usize) << 16;
            self.seq = hdr[3].wrapping_add(1);
            if payload.len() + len > self.max_packet {
                return Err(CnError::mysql(
                    code::ER_NET_PACKET_TOO_LARGE,
                    "Got a packet bigger than 'max_allowed_packet' bytes",
                ));
            }
            let start = payload.len();
            payload.resize(start + len, 0);
            self.reader.read_exact(&mut payload[start..]).await?;
            if len < MAX_CHUNK {
                return Ok(Some(payload));
            }
        }
    }

    /// Queues one logical packet, splitting it as needed.
    pub async fn write_packet(&mut self, payload: &[u8]) -> Result<()> {
        let mut rest = payload;
        loop {
            let n = rest.len().min(MAX_CHUNK);
            let hdr = [n as u8, (n >> 8) as u8, (n >> 16) as u8, self.seq];
            self.seq = self.seq.wrapping_add(1);
            self.writer.write_all(&hdr).await?;
            self.writer.write_all(&rest[..n]).await?;
            rest = &rest[n..];
            if n < MAX_CHUNK {
                return Ok(());
            }
        }
    }

    pub async fn flush(&mut self) -> Result<()> {
        self.writer.flush().await?;
        Ok(())
    }

    /// Bytes queued but not yet flushed.
    pub fn buffered(&self) -> usize {
        self.writer.buffer().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn split_and_reassemble_large_packet() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let mut w = PacketIo::new(ar, aw);
        let mut r = PacketIo::new(br, bw);
        let big = vec![7u8; MAX_CHUNK + 10];
        let exact = vec![9u8; MAX_CHUNK];
        let writer = tokio::spawn(async move {
            w.write_packet(&big).await.unwrap();
            w.write_packet(&exact).await.unwrap();
            w.flush().await.unwrap();
            w
        });
        let p = r.read_packet().await.unwrap().unwrap();
        assert_eq!(p.len(), MAX_CHUNK + 10);
        let p = r.read_packet().await.unwrap().unwrap();
        assert_eq!(p.len(), MAX_CHUNK);
        let w = writer.await.unwrap();
        assert_eq!(w.seq, 4);
    }

    #[tokio::test]
    async fn oversized_packet_is_rejected() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let mut w = PacketIo::new(ar, aw);
        let mut r = PacketIo::new(br, bw);
        r.max_packet = 100;
        tokio::spawn(async move {
            w.write_packet(&[0u8; 200]).await.unwrap();
            w.flush().await.unwrap();
            w
        });
        let e = r.read_packet().await.unwrap_err();
        assert_eq!(e.to_mysql().code, code::ER_NET_PACKET_TOO_LARGE);
    }
}
