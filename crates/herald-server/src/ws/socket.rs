//! The I/O pump of one WebSocket: reads and decodes client frames, writes queued frames.
//!
//! It is driven by the socket's owner task through [`Socket::poll_event`], which in one poll
//! flushes what the outbox holds (coalesced into one vectored write) and reads what the client
//! sent. Memory is the point here: an idle socket holds no read or write buffer. Reads land in
//! a per-thread scratch buffer and only a partial frame is copied into the socket's own buffer;
//! writes go straight from the shared frame `Bytes` to the kernel.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use herald_core::Outbox;
use herald_core::outbox::CloseRequest;
use herald_protocol::ws::{Decoder, DecoderConfig, Message, WsError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Size of the per-thread read scratch buffer.
const SCRATCH: usize = 64 * 1024;
/// Most frames handed to one vectored write.
const MAX_IOVECS: usize = 64;
/// How long a closing socket may take to flush its last frames.
const CLOSE_FLUSH: Duration = Duration::from_secs(5);
/// How long a closing socket waits for the client to close its side.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// What happened on the socket.
#[derive(Debug)]
pub(crate) enum Event {
    /// A complete message from the client.
    Message(Message),
    /// The client violated RFC 6455; close with the error's code.
    Violation(WsError),
    /// The client closed the TCP connection (or it broke).
    Gone,
    /// Someone asked this socket to close.
    CloseRequested(CloseRequest),
}

/// One WebSocket's stream, decoder and pending writes.
pub(crate) struct Socket<S> {
    io: S,
    /// Bytes of a partial client frame; empty (and unallocated) between frames.
    inbuf: BytesMut,
    decoder: Decoder,
    /// Frames taken from the outbox, being written.
    out: VecDeque<Bytes>,
    /// Whether the front of `out` has been partly written (it must then be finished).
    front_partial: bool,
    /// Set after a read error or EOF: nothing more will be read.
    read_closed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Socket<S> {
    /// Wraps an upgraded stream; `leftover` holds bytes read past the HTTP request.
    pub(crate) fn new(io: S, leftover: Bytes, max_message: usize) -> Self {
        let cfg = DecoderConfig { max_message_size: max_message, max_frame_size: max_message };
        Self {
            io,
            inbuf: BytesMut::from(&leftover[..]),
            decoder: Decoder::new(cfg),
            out: VecDeque::new(),
            front_partial: false,
            read_closed: false,
        }
    }

    /// Queues a frame to be written before anything the outbox delivers later.
    pub(crate) fn queue(&mut self, frame: Bytes) {
        self.out.push_back(frame);
    }

    /// The queue [`queue`](Self::queue) adds to, for a session to reply through.
    pub(crate) fn replies(&mut self) -> &mut VecDeque<Bytes> {
        &mut self.out
    }

    /// Waits for the next event, writing queued frames meanwhile. With `read` false the client's
    /// messages wait (in the kernel, then in `inbuf`) until a later call reads them.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>, outbox: &Outbox, read: bool) -> Poll<Event> {
        loop {
            // Take new frames only once the previous ones are written: while the client is
            // slow they pile up in the bounded outbox, which then marks it a slow consumer.
            let take = self.out.is_empty();
            if let Some(req) = outbox.poll_close_or_take(cx, &mut self.out, take) {
                return Poll::Ready(Event::CloseRequested(req));
            }
            match self.poll_flush_out(cx) {
                Poll::Ready(Err(_)) => return Poll::Ready(Event::Gone),
                Poll::Ready(Ok(())) => {
                    if !outbox.is_empty() {
                        continue;
                    }
                }
                Poll::Pending => {}
            }
            if !read {
                return Poll::Pending;
            }
            // Frames decoded from an earlier read come before reading more.
            if !self.inbuf.is_empty() {
                match self.decoder.decode(&mut self.inbuf) {
                    Ok(Some(m)) => {
                        self.release_inbuf();
                        return Poll::Ready(Event::Message(m));
                    }
                    Ok(None) => {}
                    Err(e) => return Poll::Ready(Event::Violation(e)),
                }
            }
            if self.read_closed {
                return Poll::Ready(Event::Gone);
            }
            match ready!(self.poll_read_some(cx)) {
                Ok(0) | Err(_) => {
                    self.read_closed = true;
                    return Poll::Ready(Event::Gone);
                }
                // Loop: decode what arrived, and pick up frames queued meanwhile.
                Ok(_) => {}
            }
        }
    }

    /// Reads into the per-thread scratch buffer and keeps only what the socket needs.
    fn poll_read_some(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        SCRATCH_BUF.with_borrow_mut(|scratch| {
            let mut rb = ReadBuf::new(scratch);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            self.inbuf.extend_from_slice(rb.filled());
            Poll::Ready(Ok(n))
        })
    }

    /// Drops the read buffer once it holds nothing, so idle sockets hold none. Unconditionally:
    /// after the decoder split the last message off, the buffer may have no capacity left and
    /// still share (and so keep alive) the allocation that message came in.
    fn release_inbuf(&mut self) {
        if self.inbuf.is_empty() {
            self.inbuf = BytesMut::new();
        }
    }

    /// Writes queued frames, several per system call.
    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(front) = self.out.front() {
            if self.out.len() == 1 {
                // The common case at low publish rates: one frame, a plain write, no iovec array
                // to clear (the profile counted ~220 instructions per delivery for it).
                let written = ready!(Pin::new(&mut self.io).poll_write(cx, front))?;
                if written == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.advance(written);
                continue;
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut n = 0;
            for (slot, frame) in slices.iter_mut().zip(self.out.iter()) {
                *slot = IoSlice::new(frame);
                n += 1;
            }
            let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(written);
        }
        if self.out.capacity() > 0 {
            // Give the queue's memory back once it is written, so an idle socket holds none. The
            // outbox hands its filled queue over by swapping, so a busy socket allocates once
            // per batch of frames, not per frame.
            self.out = VecDeque::new();
        }
        // A TLS stream may keep records the kernel did not take yet; only a flush sends them when
        // no further write comes (for plain TCP this is a no-op).
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn advance(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.out.front_mut() else { return };
            if written >= front.len() {
                written -= front.len();
                self.out.pop_front();
                self.front_partial = false;
            } else {
                front.advance(written);
                self.front_partial = true;
                written = 0;
            }
        }
    }

    /// Sends `close_frame` after everything queued, then closes the connection politely: shut
    /// down our side and wait (briefly) for the client to close its side, so the client reads
    /// the close frame instead of a reset.
    ///
    /// With `discard_backlog` (a slow consumer), queued frames are dropped, except one already
    /// half-written (the stream must stay well-formed); otherwise what the outbox holds now is
    /// delivered first.
    ///
    /// The future is boxed: it runs once, at the end, and inline it would be the largest state
    /// of every session (two timers and a drain buffer) for its whole life.
    pub(crate) fn close(
        mut self,
        close_frame: Option<Bytes>,
        outbox: &Outbox,
        discard_backlog: bool,
    ) -> Pin<Box<impl Future<Output = ()> + use<S>>>
    where
        S: 'static,
    {
        if discard_backlog {
            let keep = usize::from(self.front_partial);
            self.out.truncate(keep);
        } else {
            // Nothing waits on the outbox any more: a no-op waker is enough to take what it holds.
            let _ = outbox.poll_drain(&mut Context::from_waker(std::task::Waker::noop()), &mut self.out);
        }
        Box::pin(self.finish(close_frame))
    }

    /// Closes a socket that no session took on (a refused upgrade): sends what
    /// [`queue`](Self::queue) holds and `close_frame`, then closes like [`close`](Self::close).
    /// There is no outbox to drain, so none is needed.
    pub(crate) fn refuse(self, close_frame: Option<Bytes>) -> Pin<Box<impl Future<Output = ()>>> {
        Box::pin(self.finish(close_frame))
    }

    /// Writes the queued frames and `close_frame`, shuts down our side and lingers for the
    /// client's FIN.
    async fn finish(mut self, close_frame: Option<Bytes>) {
        if let Some(f) = close_frame {
            self.out.push_back(f);
        }
        let flushed = tokio::time::timeout(CLOSE_FLUSH, std::future::poll_fn(|cx| self.poll_flush_out(cx))).await;
        if !matches!(flushed, Ok(Ok(()))) {
            return;
        }
        let _ = self.io.shutdown().await;
        if self.read_closed {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            let mut sink = [0u8; 512];
            while let Ok(n) = self.io.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}
