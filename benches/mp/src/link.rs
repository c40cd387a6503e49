//! One end of a two-way link between two processes, for every mechanism the
//! latency benchmark compares: shmq (three wait policies), the two floors
//! (a bare cache line and a bare futex word), and the peers (a pipe and a
//! Unix socket carrying length-prefixed frames, ipc-channel).

use shmq::{Receiver, RecvError, Sender};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};

/// A two-way link end: `send` to the other process, `recv` from it.
pub trait Link {
    fn send(&mut self, msg: &[u8]);
    /// Receives one message into `buf`; returns its length.
    fn recv(&mut self, buf: &mut [u8]) -> usize;
    /// Receives one message and sends it back (the echo side of a ping-pong).
    fn echo(&mut self, buf: &mut [u8]) {
        let n = self.recv(buf);
        self.send(&buf[..n]);
    }
}

/// How a shmq link waits for the next message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// `try_recv` in a loop: never sleeps.
    Spin,
    /// `recv` with the default spin (128 tries), then the futex.
    Recv,
    /// `recv` with `set_spin_tries(0)`: every wait parks on the futex.
    Park,
}

pub struct Shmq {
    pub tx: Sender,
    pub rx: Receiver,
    pub wait: Wait,
}

impl Shmq {
    /// The two ends of a link over two fresh queues.
    pub fn pair(wait: Wait) -> (Shmq, Shmq) {
        let q = || {
            shmq::Queue::builder()
                .capacity_bytes(1 << 20)
                .create()
                .unwrap()
        };
        let (ab, ba) = (q(), q());
        let end = |tx: &shmq::Queue, rx: &shmq::Queue| {
            let mut rx = rx.receiver();
            if wait == Wait::Park {
                rx.set_wait_strategy(shmq::WaitStrategy::Spin(0));
            }
            Shmq {
                tx: tx.sender(),
                rx,
                wait,
            }
        };
        (end(&ab, &ba), end(&ba, &ab))
    }

