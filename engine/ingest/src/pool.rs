//! Reused byte buffers for frames whose rows must be repacked.
//!
//! GStreamer pads RGB rows to a multiple of 4 bytes; when `width * 3` is not a multiple of
//! 4 the frame is copied once, row by row, into a [`PooledBytes`]. When the last holder of
//! a frame drops it, the buffer goes back to its pool, so a warmed-up camera allocates no
//! pixel memory per frame.

use crossbeam_channel::{Receiver, Sender};

/// A pool of byte buffers (bounded: extra buffers are freed, never queued without limit).
#[derive(Debug, Clone)]
pub struct BytePool {
    free_tx: Sender<Vec<u8>>,
    free_rx: Receiver<Vec<u8>>,
}

impl BytePool {
    /// A pool keeping at most `capacity` idle buffers.
    pub fn new(capacity: usize) -> Self {
        let (free_tx, free_rx) = crossbeam_channel::bounded(capacity.max(1));
        BytePool { free_tx, free_rx }
    }

    /// A buffer of exactly `len` bytes (contents unspecified), reused when possible.
    pub fn take(&self, len: usize) -> PooledBytes {
        let mut data = self.free_rx.try_recv().unwrap_or_default();
        data.resize(len, 0);
        PooledBytes {
            data,
            home: self.free_tx.clone(),
        }
    }

    /// Idle buffers held.
    pub fn idle(&self) -> usize {
        self.free_rx.len()
    }
}

/// Bytes that return to their [`BytePool`] when dropped.
#[derive(Debug)]
pub struct PooledBytes {
    data: Vec<u8>,
    home: Sender<Vec<u8>>,
}

impl PooledBytes {
    /// The bytes, writable (before the frame is shared).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

impl AsRef<[u8]> for PooledBytes {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for PooledBytes {
    fn drop(&mut self) {
        // Pool full or gone: the buffer is simply freed.
        let _ = self.home.try_send(std::mem::take(&mut self.data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back() {
        let pool = BytePool::new(2);
        let mut a = pool.take(12);
        a.as_mut_slice()[0] = 7;
        let ptr = a.as_ref().as_ptr();
        drop(a);
        assert_eq!(pool.idle(), 1);
        let b = pool.take(12);
        assert_eq!(b.as_ref().as_ptr(), ptr);
        assert_eq!(b.as_ref().len(), 12);
        let c = pool.take(12);
        let d = pool.take(12);
        let e = pool.take(12);
        drop((b, c, d, e));
        assert_eq!(pool.idle(), 2);
    }
}
