//! A snapshot of a queue's shared counters, for watchdogs and for people
//! looking at a queue that stopped moving.

use std::fmt;

/// The shared words of a queue, each loaded once (Relaxed), so fields may be
/// from slightly different instants while other processes run. Positions are
/// in 64-byte granules and count up forever (modulo 2^38); the ring slot of
/// position `p` is `p % (capacity / 64)`. Sequence numbers count messages
/// (modulo 2^25).
///
/// Reading it is cheap and never changes the queue. The [`Display`](fmt::Display)
/// form is one line meant for logs and failure reports:
///
/// ```
/// let q = shmq::Queue::builder().capacity_bytes(4096).create()?;
/// q.sender().send(b"hello")?;
/// let d = q.diagnostics();
/// assert_eq!((d.tail_seq, d.read_seq, d.queued()), (1, 0, 1));
/// println!("{d}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Diagnostics {
    /// Where the next record will be claimed.
    pub tail_pos: u64,
    /// Messages ever claimed by senders.
    pub tail_seq: u64,
    /// Whether the queue is closed.
    pub closed: bool,
    /// Where the next receive looks.
    pub read_pos: u64,
    /// Messages ever taken by receivers.
    pub read_seq: u64,
    /// Oldest position not yet reclaimed: `[head_pos, tail_pos)` is in use
    /// (taken-but-unreleased records lie in `[head_pos, read_pos)`).
    pub head_pos: u64,
    /// Receivers counted as sleeping (or about to): registered and not yet
    /// taken by a wake-up or left on their own.
    pub recv_waiters: u32,
    /// Senders counted as sleeping (or about to), as `recv_waiters`.
    pub send_waiters: u32,
    /// `FUTEX_WAKE` calls ever made for receivers (modulo 2^32): each
    /// takes every receiver counted at that moment.
    pub recv_wakes: u32,
    /// `FUTEX_WAKE` calls ever made for senders (modulo 2^32).
    pub send_wakes: u32,
    /// The raw descriptor word of the record at `read_pos`.
    pub desc_at_read: u64,
    /// The raw descriptor word of the record at `head_pos`.
    pub desc_at_head: u64,
    /// Sending lanes held (a process's senders share one, or up to 8; live,
    /// or dead and not yet reaped).
    pub senders: u32,
    /// Receiving lanes held (as `senders`).
    pub receivers: u32,
    /// Units (64 KiB each) of the segment's overflow area in use: messages
    /// larger than half the ring being sent, queued or held, and what dead
    /// processes left there not yet swept.
    pub overflow_units: u64,
    /// Lanes in use, by any process (live, or dead and not yet reaped),
    /// of [`Diagnostics::lanes_total`]: a process's first handle of a role
    /// takes one, and gets `TooManyHandles` when none is free.
    pub lanes_used: u32,
    /// Lanes the queue has (256).
    pub lanes_total: u32,
    /// Lanes whose liveness lock this process holds (one memory mapping
    /// each, no fd).
    pub lanes_here: u32,
    /// This process's limit on open fds (`RLIMIT_NOFILE`, soft; `u64::MAX`
    /// if none): a handle's first use needs one fd for a moment, and gets
    /// `TooManyOpenFiles` when none is left.
    pub fd_limit: u64,
}

impl Diagnostics {
    /// Messages sent and not yet taken, by this snapshot.
    pub fn queued(&self) -> u64 {
        crate::layout::seq_sub(self.tail_seq, self.read_seq)
    }
}

fn desc(f: &mut fmt::Formatter<'_>, w: u64) -> fmt::Result {
    use crate::layout::{
        Desc, ST_COMMITTED, ST_DONE, ST_EMPTY, ST_LEASED, ST_PADDING, ST_RETURNED, ST_SKIP,
        ST_TAKEN,
    };
    let d = Desc::unpack(w);
    let state = match d.state {
        ST_EMPTY => "empty",
        ST_COMMITTED => "committed",
        ST_PADDING => "padding",
        ST_DONE => "done",
        ST_SKIP => "skip",
        ST_TAKEN => "taken",
        ST_LEASED => "leased",
        ST_RETURNED => "returned",
        _ => "invalid",
    };
    write!(f, "{state}(lap {}, {} B", d.tag, d.len)?;
    if matches!(d.state, ST_TAKEN | ST_LEASED) {
        write!(f, ", lane {}", d.owner)?;
    } else if matches!(d.state, ST_COMMITTED | ST_RETURNED) && d.owner == crate::layout::KIND_EXT {
        f.write_str(", overflow")?;
    }
    f.write_str(")")
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tail {}#{}{} read {}#{} head {} queued {} | waiters recv {} send {} | wakes recv {} send {} | lanes send {} recv {} used {}/{} here {} | overflow units {} | at read: ",
            self.tail_pos,
            self.tail_seq,
            if self.closed { " closed" } else { "" },
            self.read_pos,
            self.read_seq,
            self.head_pos,
            self.queued(),
            self.recv_waiters,
            self.send_waiters,
            self.recv_wakes,
            self.send_wakes,
            self.senders,
            self.receivers,
            self.lanes_used,
            self.lanes_total,
            self.lanes_here,
            self.overflow_units,
        )?;
        desc(f, self.desc_at_read)?;
        f.write_str(", at head: ")?;
        desc(f, self.desc_at_head)
    }
}
