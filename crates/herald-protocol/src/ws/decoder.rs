//! The frame decoder: turns the bytes a peer sent into whole messages, enforcing RFC 6455 §5
//! as early as the bytes allow. It never owns the read buffer.

use bytes::{Buf as _, BytesMut};

use super::head::{self, FIN, LEN_16, LEN_64, LEN7, MASKED, MAX_CONTROL_PAYLOAD, OPCODE, RSV};
use super::utf8::Utf8Validator;
use super::{Message, OpCode, WsError, close, mask};

/// Size limits of a [`Decoder`]. Both are checked against the length a frame header declares,
/// before any of its payload is buffered, and exceeding either is [`WsError::MessageTooBig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    /// The largest message, counting all of its fragments together.
    pub max_message_size: usize,
    /// The largest single frame payload.
    pub max_frame_size: usize,
}

impl Default for DecoderConfig {
    /// 1 MiB for both limits: far above any Pusher or WAMP message herald expects, and small
    /// enough that one connection cannot pin much memory. Autobahn case 9 needs up to 16 MiB.
    fn default() -> Self {
        Self { max_message_size: 1 << 20, max_frame_size: 1 << 20 }
    }
}

/// Which side of the connection the decoder sits on; it decides which masking is required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Decodes client frames, which MUST be masked (§5.1).
    Server,
    /// Decodes server frames, which MUST NOT be masked (§5.1).
    Client,
}

/// Whether the decoder can still deliver messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Frames are being decoded.
    Open,
    /// A Close frame was delivered; anything the peer sends after it is discarded (§5.5.1).
    Closed,
    /// The peer violated the protocol; every later call returns this error again.
    Failed(WsError),
}

/// The header of the frame at the front of the caller's buffer, parsed and validated.
#[derive(Clone, Copy, Debug)]
struct FrameHead {
    /// This is the last frame of its message.
    fin: bool,
    /// What the frame carries.
    opcode: OpCode,
    /// The masking key, present exactly when the role requires one.
    mask: Option<[u8; 4]>,
    /// Bytes of header before the payload (2 to 14).
    header_len: u8,
    /// Declared payload length, already checked against the configured limits (which fit in
    /// 32 bits).
    payload_len: u32,
}

impl FrameHead {
    fn header_len(&self) -> usize {
        usize::from(self.header_len)
    }

    fn payload_len(&self) -> usize {
        self.payload_len as usize
    }
}

/// A frame whose header has been read but whose payload is not all in the buffer yet. Keeping
/// it lets each call unmask and validate only the bytes that arrived since the previous one.
#[derive(Clone, Copy, Debug)]
struct PendingFrame {
    /// The parsed header; its bytes are still at the front of the buffer.
    head: FrameHead,
    /// Payload bytes already unmasked in place (and validated, for text).
    processed: u32,
    /// The payload belongs to a text message and is fed to the UTF-8 validator.
    text: bool,
}

/// A data message whose first fragment has arrived but whose final fragment has not.
#[derive(Debug)]
struct OpenMessage {
    /// Whether the message started with a Text frame.
    text: bool,
    /// The unmasked payload of the fragments received so far.
    payload: BytesMut,
}

/// Decodes the frames a peer sends into [`Message`]s (RFC 6455 §5).
///
/// One decoder per connection, for its whole life. [`Decoder::new`] decodes what clients send
/// (masked frames); [`Decoder::new_client`] decodes what servers send (unmasked frames), for
/// tests and the load generator.
///
/// The decoder keeps state only across the pieces of one message: the header of a frame whose
/// payload is still arriving (a few integers) and the body of an unfinished fragmented message
/// (the one heap allocation it may own). Between messages it owns no heap memory.
///
/// Every connection holds one for its whole life, so its fields are kept small: limits and
/// lengths in 32 bits (frames above 4 GiB are refused), and the rare fragmented message boxed.
#[derive(Debug)]
pub struct Decoder {
    /// Masked (server) or unmasked (client) input.
    role: Role,
    /// The largest single frame payload.
    max_frame: u32,
    /// The largest message, counting all of its fragments together.
    max_message: u32,
    /// Open, closed by a Close frame, or failed.
    phase: Phase,
    /// The frame at the front of the buffer, once its header is complete.
    pending: Option<PendingFrame>,
    /// The fragmented data message in progress, if any.
    message: Option<Box<OpenMessage>>,
    /// UTF-8 state of the text message in progress; reset by every Text frame.
    utf8: Utf8Validator,
}

impl Decoder {
    /// A decoder for the server side: it accepts only masked frames.
    pub fn new(config: DecoderConfig) -> Self {
        Self::with_role(Role::Server, config)
    }

    /// A decoder for the client side: it accepts only unmasked frames.
    pub fn new_client(config: DecoderConfig) -> Self {
        Self::with_role(Role::Client, config)
    }

