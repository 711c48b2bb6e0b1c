//! The bounded queue of encoded frames waiting to be written to one socket.
//!
//! Anyone may push (the hub during fan-out, the HTTP API, the socket's own task); only the
//! socket's owner task drains it. Pushing never waits: a subscriber that cannot keep up fills
//! its queue and is marked for closing, so it can neither grow memory nor slow the others.
//! An idle outbox holds no heap memory (an empty `VecDeque` does not allocate).

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;

/// How much an outbox may hold before its socket counts as a slow consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Most frames queued at once.
    pub max_frames: usize,
    /// Most payload bytes queued at once.
    pub max_bytes: usize,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        // Generous enough to absorb a burst of publications on a healthy loopback or LAN
        // client, small enough that 10k stalled sockets cannot take gigabytes.
        Self { max_frames: 4096, max_bytes: 1 << 20 }
    }
}

/// Why the owner task must close its socket, decided by someone other than the owner.
///
/// Typed, not a close code: each protocol says goodbye in its own way (Pusher 4xxx codes, a WAMP
/// v2 GOODBYE, a WAMP v1 close status), and only the session knows which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseRequest {
    /// The outbox overflowed: the client does not read fast enough.
    SlowConsumer,
    /// The HTTP API ended the connections of the user this socket signed in as.
    Terminated,
    /// The server is draining: the client should reconnect, to another node if it can.
    Shutdown,
    /// The app was removed, or its key changed: the key the client holds names no app.
    AppRemoved,
    /// The app was disabled.
    AppDisabled,
}

/// Why a push was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The queue is full; the socket has been marked as a slow consumer.
    #[error("outbox full: slow consumer")]
    Full,
    /// The socket is closing; the frame was dropped.
    #[error("outbox closed")]
    Closed,
}

/// What the owner task finds when it looks at its outbox.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Frames were moved into the caller's queue.
    Frames,
    /// Someone asked for the socket to close. Frames queued before the request were moved too.
    Close(CloseRequest),
}

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    /// Payload bytes queued; at most the limit, which fits in 32 bits.
    bytes: u32,
    close: Option<CloseRequest>,
    /// Set once the close request has been handed to the owner; later pushes are refused.
    closed: bool,
    waker: Option<Waker>,
}

/// A bounded, multi-producer, single-consumer queue of encoded WebSocket frames.
///
/// Every connection has one for its whole life, so it is kept small: the limits are stored in
/// 32 bits (a limit above 4 GiB would be no limit at all on one socket).
pub struct Outbox {
    max_frames: u32,
    max_bytes: u32,
    state: Mutex<State>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Outbox")
            .field("frames", &s.frames.len())
            .field("bytes", &s.bytes)
            .field("close", &s.close)
            .finish()
    }
}

