//! Relay buffers for unshaped connections. Every direction starts with a small buffer; the
//! first read that fills it shows the sender is ahead of the proxy (a bulk transfer), and the
//! direction switches to a large one, so each read then takes everything the socket has
//! queued and each write passes it on whole. Fewer, larger calls cost less CPU per byte and
//! wake both peers less often: on loopback, iperf3 through the proxy ran at 19.4-20.3 Gbit/s
//! with a 2 MiB buffer against 18.2-19.1 with a fixed 256 KiB one, same listening ports,
//! alternating (see README, proxy benchmark). A connection that carries small messages never
//! holds more than the small buffer.
//!
//! Idle large buffers are kept for the next connection, so connections that come and go do not
//! allocate and fault in fresh memory each time, and the proxy holds at most [`MAX_LARGE`] large
//! buffers (in use or idle, 64 MiB at the default 2 MiB); bulk directions beyond that keep their
//! small buffer and still relay every byte, only with more system calls.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// What every direction starts with.
pub(super) const SMALL: usize = 64 * 1024;
/// Idle large buffers kept for reuse (the rest are freed when their connection ends).
const KEEP_IDLE: usize = 8;
/// Large buffers that may exist at once, in use or idle.
pub(super) const MAX_LARGE: usize = 32;

/// The proxy's large buffers: the idle ones, and how many exist.
pub(super) struct BufferPool {
    size: usize,
    state: Mutex<PoolState>,
}

struct PoolState {
    idle: Vec<Vec<u8>>,
    /// Large buffers that exist now, idle ones included.
    live: usize,
}

impl BufferPool {
    /// A pool of buffers of `size` bytes (at least [`SMALL`]).
    pub(super) fn new(size: usize) -> BufferPool {
        BufferPool {
            size: size.max(SMALL),
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                live: 0,
            }),
        }
    }

    /// An idle large buffer, or a new one; `None` when [`MAX_LARGE`] exist already, in which
    /// case the caller carries on with its small buffer.
    fn take(&self) -> Option<Vec<u8>> {
        let mut state = self.state.lock().expect("buffer pool lock");
        if let Some(b) = state.idle.pop() {
            return Some(b);
        }
        if state.live >= MAX_LARGE {
            return None;
        }
        state.live += 1;
        // Zeroed by the allocator (calloc): pages become resident as reads write them.
        Some(vec![0; self.size])
    }

    fn give_back(&self, buffer: Vec<u8>) {
        let mut state = self.state.lock().expect("buffer pool lock");
        if state.idle.len() < KEEP_IDLE {
            state.idle.push(buffer);
        } else {
            state.live -= 1;
        }
    }

    /// How many large buffers are idle, and how many exist.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let state = self.state.lock().expect("buffer pool lock");
        (state.idle.len(), state.live)
    }
}

/// One direction's buffer: small until [`RelayBuffer::grow_if_full`], then large. A large
/// buffer goes back to the pool when the direction ends, however it ends.
pub(super) struct RelayBuffer<'a> {
    buf: Vec<u8>,
    large: bool,
    pool: &'a BufferPool,
}

impl<'a> RelayBuffer<'a> {
    pub(super) fn new(pool: &'a BufferPool) -> RelayBuffer<'a> {
        RelayBuffer {
            buf: vec![0; SMALL],
            large: false,
            pool,
        }
    }

    /// Switches to a large buffer after a read of `read` bytes filled the small one. Returns
    /// whether it switched.
    pub(super) fn grow_if_full(&mut self, read: usize) -> bool {
        if self.large || read < self.buf.len() {
            return false;
        }
        if let Some(large) = self.pool.take() {
            self.buf = large;
            self.large = true;
        }
        self.large
    }
}

impl Deref for RelayBuffer<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl DerefMut for RelayBuffer<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl Drop for RelayBuffer<'_> {
    fn drop(&mut self) {
        if self.large {
            self.pool.give_back(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_once_on_a_full_read_and_returns_the_large_buffer() {
        let pool = BufferPool::new(1 << 20);
        {
            let mut buf = RelayBuffer::new(&pool);
            assert_eq!(buf.len(), SMALL);
            assert!(
                !buf.grow_if_full(SMALL - 1),
                "a partial read keeps the small buffer"
            );
            assert_eq!(buf.len(), SMALL);
            assert!(buf.grow_if_full(SMALL));
            assert_eq!(buf.len(), 1 << 20);
            buf[(1 << 20) - 1] = 7;
            assert!(!buf.grow_if_full(1 << 20), "grows once");
        }
        assert_eq!(
            pool.counts(),
            (1, 1),
            "the large buffer went back to the pool"
        );
        let mut again = RelayBuffer::new(&pool);
        assert!(again.grow_if_full(SMALL));
        assert_eq!(pool.counts(), (0, 1), "the next bulk direction reuses it");
    }

    #[test]
    fn keeps_a_bounded_number_of_idle_buffers() {
        let pool = BufferPool::new(SMALL);
        let mut many: Vec<_> = (0..KEEP_IDLE + 3)
            .map(|_| RelayBuffer::new(&pool))
            .collect();
        for b in &mut many {
            assert!(b.grow_if_full(SMALL));
        }
        assert_eq!(pool.counts(), (0, KEEP_IDLE + 3));
        drop(many);
        assert_eq!(pool.counts(), (KEEP_IDLE, KEEP_IDLE));
    }

    #[test]
    fn at_most_max_large_exist_and_the_rest_stay_small() {
        let pool = BufferPool::new(SMALL);
        let mut many: Vec<_> = (0..MAX_LARGE + 5)
            .map(|_| RelayBuffer::new(&pool))
            .collect();
        let grown = many
            .iter_mut()
            .map(|b| b.grow_if_full(SMALL))
            .filter(|&g| g)
            .count();
        assert_eq!(grown, MAX_LARGE);
        assert!(many[MAX_LARGE..].iter().all(|b| b.len() == SMALL));
        assert_eq!(pool.counts(), (0, MAX_LARGE));
        // One ends: its buffer is reused by a direction that could not grow before.
        many.swap_remove(0);
        assert_eq!(pool.counts(), (1, MAX_LARGE));
        assert!(many[MAX_LARGE].grow_if_full(SMALL));
        assert_eq!(pool.counts(), (0, MAX_LARGE));
    }
}
