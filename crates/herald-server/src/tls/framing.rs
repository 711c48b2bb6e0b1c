//! Where the TLS records a client sent begin and end, as rustls reads them.
//!
//! rustls keeps an incomplete record in its own buffer and offers no way to ask whether it holds
//! one. Before a connection's keys are taken out of rustls (`lean.rs`), that must be known: a
//! partial record would be lost with the rustls connection. [`FramedTcp`] sits under rustls and
//! follows the record framing of every byte rustls reads; at a record boundary rustls holds no
//! partial record, since it processes every complete record as soon as it is read.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Length of a TLS record header: content type, legacy version, length.
const HEADER_LEN: u8 = 5;

/// Follows TLS record framing over a byte stream (sans-IO).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Framing {
    /// Header bytes of the next record seen so far (0 to 4).
    header_seen: u8,
    /// The length field of the header being read.
    length: u16,
    /// Body bytes of the current record still to come.
    body_left: u16,
}

impl Framing {
    /// Accounts for `data`, the next bytes of the stream.
    pub(crate) fn advance(&mut self, mut data: &[u8]) {
        while let Some((&first, rest)) = data.split_first() {
            if self.body_left > 0 {
                let n = data.len().min(usize::from(self.body_left));
                // `n` is at most `body_left`, a u16.
                self.body_left -= u16::try_from(n).unwrap_or(self.body_left);
                data = &data[n..];
                continue;
            }
            match self.header_seen {
                3 => self.length = u16::from(first) << 8,
                4 => self.length |= u16::from(first),
                _ => {}
            }
            self.header_seen += 1;
            if self.header_seen == HEADER_LEN {
                self.header_seen = 0;
                self.body_left = self.length;
            }
            data = rest;
        }
    }

    /// Whether the bytes so far end exactly where a record ends.
    pub(crate) fn at_boundary(&self) -> bool {
        self.header_seen == 0 && self.body_left == 0
    }
}

/// A TCP stream that follows the TLS framing of what is read from it.
#[derive(Debug)]
pub(crate) struct FramedTcp {
    io: TcpStream,
    framing: Framing,
}

impl FramedTcp {
    /// Wraps a freshly accepted connection (nothing read from it yet).
    pub(crate) fn new(io: TcpStream) -> Self {
        Self { io, framing: Framing::default() }
    }

    /// Whether everything read so far ends on a record boundary.
    pub(crate) fn at_record_boundary(&self) -> bool {
        self.framing.at_boundary()
    }

    /// The TCP stream.
    pub(crate) fn into_inner(self) -> TcpStream {
        self.io
    }
}

impl AsyncRead for FramedTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.framing.advance(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for FramedTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::Framing;

    fn record(len: u16) -> Vec<u8> {
        let mut r = vec![0x17, 3, 3];
        r.extend_from_slice(&len.to_be_bytes());
        r.resize(5 + usize::from(len), 0xAB);
        r
    }

    #[test]
    fn boundaries_are_found_whatever_the_split() {
        let mut stream = record(300);
        stream.extend(record(0));
        stream.extend(record(16_401));
        let ends = [305, 310, stream.len()];
        for chunk in [1, 2, 3, 5, 7, 64, 4096, stream.len()] {
            let mut f = Framing::default();
            let mut pos = 0;
            for piece in stream.chunks(chunk) {
                f.advance(piece);
                pos += piece.len();
                assert_eq!(f.at_boundary(), ends.contains(&pos), "chunk {chunk} at {pos}");
            }
        }
    }

    #[test]
    fn a_header_alone_is_not_a_boundary() {
        let mut f = Framing::default();
        assert!(f.at_boundary());
        f.advance(&record(10)[..5]);
        assert!(!f.at_boundary());
        f.advance(&[0; 9]);
        assert!(!f.at_boundary());
        f.advance(&[0]);
        assert!(f.at_boundary());
    }
}
