//! A WebSocket's TLS 1.3 connection after the upgrade, without rustls' buffers.
//!
//! A rustls connection keeps a 4 KB read buffer, its handshake deframer and its state for as
//! long as it lives, idle or not. Once the upgrade is done nothing but application data and
//! close_notify is expected, so [`take_over`] takes the traffic keys out of rustls and
//! [`LeanTls`] protects records itself (`record.rs`): ciphertext is read into a per-thread
//! scratch buffer, and a connection owns a buffer only while it holds a partial record,
//! unread plaintext or sealed bytes the kernel has not taken.
//!
//! The switch is made only when nothing can be lost: TLS 1.3 with a cipher `record.rs`
//! implements, no record half-read inside rustls, nothing left for rustls to send. Otherwise the
//! connection stays on rustls. Plaintext rustls already decrypted is handed on either way.

use std::cell::RefCell;
use std::io::{self, IoSlice, Read};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use rustls::{CipherSuite, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::TlsStream;
use super::record::{self, Opened, Protection, RecordError};

/// Size of the per-thread buffers ciphertext is read into and sealed in.
const SCRATCH: usize = 64 * 1024;
/// Most plaintext sealed by one write: four full records, one system call.
const WRITE_BUDGET: usize = 4 * record::MAX_PLAINTEXT;

thread_local! {
    /// Ciphertext just read. Not the WebSocket's own scratch buffer: that one is borrowed while
    /// the socket reads from this stream.
    static READ_SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
    /// Records being sealed.
    static WRITE_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A TLS 1.3 connection whose records this process protects itself.
#[derive(Debug)]
pub(crate) struct LeanTls {
    io: TcpStream,
    rx: Protection,
    tx: Protection,
    /// The start of a record not yet complete; empty (and unallocated) between records.
    partial: BytesMut,
    /// Plaintext opened but not yet read; empty (and unallocated) almost always.
    plain: BytesMut,
    /// Sealed records the kernel has not taken yet.
    unsent: BytesMut,
    /// The peer sent close_notify, or reading failed: nothing more is read.
    read_done: bool,
    /// close_notify has been sealed (into `unsent`).
    close_sealed: bool,
}

/// What [`take_over`] made of an upgraded TLS stream, with the plaintext already read past the
/// upgrade request, to be decoded first.
pub(crate) enum Handover {
    /// The records are ours now.
    Lean(LeanTls, Bytes),
    /// The connection stays on rustls.
    Rustls(TlsStream, Bytes),
}

/// The cipher suites [`record`] implements.
const LEAN_SUITES: [CipherSuite; 3] = [
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
];

/// Takes an upgraded TLS connection off rustls when that is safe (see the module doc);
/// `leftover` is the plaintext hyper read past the request. `None` only if rustls refuses to
/// hand over keys after every check passed (the connection is then closed, never misread).
pub(crate) fn take_over(mut tls: TlsStream, leftover: Bytes) -> Option<Handover> {
    let (io, conn) = tls.get_mut();
    // Plaintext rustls decrypted but nobody read yet: it follows hyper's leftover.
    let mut rest = Vec::new();
    let mut closed = false;
    let mut chunk = [0u8; 1024];
    loop {
        match conn.reader().read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let leftover = if rest.is_empty() {
        leftover
    } else {
        let mut all = BytesMut::with_capacity(leftover.len() + rest.len());
        all.extend_from_slice(&leftover);
        all.extend_from_slice(&rest);
        all.freeze()
    };
    // rustls processes every complete record as it reads; this call finds nothing new and
    // reports whether anything is left to read or send, or the connection has failed.
    let state = conn.process_new_packets();
    let lean_suite = conn.negotiated_cipher_suite().is_some_and(|s| LEAN_SUITES.contains(&s.suite()));
    let eligible = !closed
        && !conn.is_handshaking()
        && conn.protocol_version() == Some(ProtocolVersion::TLSv1_3)
        && lean_suite
        && !conn.wants_write()
        && io.at_record_boundary()
        && state.is_ok_and(|s| s.plaintext_bytes_to_read() == 0 && s.tls_bytes_to_write() == 0 && !s.peer_has_closed());
    if !eligible {
        return Some(Handover::Rustls(tls, leftover));
    }
    let (io, conn) = tls.into_inner();
    let secrets = match conn.dangerous_extract_secrets() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "TLS keys could not be taken over; closing the connection");
            return None;
        }
    };
    let keys = Protection::new(secrets.rx.1, secrets.rx.0)
        .and_then(|rx| Protection::new(secrets.tx.1, secrets.tx.0).map(|tx| (rx, tx)));
    match keys {
        Ok((rx, tx)) => Some(Handover::Lean(LeanTls::new(io.into_inner(), rx, tx), leftover)),
        Err(e) => {
            tracing::warn!(error = %e, "TLS keys could not be taken over; closing the connection");
            None
        }
    }
}