impl Outbox {
    /// An empty outbox with these limits.
    pub fn new(limits: OutboxLimits) -> Self {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            max_frames: clamp(limits.max_frames),
            max_bytes: clamp(limits.max_bytes),
            state: Mutex::new(State::default()),
        }
    }

    /// Queues one encoded frame and wakes the owner.
    ///
    /// # Errors
    /// [`PushError::Full`] when the limits are reached (the socket is then marked as a slow
    /// consumer and will be closed), [`PushError::Closed`] when the socket is closing.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let waker = {
            let mut s = self.state.lock();
            if s.closed || s.close.is_some() {
                return Err(PushError::Closed);
            }
            let bytes = u32::try_from(frame.len()).ok().and_then(|n| n.checked_add(s.bytes));
            let Some(bytes) = bytes.filter(|b| *b <= self.max_bytes && s.frames.len() < self.max_frames as usize)
            else {
                s.close = Some(CloseRequest::SlowConsumer);
                crate::stats::slow_consumer_marked();
                let w = s.waker.take();
                drop(s);
                if let Some(w) = w {
                    w.wake();
                }
                return Err(PushError::Full);
            };
            s.bytes = bytes;
            s.frames.push_back(frame);
            s.waker.take()
        };
        // Wake outside the lock: the woken task may run on another thread at once.
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Asks the owner to close the socket. The first request wins.
    pub fn request_close(&self, request: CloseRequest) {
        let waker = {
            let mut s = self.state.lock();
            if s.closed || s.close.is_some() {
                return;
            }
            s.close = Some(request);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Owner side: moves every queued frame into `into` (which the owner writes from).
    ///
    /// Returns `Pending` (and registers the waker) when there is nothing to do.
    ///
    /// The owner calls this only once it has written what it took before: frames wait here,
    /// where the limits apply, rather than in the owner's unbounded write queue.
    pub fn poll_drain(&self, cx: &mut Context<'_>, into: &mut VecDeque<Bytes>) -> Poll<Drained> {
        self.poll(cx, Some(into))
    }

    /// Owner side, while its own write queue is still busy: reports a close request without
    /// taking frames.
    pub fn poll_close(&self, cx: &mut Context<'_>) -> Poll<CloseRequest> {
        match self.poll(cx, None) {
            Poll::Ready(Drained::Close(req)) => Poll::Ready(req),
            _ => Poll::Pending,
        }
    }

    /// Owner side, once per wake-up: takes the queued frames into `into` when `take` (its own
    /// write queue has room), otherwise only looks for a close request. Returns the close
    /// request, if any; a transport's one step of [`Outbox::poll_drain`] or
    /// [`Outbox::poll_close`].
    pub fn poll_close_or_take(
        &self,
        cx: &mut Context<'_>,
        into: &mut VecDeque<Bytes>,
        take: bool,
    ) -> Option<CloseRequest> {
        if take {
            match self.poll_drain(cx, into) {
                Poll::Ready(Drained::Close(req)) => Some(req),
                _ => None,
            }
        } else {
            match self.poll_close(cx) {
                Poll::Ready(req) => Some(req),
                Poll::Pending => None,
            }
        }
    }

    fn poll(&self, cx: &mut Context<'_>, into: Option<&mut VecDeque<Bytes>>) -> Poll<Drained> {
        let mut s = self.state.lock();
        let Some(into) = into else {
            if let Some(req) = s.close.take() {
                s.closed = true;
                return Poll::Ready(Drained::Close(req));
            }
            if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                s.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        };
        let had_frames = !s.frames.is_empty();
        if had_frames {
            if into.is_empty() {
                // Swap instead of copying: the owner's empty queue comes back as our spare.
                std::mem::swap(into, &mut s.frames);
            } else {
                into.extend(s.frames.drain(..));
            }
            s.bytes = 0;
        }
        if let Some(req) = s.close.take() {
            s.closed = true;
            return Poll::Ready(Drained::Close(req));
        }
        // Register even when returning frames: the owner may not poll again before its next
        // wake-up, and a push after this point must be able to wake it.
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        if had_frames { Poll::Ready(Drained::Frames) } else { Poll::Pending }
    }

    /// Number of frames currently queued (for metrics and tests).
    pub fn len(&self) -> usize {
        self.state.lock().frames.len()
    }

    /// Whether no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn drains_in_order_and_then_waits() {
        let ob = Outbox::new(OutboxLimits::default());
        ob.push(Bytes::from_static(b"a")).unwrap();
        ob.push(Bytes::from_static(b"b")).unwrap();
        let mut q = VecDeque::new();
        assert_eq!(ob.poll_drain(&mut cx(), &mut q), Poll::Ready(Drained::Frames));
        assert_eq!(q, vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        assert_eq!(ob.poll_drain(&mut cx(), &mut q), Poll::Pending);
    }

    #[test]
    fn a_push_after_a_drain_wakes_the_owner() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let ob = Outbox::new(OutboxLimits::default());
        ob.push(Bytes::from_static(b"a")).unwrap();
        let mut q = VecDeque::new();
        assert_eq!(ob.poll_drain(&mut cx, &mut q), Poll::Ready(Drained::Frames));
        ob.push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the owner is woken for the second frame");
    }

    #[test]
    fn overflow_marks_slow_consumer_and_refuses_more() {
        let ob = Outbox::new(OutboxLimits { max_frames: 2, max_bytes: 1000 });
        ob.push(Bytes::from_static(b"1")).unwrap();
        ob.push(Bytes::from_static(b"2")).unwrap();
        assert_eq!(ob.push(Bytes::from_static(b"3")), Err(PushError::Full));
        assert_eq!(ob.push(Bytes::from_static(b"4")), Err(PushError::Closed));
        let mut q = VecDeque::new();
        assert_eq!(ob.poll_drain(&mut cx(), &mut q), Poll::Ready(Drained::Close(CloseRequest::SlowConsumer)));
        assert_eq!(q.len(), 2, "frames accepted before the overflow are still written");
    }

    #[test]
    fn byte_limit_counts_payload() {
        let ob = Outbox::new(OutboxLimits { max_frames: 100, max_bytes: 5 });
        ob.push(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(ob.push(Bytes::from_static(b"def")), Err(PushError::Full));
    }

    #[test]
    fn first_close_request_wins() {
        let ob = Outbox::new(OutboxLimits::default());
        ob.request_close(CloseRequest::Terminated);
        ob.request_close(CloseRequest::SlowConsumer);
        let mut q = VecDeque::new();
        assert_eq!(ob.poll_drain(&mut cx(), &mut q), Poll::Ready(Drained::Close(CloseRequest::Terminated)));
    }
}