    fn with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        loop {
            let r = match self.wait {
                Wait::Spin => self.rx.try_recv(),
                Wait::Recv | Wait::Park => self.rx.recv(),
            };
            match r {
                Ok(m) => return f(&m),
                Err(RecvError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
}

impl Link for Shmq {
    fn send(&mut self, msg: &[u8]) {
        self.tx.send(msg).unwrap();
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.with(|m| {
            buf[..m.len()].copy_from_slice(m);
            m.len()
        })
    }
    /// In place: the message is sent back straight from shared memory.
    fn echo(&mut self, _: &mut [u8]) {
        let tx = &self.tx;
        self.with(|m| tx.send(m).unwrap());
    }
}

/// A 32-bit word in shared memory that the two sides take turns to
/// increment: side A writes odd values, side B even ones. The message bytes
/// are ignored (a floor carries no payload).
pub struct Word {
    w: &'static AtomicU32,
    seq: u32,
    futex: bool,
}

impl Word {
    /// `futex`: wait with FUTEX_WAIT and wake with FUTEX_WAKE on every hand
    /// off (the floor for blocking latency); else spin on the cache line
    /// (the floor for spinning latency).
    pub fn pair(futex: bool) -> (Word, Word) {
        let p = crate::proc::shared_bytes(4096);
        // SAFETY: zeroed, aligned, shared memory that is never unmapped.
        let w: &'static AtomicU32 = unsafe { &*(p as *const AtomicU32) };
        let end = || Word { w, seq: 0, futex };
        (end(), end())
    }
}

impl Link for Word {
    fn send(&mut self, _: &[u8]) {
        self.seq = self.seq.wrapping_add(1);
        // Release/Acquire: the hand-off itself; nothing else to publish.
        self.w.store(self.seq, Ordering::Release);
        if self.futex {
            // SAFETY: a futex call on a valid aligned u32; no PRIVATE flag,
            // the word is shared between processes.
            unsafe {
                libc::syscall(libc::SYS_futex, self.w.as_ptr(), libc::FUTEX_WAKE, 1);
            }
        }
    }
    fn recv(&mut self, _: &mut [u8]) -> usize {
        let want = self.seq.wrapping_add(1);
        loop {
            let v = self.w.load(Ordering::Acquire);
            if v == want {
                break;
            }
            if self.futex {
                // SAFETY: as in `send`; returns at once if `*w != v`.
                unsafe {
                    libc::syscall(
                        libc::SYS_futex,
                        self.w.as_ptr(),
                        libc::FUTEX_WAIT,
                        v,
                        std::ptr::null::<libc::timespec>(),
                    );
                }
            } else {
                std::hint::spin_loop();
            }
        }
        self.seq = want;
        0
    }
}

/// Length-prefixed frames over a byte stream, as `multiprocessing`'s
/// `Connection` sends them: a 4-byte length, then the payload; one `write`
/// per frame, and the reader reads the length, then the payload.
pub struct Frames<R, W> {
    pub r: R,
    pub w: W,
    scratch: Vec<u8>,
}

/// The length that marks the end of a one-way stream.
pub const END: u32 = u32::MAX;

impl<R: Read, W: Write> Frames<R, W> {
    pub fn new(r: R, w: W) -> Self {
        Frames {
            r,
            w,
            scratch: Vec::new(),
        }
    }

    pub fn write_frame(&mut self, len: u32, msg: &[u8]) {
        self.scratch.clear();
        self.scratch.extend_from_slice(&len.to_le_bytes());
        self.scratch.extend_from_slice(msg);
        self.w.write_all(&self.scratch).unwrap();
        self.w.flush().unwrap();
    }

    /// The next frame into `buf`, or `None` at the end marker.
    pub fn read_frame(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mut len = [0u8; 4];
        self.r.read_exact(&mut len).unwrap();
        let len = u32::from_le_bytes(len);
        if len == END {
            return None;
        }
        self.r.read_exact(&mut buf[..len as usize]).unwrap();
        Some(len as usize)
    }
}

impl<R: Read, W: Write> Link for Frames<R, W> {
    fn send(&mut self, msg: &[u8]) {
        self.write_frame(msg.len() as u32, msg);
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.read_frame(buf).expect("unexpected end frame")
    }
}

/// A pipe: (read end, write end).
pub fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are fresh and owned by nobody else.
    unsafe {
        (
            File::from(OwnedFd::from_raw_fd(fds[0])),
            File::from(OwnedFd::from_raw_fd(fds[1])),
        )
    }
}

/// Two pipes, one per direction.
pub fn pipe_pair() -> (Frames<File, File>, Frames<File, File>) {
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    (Frames::new(r2, w1), Frames::new(r1, w2))
}

/// A connected pair of Unix stream sockets.
pub fn socket_pair() -> (
    Frames<UnixStream, UnixStream>,
    Frames<UnixStream, UnixStream>,
) {
    let (a, b) = UnixStream::pair().unwrap();
    let (a2, b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    (Frames::new(a, a2), Frames::new(b, b2))
}

/// ipc-channel's byte channels, one per direction.
pub struct Ipc {
    pub tx: ipc_channel::ipc::IpcBytesSender,
    pub rx: ipc_channel::ipc::IpcBytesReceiver,
}

impl Ipc {
    pub fn pair() -> (Ipc, Ipc) {
        let (t1, r1) = ipc_channel::ipc::bytes_channel().unwrap();
        let (t2, r2) = ipc_channel::ipc::bytes_channel().unwrap();
        (Ipc { tx: t1, rx: r2 }, Ipc { tx: t2, rx: r1 })
    }
}

impl Link for Ipc {
    fn send(&mut self, msg: &[u8]) {
        self.tx.send(msg).unwrap();
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let m = self.rx.recv().unwrap();
        buf[..m.len()].copy_from_slice(&m);
        m.len()
    }
}