impl LeanTls {
    /// A connection at the point where the keys `rx` and `tx` were taken.
    pub(crate) fn new(io: TcpStream, rx: Protection, tx: Protection) -> Self {
        Self {
            io,
            rx,
            tx,
            partial: BytesMut::new(),
            plain: BytesMut::new(),
            unsent: BytesMut::new(),
            read_done: false,
            close_sealed: false,
        }
    }

    /// Copies what `plain` holds into `buf`, dropping the buffer once it is empty.
    fn read_plain(&mut self, buf: &mut ReadBuf<'_>) {
        let n = self.plain.len().min(buf.remaining());
        buf.put_slice(&self.plain[..n]);
        self.plain.advance(n);
        if self.plain.is_empty() {
            self.plain = BytesMut::new();
        }
    }

    /// Reads ciphertext and opens the complete records into `buf` (then `plain`). Returns
    /// whether the read is answered: plaintext delivered, or the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<bool>> {
        READ_SCRATCH.with_borrow_mut(|scratch| {
            let mut rb = ReadBuf::new(scratch);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                // The TCP connection ended without close_notify: a truncation, as rustls reports it.
                self.read_done = true;
                self.partial = BytesMut::new();
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            let result = if self.partial.is_empty() {
                let data = &mut scratch[..n];
                self.open_records(data, buf).map(|(used, answered)| {
                    if used < n {
                        self.partial = BytesMut::from(&data[used..]);
                    }
                    answered
                })
            } else {
                let mut data = std::mem::take(&mut self.partial);
                data.extend_from_slice(&scratch[..n]);
                self.open_records(&mut data, buf).map(|(used, answered)| {
                    if used < data.len() {
                        // A copy the size of the tail: the grown buffer is not kept.
                        self.partial = BytesMut::from(&data[used..]);
                    }
                    answered
                })
            };
            Poll::Ready(result.map_err(|e| {
                self.read_done = true;
                self.partial = BytesMut::new();
                e.into()
            }))
        })
    }

    /// Opens the complete records at the start of `data`: returns how many bytes they took and
    /// whether the read is answered.
    fn open_records(&mut self, data: &mut [u8], buf: &mut ReadBuf<'_>) -> Result<(usize, bool), RecordError> {
        let mut used = 0;
        let mut answered = false;
        while let Some(len) = record::record_len(&data[used..])? {
            let Some(rec) = data.get_mut(used..used + len) else { break };
            match self.rx.open(rec)? {
                Opened::Data(range) => {
                    let plain = &rec[range];
                    let n = plain.len().min(buf.remaining());
                    buf.put_slice(&plain[..n]);
                    self.plain.extend_from_slice(&plain[n..]);
                    answered |= !plain.is_empty();
                }
                Opened::Close => {
                    // RFC 8446 §6.1: whatever follows close_notify is ignored.
                    self.read_done = true;
                    return Ok((data.len(), true));
                }
            }
            used += len;
        }
        Ok((used, answered))
    }

    /// Writes what the kernel did not take before; ready once nothing is left.
    fn poll_send_unsent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.unsent.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.unsent))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.unsent.advance(n);
        }
        if self.unsent.capacity() > 0 {
            self.unsent = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for LeanTls {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.plain.is_empty() {
            this.read_plain(buf);
            return Poll::Ready(Ok(()));
        }
        // An empty read is the end of the stream, so loop past records without plaintext.
        while !this.read_done && buf.remaining() > 0 {
            if ready!(this.poll_fill(cx, buf))? {
                break;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for LeanTls {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Seals the slices into as few records as they fit (several small WebSocket frames share
    /// one), writes them, and keeps what the kernel did not take for the next write or flush.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_send_unsent(cx))?;
        if this.close_sealed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        WRITE_SCRATCH.with_borrow_mut(|out| {
            out.clear();
            let mut taken = 0;
            while taken < WRITE_BUDGET {
                let n = this.tx.seal_vectored(bufs, taken, out)?;
                if n == 0 {
                    break;
                }
                taken += n;
            }
            if taken == 0 {
                return Poll::Ready(Ok(0));
            }
            let mut sent = 0;
            while sent < out.len() {
                match Pin::new(&mut this.io).poll_write(cx, &out[sent..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => sent += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    // The waker is registered: the rest goes out on the next write or flush.
                    Poll::Pending => break,
                }
            }
            if sent < out.len() {
                this.unsent = BytesMut::from(&out[sent..]);
            }
            Poll::Ready(Ok(taken))
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_unsent(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    /// Sends close_notify after what is pending, then shuts down the TCP write side.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_unsent(cx))?;
        if !this.close_sealed {
            this.close_sealed = true;
            let mut alert = Vec::new();
            // Keys past their limit: the TCP shutdown alone ends the connection.
            if this.tx.seal(record::ALERT, &record::CLOSE_NOTIFY_ALERT, &mut alert).is_ok() {
                this.unsent = BytesMut::from(&alert[..]);
                ready!(this.poll_send_unsent(cx))?;
            }
        }
        Poll::Ready(match ready!(Pin::new(&mut this.io).poll_shutdown(cx)) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
            _ => Ok(()),
        })
    }
}

#[cfg(test)]
mod tests;
