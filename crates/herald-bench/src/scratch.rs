//! The per-thread read buffer every generator connection of a thread reads into, so that an
//! idle connection holds none of its own.

use std::cell::RefCell;

/// Size of the per-thread read scratch buffer: large enough to drain a burst of coalesced
/// frames in one system call.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// Runs `f` on this thread's read scratch buffer (never across an `.await`: every connection
/// of the thread shares it).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH_BUF.with_borrow_mut(|scratch| f(scratch))
}
