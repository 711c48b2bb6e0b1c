//! Coalescing queued frames into one vectored write: a queue of encoded frames that reads as
//! one [`Buf`] with a slice per frame.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// The frames waiting to be written to one socket, presented as a single [`Buf`].
///
/// One `write()` per delivered frame costs more CPU than everything else in the fan-out path,
/// so the socket task pushes every frame that is already queued for it (each a shared,
/// pre-encoded `Bytes`) and writes them together:
///
/// ```ignore
/// let mut batch = WriteBatch::new();
/// batch.push(first);
/// while batch.frames() < 64 {
///     let Ok(frame) = outbox.try_recv() else { break };
///     batch.push(frame);
/// }
/// socket.write_all_buf(&mut batch).await?; // one writev per call when the socket supports it
/// ```
///
/// [`Buf::chunks_vectored`] yields one `IoSlice` per frame, with no copy, and [`Buf::advance`]
/// handles partial writes that end inside a frame. A drained batch frees its queue, so a
/// connection that is not writing holds no heap memory here.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// Frames not yet fully written, oldest first; the front one may be partly written.
    frames: VecDeque<Bytes>,
    /// Total unwritten bytes across `frames`.
    remaining: usize,
}

impl WriteBatch {
    /// An empty batch; it allocates only when the first frame is pushed.
    pub const fn new() -> Self {
        Self {
            frames: VecDeque::new(),
            remaining: 0,
        }
    }

    /// Queues a frame behind the ones already in the batch. Empty frames are skipped.
    pub fn push(&mut self, frame: Bytes) {
        if frame.is_empty() {
            return;
        }
        self.remaining += frame.len();
        self.frames.push_back(frame);
    }

    /// The number of frames not yet fully written.
    pub fn frames(&self) -> usize {
        self.frames.len()
    }

    /// Whether everything pushed has been written.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl Buf for WriteBatch {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.frames.front().map_or(&[], |frame| frame)
    }

    /// Drops `cnt` written bytes from the front. A count beyond what is queued drains the
    /// batch rather than panicking.
    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let Some(front) = self.frames.front_mut() else {
                break;
            };
            if cnt < front.len() {
                front.advance(cnt);
                self.remaining -= cnt;
                return;
            }
            cnt -= front.len();
            self.remaining -= front.len();
            self.frames.pop_front();
        }
        if self.frames.is_empty() {
            // Give the queue's allocation back so an idle connection owns nothing here.
            self.frames = VecDeque::new();
            self.remaining = 0;
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, frame) in dst.iter_mut().zip(&self.frames) {
            *slot = IoSlice::new(frame);
            filled += 1;
        }
        filled
    }
}
