//! The bound on request bodies being read at once, across every API connection of the process.
//!
//! One body is at most the app's body limit (≈ 409 KiB with the defaults), but a client that
//! knows an app's public key can open many connections and send bodies slowly, each within the
//! 10 s body timeout. Without a process-wide bound, RSS would grow with the number of such
//! connections; with it, a request that does not fit waits for no one and is answered 503.
//!
//! Bodies that declare at most [`SMALL_BODY`] bytes (every ordinary publish: event data is at
//! most 10 KiB by default) are not counted, so a flood of large bodies cannot lock out the
//! ordinary publishers; those are bounded per connection like request headers are.

use tokio::sync::{Semaphore, SemaphorePermit};

/// Bytes of request bodies herald reads at once, in KiB (64 MiB).
const BUDGET_KIB: usize = 64 * 1024;
/// Bodies declaring at most this many bytes are read without a reservation.
pub(crate) const SMALL_BODY: usize = 64 * 1024;

static BUDGET: Semaphore = Semaphore::const_new(BUDGET_KIB);

/// A share of the body budget, returned on drop.
#[derive(Debug)]
pub(crate) struct BodyPermit(#[allow(dead_code)] SemaphorePermit<'static>);

/// The body budget is spent: too many large bodies are being read right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spent;

/// Reserves room for a body of at most `bytes` (`None` when the body is small and needs none).
///
/// # Errors
/// [`Spent`] when the budget cannot hold it.
pub(crate) fn reserve(bytes: usize) -> Result<Option<BodyPermit>, Spent> {
    if bytes <= SMALL_BODY {
        return Ok(None);
    }
    let kib = u32::try_from(bytes.div_ceil(1024).min(BUDGET_KIB)).map_err(|_| Spent)?;
    BUDGET.try_acquire_many(kib).map(|p| Some(BodyPermit(p))).map_err(|_| Spent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_returned_on_drop() {
        assert!(matches!(reserve(SMALL_BODY), Ok(None)), "small bodies need no reservation");
        let big = reserve(BUDGET_KIB * 1024).expect("the whole budget is free in a fresh process");
        assert!(big.is_some());
        assert_eq!(reserve(SMALL_BODY + 1).unwrap_err(), Spent, "nothing left while the budget is held");
        assert!(matches!(reserve(100), Ok(None)), "small bodies still pass");
        drop(big);
        assert!(matches!(reserve(SMALL_BODY + 1), Ok(Some(_))));
    }
}