    /// The constructor behind both roles.
    fn with_role(role: Role, config: DecoderConfig) -> Self {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            role,
            max_frame: clamp(config.max_frame_size),
            max_message: clamp(config.max_message_size),
            phase: Phase::Open,
            pending: None,
            message: None,
            utf8: Utf8Validator::new(),
        }
    }

    /// Consumes complete frames from the front of `buf` and returns the next complete message.
    ///
    /// `buf` holds the peer's bytes exactly as read from the socket: it may end in the middle
    /// of a frame, hold several frames, or hold a frame split anywhere. Pass the same buffer on
    /// every call, appending newly read bytes at its end. Control frames (Ping, Pong, Close)
    /// are returned as soon as they are complete, even between the fragments of a data
    /// message. After a Close message the decoder discards everything else the peer sends
    /// (clearing `buf`) and returns `Ok(None)`.
    ///
    /// # Memory contract
    ///
    /// The caller owns the read buffer and decides its size; the decoder never grows it. When
    /// this returns `Ok(None)`, the bytes of an incomplete frame are left in `buf` (their
    /// payload may already be unmasked in place, which the next call accounts for). A complete
    /// unfragmented frame is not copied: its bytes are split off `buf`, unmasked in place and
    /// frozen, so the returned [`Message`] shares `buf`'s allocation. Only the fragments of a
    /// fragmented message are copied, into the one buffer the decoder owns until the message
    /// is finished.
    ///
    /// To hold nothing while a connection is idle, the socket task reads into an empty
    /// `BytesMut` (reserving a few KiB only once the socket is readable), calls `decode` until
    /// it returns `Ok(None)`, and then, if `buf.is_empty()`, replaces `buf` with
    /// `BytesMut::new()`. Messages already handed out keep their bytes alive on their own.
    ///
    /// # Errors
    ///
    /// Any [`WsError`]: the peer broke the protocol, and the connection must be failed with a
    /// Close frame carrying [`WsError::close_code`]. Errors are reported as soon as the bytes
    /// in `buf` prove them (a header error before the payload arrives, invalid UTF-8 before the
    /// frame ends). The decoder is then spent: every later call returns the same error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WsError> {
        match self.phase {
            Phase::Failed(err) => return Err(err),
            Phase::Closed => {
                buf.clear();
                return Ok(None);
            }
            Phase::Open => {}
        }
        match self.decode_open(buf) {
            Err(err) => {
                self.phase = Phase::Failed(err);
                self.drop_state();
                Err(err)
            }
            Ok(Some(Message::Close(frame))) => {
                self.phase = Phase::Closed;
                self.drop_state();
                Ok(Some(Message::Close(frame)))
            }
            other => other,
        }
    }

    /// Releases the partial message and frame state once the decoder will not decode again.
    fn drop_state(&mut self) {
        self.pending = None;
        self.message = None;
    }

    /// Decodes frames until one completes a message or the buffer runs out.
    fn decode_open(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WsError> {
        loop {
            let mut pending = match self.pending {
                Some(pending) => pending,
                None => match self.read_head(buf)? {
                    Some(pending) => pending,
                    None => return Ok(None),
                },
            };
            let head = pending.head;
            // The header was complete when it was parsed and the caller only appends, so this
            // fails only if the caller swapped buffers; waiting is the answer that cannot panic.
            let Some(after_header) = buf.len().checked_sub(head.header_len()) else {
                self.pending = Some(pending);
                return Ok(None);
            };
            let arrived = after_header.min(head.payload_len());
            let processed = pending.processed as usize;
            if arrived > processed {
                // Unmask and validate only what is new since the last call, so a payload that
                // trickles in is processed once, and invalid UTF-8 fails before the frame ends.
                let fresh = &mut buf[head.header_len() + processed..head.header_len() + arrived];
                if let Some(key) = head.mask {
                    mask::apply(fresh, key, processed);
                }
                if pending.text && !self.utf8.feed(fresh) {
                    return Err(WsError::InvalidUtf8);
                }
                // At most `payload_len`, which is a u32.
                pending.processed = u32::try_from(arrived).unwrap_or(head.payload_len);
            }
            if arrived < head.payload_len() {
                self.pending = Some(pending);
                return Ok(None);
            }
            self.pending = None;
            buf.advance(head.header_len());
            let payload = buf.split_to(head.payload_len());
            if let Some(message) = self.finish_frame(head, payload)? {
                return Ok(Some(message));
            }
            // A non-final fragment was stored; the next frame may already be in `buf`.
        }
    }

    /// Parses and validates the header at the front of `buf`, or returns `Ok(None)` if it is
    /// not complete yet.
    ///
    /// The checks run in order of the bytes they need (first byte, second byte, extended
    /// length, masking key). Whichever way the input is split into reads, the same first
    /// violation is reported, and it is reported as soon as the bytes that prove it arrive.
    fn read_head(&mut self, buf: &[u8]) -> Result<Option<PendingFrame>, WsError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        if first & RSV != 0 {
            return Err(WsError::ReservedBits);
        }
        let opcode = OpCode::from_bits(first & OPCODE).ok_or(WsError::ReservedOpcode)?;
        let fin = first & FIN != 0;
        let open_text = self.message.as_ref().map(|m| m.text);
        match (opcode, open_text) {
            (OpCode::Close | OpCode::Ping | OpCode::Pong, _) if !fin => {
                return Err(WsError::FragmentedControl);
            }
            (OpCode::Continuation, None) => return Err(WsError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => return Err(WsError::ExpectedContinuation),
            _ => {}
        }

        let Some(&second) = buf.get(1) else {
            return Ok(None);
        };
        let masked = second & MASKED != 0;
        match (self.role, masked) {
            (Role::Server, false) => return Err(WsError::Unmasked),
            (Role::Client, true) => return Err(WsError::Masked),
            _ => {}
        }
        let len7 = second & LEN7;
        if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(WsError::ControlTooLong);
        }

        let (declared, mut header_len): (u64, u8) = match len7 {
            LEN_16 => match head::array_at::<2>(buf, 2) {
                Some(bytes) => (u64::from(u16::from_be_bytes(bytes)), 4),
                None => return Ok(None),
            },
            LEN_64 => match head::array_at::<8>(buf, 2) {
                Some(bytes) => (u64::from_be_bytes(bytes), 10),
                None => return Ok(None),
            },
            short => (u64::from(short), 2),
        };
        if declared >> 63 != 0 {
            return Err(WsError::LengthOverflow);
        }
        let payload_len = self.check_size(opcode, declared)?;

        let mask = if masked {
            let Some(key) = head::array_at::<4>(buf, usize::from(header_len)) else {
                return Ok(None);
            };
            header_len += 4;
            Some(key)
        } else {
            None
        };

        let text = match opcode {
            OpCode::Text => {
                self.utf8 = Utf8Validator::new();
                true
            }
            OpCode::Continuation => open_text == Some(true),
            _ => false,
        };
        let head = FrameHead { fin, opcode, mask, header_len, payload_len };
        Ok(Some(PendingFrame { head, processed: 0, text }))
    }

    /// Checks a declared payload length against the limits before anything is buffered.
    fn check_size(&self, opcode: OpCode, declared: u64) -> Result<u32, WsError> {
        let len = u32::try_from(declared).map_err(|_| WsError::MessageTooBig)?;
        if len > self.max_frame {
            return Err(WsError::MessageTooBig);
        }
        if !opcode.is_control() {
            let held = self.message.as_ref().map_or(0, |m| m.payload.len());
            if held.saturating_add(len as usize) > self.max_message as usize {
                return Err(WsError::MessageTooBig);
            }
        }
        Ok(len)
    }

    /// Turns a complete, unmasked frame payload into a message, or stores it as a fragment.
    fn finish_frame(&mut self, head: FrameHead, payload: BytesMut) -> Result<Option<Message>, WsError> {
        match head.opcode {
            OpCode::Ping => Ok(Some(Message::Ping(payload.freeze()))),
            OpCode::Pong => Ok(Some(Message::Pong(payload.freeze()))),
            OpCode::Close => close::parse(&payload).map(|frame| Some(Message::Close(frame))),
            OpCode::Text | OpCode::Binary => {
                let text = head.opcode == OpCode::Text;
                if head.fin {
                    self.complete(text, payload).map(Some)
                } else {
                    // The first fragment is kept without copying; later ones are appended.
                    self.message = Some(Box::new(OpenMessage { text, payload }));
                    Ok(None)
                }
            }
            OpCode::Continuation => {
                let Some(message) = self.message.as_mut() else {
                    return Err(WsError::UnexpectedContinuation);
                };
                message.payload.extend_from_slice(&payload);
                if !head.fin {
                    return Ok(None);
                }
                match self.message.take().map(|m| *m) {
                    Some(OpenMessage { text, payload }) => self.complete(text, payload).map(Some),
                    None => Err(WsError::UnexpectedContinuation),
                }
            }
        }
    }

    /// Delivers a finished data message, checking that a text message ends on a code point.
    fn complete(&self, text: bool, payload: BytesMut) -> Result<Message, WsError> {
        if !text {
            return Ok(Message::Binary(payload.freeze()));
        }
        if !self.utf8.is_complete() {
            return Err(WsError::InvalidUtf8);
        }
        Ok(Message::Text(payload.freeze()))
    }
}

#[cfg(test)]
mod tests;
