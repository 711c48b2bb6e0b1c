//! The session driver: the one loop every session runs, whatever it speaks and whatever carries it.
//!
//! A session's bytes travel over a [`Transport`]: a WebSocket ([`Socket`]) or an HTTP session
//! link (`http_transport/link.rs`: pusher-js's HTTP fallbacks, Server-Sent Events). The driver
//! owns the transport, the one timer, keep-alive, the draining of the connection's outbox, the
//! work a session started (an access check, an authenticator's question) and the close
//! sequence. What the client's messages mean is the business of an [`Adapter`]: it is handed a
//! message and the time, and answers with frames to queue, hub operations, and whether to go on
//! or close with a typed [`CloseReason`]. An adapter never touches the socket or the clock, so
//! it is tested by feeding it messages.
//!
//! Memory matters here: every idle connection is one task whose future is a [`Session`]. It is
//! written by hand rather than as an `async` block so that it holds exactly the socket, the
//! adapter, a keep-alive record and one timer, each once; nothing is allocated for an idle
//! socket, and the close sequence is boxed because it runs once.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use herald_core::Outbox;
use herald_protocol::ws::{self, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use super::close::{CloseReason, Goodbye};
use super::keepalive::{KeepAlive, Plan, Tick};
use crate::ws::socket::{Event, Socket};

/// What carries a session's frames: the four operations the driver needs of a WebSocket.
///
/// Frames are complete WebSocket frames whatever the transport: the outbox is shared with the
/// hub, which encodes each publication once for every subscriber, and a transport that is not a
/// WebSocket unwraps them on the way out.
pub(crate) trait Transport: Send + 'static {
    /// Waits for the next event, delivering queued frames meanwhile. With `read` false the
    /// client's messages wait.
    fn poll_event(&mut self, cx: &mut Context<'_>, outbox: &Outbox, read: bool) -> Poll<Event>;

    /// The queue of frames written before anything the outbox delivers later.
    fn replies(&mut self) -> &mut VecDeque<Bytes>;

    /// Sends `close_frame` after what is queued (all of it, or with `discard_backlog` none of
    /// the outbox's backlog) and ends the transport; boxed because it runs once.
    fn close(
        self,
        close_frame: Option<Bytes>,
        outbox: &Outbox,
        discard_backlog: bool,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl<S> Transport for Socket<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_event(&mut self, cx: &mut Context<'_>, outbox: &Outbox, read: bool) -> Poll<Event> {
        Socket::poll_event(self, cx, outbox, read)
    }

    fn replies(&mut self) -> &mut VecDeque<Bytes> {
        Socket::replies(self)
    }

    fn close(
        self,
        close_frame: Option<Bytes>,
        outbox: &Outbox,
        discard_backlog: bool,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Socket::close(self, close_frame, outbox, discard_backlog)
    }
}

/// Whether the session goes on after an input.
#[derive(Debug)]
#[must_use]
pub(crate) enum Flow {
    /// Keep serving.
    Continue,
    /// Say goodbye for this reason and close.
    Close(CloseReason),
}

/// A data message from the client (control frames are the driver's).
#[derive(Debug)]
pub(crate) enum Data {
    /// A text message (valid UTF-8).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

/// What an adapter may ask of the driver while it handles one input.
pub(crate) struct Io<'a, D> {
    /// The time of the input.
    pub(crate) now: Instant,
    replies: &'a mut VecDeque<Bytes>,
    work: &'a mut Option<Box<JoinSet<D>>>,
}

impl<'a, D: Send + 'static> Io<'a, D> {
    /// An `Io` over a reply queue and a work set (the driver's, or a test's).
    pub(crate) fn new(now: Instant, replies: &'a mut VecDeque<Bytes>, work: &'a mut Option<Box<JoinSet<D>>>) -> Self {
        Self { now, replies, work }
    }

    /// Queues a complete frame for this socket, written before anything the outbox delivers
    /// after this point.
    pub(crate) fn reply(&mut self, frame: Bytes) {
        self.replies.push_back(frame);
    }

    /// Starts work whose result comes back through [`Adapter::on_done`]. It runs on the
    /// runtime, and is aborted when the session ends.
    pub(crate) fn spawn(&mut self, work: impl Future<Output = D> + Send + 'static) {
        self.work.get_or_insert_with(|| Box::new(JoinSet::new())).spawn(work);
    }
}

/// One protocol's (or profile's) side of a session.
pub(crate) trait Adapter {
    /// The result of work the adapter started with [`Io::spawn`].
    type Done: Send + 'static;

    /// The connection's outbox, which the driver drains.
    fn outbox(&self) -> &Outbox;

    /// How the peer is kept alive; asked again after every input, so it may change.
    fn keepalive(&self) -> Plan;

    /// Whether the adapter takes messages now; while it does not, they wait in the socket.
    fn ready(&self) -> bool {
        true
    }

    /// The probe of [`Plan::Silence`]: a WebSocket ping unless the protocol has its own.
    fn probe(&self) -> Bytes {
        ws::encode_ping(b"herald")
    }

    /// The session starts: queue what the protocol says first.
    fn open(&mut self, io: &mut Io<'_, Self::Done>) -> Flow;

    /// A data message from the client.
    fn on_data(&mut self, data: Data, io: &mut Io<'_, Self::Done>) -> Flow;

    /// Work started with [`Io::spawn`] finished.
    fn on_done(&mut self, done: Self::Done, io: &mut Io<'_, Self::Done>) -> Flow {
        let _ = (done, io);
        Flow::Continue
    }

    /// The adapter's own next deadline (a handshake or call timeout), besides keep-alive.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// [`deadline`](Self::deadline) has passed.
    fn on_deadline(&mut self, io: &mut Io<'_, Self::Done>) -> Flow {
        let _ = io;
        Flow::Continue
    }

    /// The session ends for `reason`: queue the protocol's last words and name the close frame.
    fn goodbye(&mut self, reason: CloseReason, io: &mut Io<'_, Self::Done>) -> Goodbye;

    /// Removes every trace of the session from the hub; called once, after [`goodbye`](Self::goodbye).
    fn leave(&mut self);
}

/// What woke the loop.
enum Wake<D> {
    Socket(Event),
    Done(D),
    Timer,
}

pin_project_lite::pin_project! {
    /// One session: a transport and the adapter that serves it, with everything the loop keeps
    /// between wake-ups. This struct is the whole task of an idle connection.
    #[must_use = "a session does nothing until it is spawned"]
    pub(crate) struct Session<T, A: Adapter> {
        // The transport, until the close sequence takes it.
        stage: Stage<T>,
        adapter: A,
        keepalive: KeepAlive,
        work: Option<Box<JoinSet<A::Done>>>,
        #[pin]
        timer: Sleep,
        // Whether the timer is set to the next deadline (it is not polled otherwise).
        armed: bool,
        // Whether the adapter has opened the session.
        opened: bool,
    }
}

/// Serving, or closing.
enum Stage<T> {
    /// The session serves its transport.
    Open(T),
    /// The session has ended; its socket is being closed.
    Closing(Pin<Box<dyn Future<Output = ()> + Send>>),
    /// Between the two, for as long as it takes to move the socket.
    Moving,
}

impl<T, A> Session<T, A>
where
    T: Transport,
    A: Adapter,
{
    /// Pairs a transport (an upgraded socket, an HTTP session link) with its adapter; the
    /// session opens when first polled.
    pub(crate) fn new(socket: T, adapter: A) -> Self {
        let now = Instant::now();
        Self {
            keepalive: KeepAlive::new(adapter.keepalive(), now),
            stage: Stage::Open(socket),
            adapter,
            work: None,
            timer: tokio::time::sleep_until(now),
            armed: false,
            opened: false,
        }
    }
}

impl<T, A> Future for Session<T, A>
where
    T: Transport,
    A: Adapter,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            let socket = match this.stage {
                Stage::Open(socket) => socket,
                Stage::Closing(closing) => return closing.as_mut().poll(cx),
                Stage::Moving => return Poll::Ready(()),
            };
            let flow = if *this.opened {
                let Poll::Ready(wake) =
                    poll_wake(cx, socket, this.adapter, this.work, this.timer.as_mut(), *this.armed)
                else {
                    return Poll::Pending;
                };
                let now = Instant::now();
                let fired = matches!(wake, Wake::Timer);
                let mut io = Io::new(now, socket.replies(), this.work);
                let flow = handle(wake, this.adapter, this.keepalive, &mut io);
                if matches!(flow, Flow::Continue) {
                    let plan = this.adapter.keepalive();
                    if plan != this.keepalive.plan() {
                        this.keepalive.set_plan(plan, now);
                    }
                    *this.armed = rearm(this.timer.as_mut(), *this.armed, fired, this.keepalive, this.adapter);
                }
                flow
            } else {
                *this.opened = true;
                let now = Instant::now();
                let flow = this.adapter.open(&mut Io::new(now, socket.replies(), this.work));
                *this.armed = rearm(this.timer.as_mut(), false, true, this.keepalive, this.adapter);
                flow
            };
            if let Flow::Close(reason) = flow {
                let goodbye = this.adapter.goodbye(reason, &mut Io::new(Instant::now(), socket.replies(), this.work));
                // Pending work (and the processes it runs) goes with the session.
                *this.work = None;
                this.adapter.leave();
                if let Stage::Open(socket) = std::mem::replace(this.stage, Stage::Moving) {
                    let outbox = this.adapter.outbox();
                    *this.stage = Stage::Closing(socket.close(goodbye.frame, outbox, goodbye.discard_backlog));
                }
            }
        }
    }
}

/// Gives one wake-up to the keep-alive record or the adapter.
fn handle<A: Adapter>(
    wake: Wake<A::Done>,
    adapter: &mut A,
    keepalive: &mut KeepAlive,
    io: &mut Io<'_, A::Done>,
) -> Flow {
    let now = io.now;
    match wake {
        Wake::Socket(Event::Message(msg)) => match msg {
            Message::Text(text) => {
                keepalive.seen(now);
                adapter.on_data(Data::Text(text), io)
            }
            Message::Binary(bytes) => {
                keepalive.seen(now);
                adapter.on_data(Data::Binary(bytes), io)
            }
            Message::Ping(payload) => {
                keepalive.seen(now);
                io.reply(ws::encode_pong(&payload));
                Flow::Continue
            }
            Message::Pong(payload) => {
                keepalive.seen(now);
                keepalive.pong(&payload);
                Flow::Continue
            }
            Message::Close(frame) => Flow::Close(CloseReason::ClientClosed(frame)),
        },
        Wake::Socket(Event::Violation(e)) => Flow::Close(CloseReason::Violation(e)),
        Wake::Socket(Event::Gone) => Flow::Close(CloseReason::Gone),
        Wake::Socket(Event::CloseRequested(request)) => Flow::Close(request.into()),
        Wake::Done(done) => adapter.on_done(done, io),
        Wake::Timer => on_timer(adapter, keepalive, io),
    }
}

/// Waits for the socket, finished work or the timer, in that order of priority.
fn poll_wake<T, A>(
    cx: &mut Context<'_>,
    socket: &mut T,
    adapter: &A,
    work: &mut Option<Box<JoinSet<A::Done>>>,
    timer: Pin<&mut Sleep>,
    armed: bool,
) -> Poll<Wake<A::Done>>
where
    T: Transport,
    A: Adapter,
{
    if let Poll::Ready(event) = socket.poll_event(cx, adapter.outbox(), adapter.ready()) {
        return Poll::Ready(Wake::Socket(event));
    }
    if let Some(set) = work.as_mut() {
        while let Poll::Ready(Some(joined)) = set.poll_join_next(cx) {
            // Work only fails by panicking; whatever waited for it then stays undecided.
            if let Ok(done) = joined {
                return Poll::Ready(Wake::Done(done));
            }
        }
    }
    if armed && timer.poll(cx).is_ready() {
        return Poll::Ready(Wake::Timer);
    }
    Poll::Pending
}

/// The timer fired: the adapter's deadline first, then keep-alive.
fn on_timer<A: Adapter>(adapter: &mut A, keepalive: &mut KeepAlive, io: &mut Io<'_, A::Done>) -> Flow {
    if adapter.deadline().is_some_and(|at| at <= io.now)
        && let Flow::Close(reason) = adapter.on_deadline(io)
    {
        return Flow::Close(reason);
    }
    match keepalive.tick(io.now) {
        Tick::Wait => Flow::Continue,
        Tick::Ping => {
            let probe = match keepalive.plan() {
                Plan::Fixed { .. } => ws::encode_ping(&keepalive.payload()),
                Plan::Off | Plan::Silence { .. } => adapter.probe(),
            };
            io.reply(probe);
            Flow::Continue
        }
        Tick::Expired => Flow::Close(CloseReason::Unresponsive),
    }
}

/// Points the timer at the earliest deadline. It is moved only when it fired or something
/// became due earlier: traffic that pushes keep-alive later does not touch the timer wheel.
fn rearm<A: Adapter>(timer: Pin<&mut Sleep>, armed: bool, fired: bool, keepalive: &KeepAlive, adapter: &A) -> bool {
    let due = match (keepalive.deadline(), adapter.deadline()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match due {
        None => false,
        Some(at) if fired || !armed || at < timer.deadline() => {
            timer.reset(at);
            true
        }
        Some(_) => true,
    }
}
