//! An HTTP session: the state shared by the session task (through [`Link`], its transport) and
//! the HTTP requests that carry it ([`ReceiveBody`] for receive requests, `xhr_send` posts).
//!
//! The session task runs the same driver and adapter as a WebSocket's. Its link turns outbox
//! frames into lines for whichever receive request is attached, and hands posted messages to
//! the driver as if they had come in WebSocket frames. Everything is bounded: lines are taken
//! from the outbox only once the previous ones went out (so a stalled client fills the bounded
//! outbox, which then marks it a slow consumer), posted messages wait in a short queue, and a
//! session with no receive request attached for [`IDLE_EXPIRY`] ends as gone.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use herald_core::Outbox;
use herald_core::outbox::CloseRequest;
use herald_protocol::ws::Message;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::path::Kind;
use super::sse::Sse;
use super::{lines, stats};
use crate::session::driver::Transport;
use crate::ws::socket::Event;

/// How long a session may go without a receive request before it ends.
pub(crate) const IDLE_EXPIRY: Duration = Duration::from_secs(15);
/// How often an open receive request gets a heartbeat line when nothing else is sent (below
/// the usual 30–60 s idle timeouts of proxies).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(25);
/// How often an SSE stream gets a comment line when nothing else is sent.
pub(crate) const SSE_HEARTBEAT: Duration = Duration::from_secs(15);
/// Most posted messages waiting for the session task.
pub(crate) const INBOUND_MAX: usize = 64;
/// pusher-js drops a streaming response once it has read more than this many characters
/// (UTF-16 units) and opens another: whatever was written to the old one after that point is
/// lost. So herald ends a streaming response itself as soon as it carried more than this, at
/// a line's end: pusher-js has then read all of it, renews, and the next request gets the rest.
pub(crate) const STREAM_RENEW_UNITS: usize = 256 * 1024;

/// The sessions of one listener, by `{key}/{server}/{session}`.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<Box<str>, Arc<Shared>>>,
    draining: AtomicBool,
}

impl Sessions {
    fn map(&self) -> MutexGuard<'_, HashMap<Box<str>, Arc<Shared>>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live session of that name.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Shared>> {
        self.map().get(name).cloned()
    }

    /// Registers a new session and returns its link (the session task's transport).
    pub(crate) fn open(self: &Arc<Self>, name: Box<str>, kind: Kind, sse: Option<Box<Sse>>) -> (Arc<Shared>, Link) {
        stats::session(kind, true);
        let shared = Arc::new(Shared::default());
        if self.draining.load(Ordering::Relaxed) {
            shared.state().draining = true;
        }
        self.map().insert(name.clone(), Arc::clone(&shared));
        let link = Link {
            shared: Arc::clone(&shared),
            registry: Arc::clone(self),
            name,
            kind,
            sse,
            out: VecDeque::new(),
            expiry: Box::pin(tokio::time::sleep(IDLE_EXPIRY)),
        };
        (shared, link)
    }

    /// The listener stops: every session says goodbye now, so that its receive request (a
    /// plain HTTP request the drain waits for) ends.
    pub(crate) fn drain(&self) {
        if self.draining.swap(true, Ordering::Relaxed) {
            return;
        }
        for shared in self.map().values() {
            let mut st = shared.state();
            st.draining = true;
            if let Some(w) = st.session.take() {
                w.wake();
            }
        }
    }
}

/// What the session task and the requests share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Posted messages, oldest first.
    inbound: VecDeque<Bytes>,
    /// The session task, to wake when a message is posted or a receive request comes or goes.
    session: Option<Waker>,
    /// The attached receive request's number (0: none).
    receiver: u64,
    /// Numbers handed to receive requests so far.
    receivers: u64,
    /// Lines for the attached receive request.
    pending: BytesMut,
    /// The receive request waiting for lines.
    body: Option<Waker>,
    /// The session has ended: once `pending` is sent, receive requests end.
    closed: bool,
    /// The listener drains: the session should say goodbye.
    draining: bool,
    /// When the last receive request ended.
    detached_at: Option<Instant>,
}

/// Why a post was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PostError {
    /// The inbound queue is full.
    Full,
    /// The session has ended.
    Closed,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues the messages of one `xhr_send`, all or none.
    pub(crate) fn post(&self, messages: Vec<Bytes>) -> Result<(), PostError> {
        let mut st = self.state();
        if st.closed {
            return Err(PostError::Closed);
        }
        if st.inbound.len() + messages.len() > INBOUND_MAX {
            return Err(PostError::Full);
        }
        st.inbound.extend(messages);
        if let Some(w) = st.session.take() {
            w.wake();
        }
        Ok(())
    }

    /// Attaches a receive request, replacing (and so ending) any other; `first` carries the
    /// lines a new session starts with.
    pub(crate) fn attach(self: &Arc<Self>, polling: bool, first: &[u8]) -> ReceiveBody {
        let mut body = self.attach_as(polling, first, lines::HEARTBEAT, HEARTBEAT);
        body.renew_after = (!polling).then_some(STREAM_RENEW_UNITS);
        body
    }

    /// Attaches the one response of an SSE session.
    pub(crate) fn attach_sse(self: &Arc<Self>, first: &[u8]) -> ReceiveBody {
        self.attach_as(false, first, b": ping\n\n", SSE_HEARTBEAT)
    }

    fn attach_as(self: &Arc<Self>, polling: bool, first: &[u8], beat: &'static [u8], every: Duration) -> ReceiveBody {
        let mut st = self.state();
        st.receivers += 1;
        st.receiver = st.receivers;
        st.detached_at = None;
        st.pending.extend_from_slice(first);
        if let Some(w) = st.body.take() {
            w.wake();
        }
        if let Some(w) = st.session.take() {
            w.wake();
        }
        ReceiveBody {
            shared: Arc::clone(self),
            number: st.receiver,
            polling,
            done: false,
            beat,
            every,
            heartbeat: Box::pin(tokio::time::sleep(every)),
            renew_after: None,
            sent_units: 0,
        }
    }
}

/// The session task's side: its transport.
#[derive(Debug)]
pub(crate) struct Link {
    shared: Arc<Shared>,
    registry: Arc<Sessions>,
    name: Box<str>,
    /// The transport the session was opened with (for the metrics).
    kind: Kind,
    /// The event stream's state, for an SSE session (which outlives no request: its expiry is 0).
    sse: Option<Box<Sse>>,
    /// Replies and frames taken from the outbox, not yet turned into lines.
    out: VecDeque<Bytes>,
    /// Fires [`IDLE_EXPIRY`] after the last receive request ended.
    expiry: Pin<Box<Sleep>>,
}

impl Transport for Link {
    fn poll_event(&mut self, cx: &mut Context<'_>, outbox: &Outbox, read: bool) -> Poll<Event> {
        let shared = Arc::clone(&self.shared);
        let mut st = shared.state();
        if st.session.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
            st.session = Some(cx.waker().clone());
        }
        if st.draining {
            return Poll::Ready(Event::CloseRequested(CloseRequest::Shutdown));
        }
        loop {
            // As a socket does: new frames only once the previous ones went out.
            let room = st.receiver != 0 && st.pending.is_empty();
            let take = self.out.is_empty() || room;
            if let Some(req) = outbox.poll_close_or_take(cx, &mut self.out, take) {
                return Poll::Ready(Event::CloseRequested(req));
            }
            if room && !self.out.is_empty() {
                let st = &mut *st;
                match &mut self.sse {
                    None => lines::push_messages(&mut st.pending, &self.out),
                    Some(sse) => sse.push(&mut st.pending, &self.out, &mut st.inbound),
                }
                self.out = VecDeque::new();
                if let Some(w) = st.body.take() {
                    w.wake();
                }
                if !outbox.is_empty() {
                    continue;
                }
            }
            break;
        }
        if read && let Some(msg) = st.inbound.pop_front() {
            return Poll::Ready(Event::Message(Message::Text(msg)));
        }
        if st.receiver == 0 {
            let since = *st.detached_at.get_or_insert_with(Instant::now);
            let at = if self.sse.is_some() { since } else { since + IDLE_EXPIRY };
            if self.expiry.deadline() != at {
                self.expiry.as_mut().reset(at);
            }
            if self.expiry.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Gone);
            }
        }
        Poll::Pending
    }

    fn replies(&mut self) -> &mut VecDeque<Bytes> {
        &mut self.out
    }

    fn close(
        mut self,
        close_frame: Option<Bytes>,
        outbox: &Outbox,
        discard_backlog: bool,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        if discard_backlog {
            self.out.clear();
        } else {
            let _ = outbox.poll_drain(&mut Context::from_waker(Waker::noop()), &mut self.out);
        }
        {
            let mut st = self.shared.state();
            let st = &mut *st;
            match &mut self.sse {
                None => {
                    lines::push_messages(&mut st.pending, &self.out);
                    if let Some(frame) = &close_frame {
                        lines::push_close(&mut st.pending, frame);
                    }
                }
                // The stream just ends: EventSource reconnects with Last-Event-ID by itself.
                Some(sse) => sse.push(&mut st.pending, &self.out, &mut VecDeque::new()),
            }
        }
        // Dropping the link ends the session: see `Drop`.
        drop(self);
        Box::pin(std::future::ready(()))
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        stats::session(self.kind, false);
        {
            let mut map = self.registry.map();
            if map.get(&self.name).is_some_and(|s| Arc::ptr_eq(s, &self.shared)) {
                map.remove(&self.name);
            }
        }
        let mut st = self.shared.state();
        st.closed = true;
        st.inbound.clear();
        if let Some(w) = st.body.take() {
            w.wake();
        }
    }
}

/// The body of a receive response: the lines of its session, as they come.
#[derive(Debug)]
pub(crate) struct ReceiveBody {
    shared: Arc<Shared>,
    number: u64,
    polling: bool,
    /// A polling response has sent its lines and ends.
    done: bool,
    /// The heartbeat (`h` line or SSE comment) and its period.
    beat: &'static [u8],
    every: Duration,
    heartbeat: Pin<Box<Sleep>>,
    /// A streaming response ends once it carried more than this ([`STREAM_RENEW_UNITS`]).
    renew_after: Option<usize>,
    /// UTF-16 units sent so far (what pusher-js measures).
    sent_units: usize,
}

impl ReceiveBody {
    /// A body that sends `lines` and ends (refusals in the framing pusher-js understands).
    pub(crate) fn once(lines: Bytes) -> Self {
        let shared = Arc::new(Shared::default());
        {
            let mut st = shared.state();
            st.pending.extend_from_slice(&lines);
            st.closed = true;
        }
        Self {
            shared,
            number: 0,
            polling: true,
            done: false,
            beat: lines::HEARTBEAT,
            every: HEARTBEAT,
            heartbeat: Box::pin(tokio::time::sleep(HEARTBEAT)),
            renew_after: None,
            sent_units: 0,
        }
    }
}

/// The length of UTF-8 `bytes` in UTF-16 units: one per character, two for those beyond the
/// Basic Multilingual Plane (4-byte sequences).
fn utf16_units(bytes: &[u8]) -> usize {
    bytes.iter().map(|b| usize::from(b & 0xC0 != 0x80) + usize::from(*b >= 0xF0)).sum()
}

impl Body for ReceiveBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let shared = Arc::clone(&self.shared);
        let mut st = shared.state();
        // Replaced by a newer receive request (pusher-js reconnected its stream).
        if st.receiver != self.number && self.number != 0 {
            return Poll::Ready(None);
        }
        if !st.pending.is_empty() {
            let lines = st.pending.split().freeze();
            st.pending = BytesMut::new();
            if let Some(w) = st.session.take() {
                w.wake();
            }
            self.sent_units += utf16_units(&lines);
            // Lines are whole here (the session task writes complete lines).
            let renew = self.renew_after.is_some_and(|limit| self.sent_units > limit);
            self.done = self.polling || st.closed || renew;
            let next = Instant::now() + self.every;
            self.heartbeat.as_mut().reset(next);
            return Poll::Ready(Some(Ok(Frame::data(lines))));
        }
        if st.closed {
            return Poll::Ready(None);
        }
        if st.body.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
            st.body = Some(cx.waker().clone());
        }
        drop(st);
        if self.heartbeat.as_mut().poll(cx).is_ready() {
            self.done = self.polling;
            let next = Instant::now() + self.every;
            self.heartbeat.as_mut().reset(next);
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(self.beat)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for ReceiveBody {
    fn drop(&mut self) {
        let mut st = self.shared.state();
        if self.number != 0 && st.receiver == self.number {
            st.receiver = 0;
            st.detached_at = Some(Instant::now());
            st.body = None;
            if let Some(w) = st.session.take() {
                w.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::utf16_units;

    #[test]
    fn utf16_units_count_as_javascript_does() {
        for s in ["", "abc\n", "é", "€uro", "𝄞", "a𝄞é€"] {
            assert_eq!(utf16_units(s.as_bytes()), s.encode_utf16().count(), "{s}");
        }
    }
}
