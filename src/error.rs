//! Error types: one for sending, one for receiving, one for creating or
//! attaching a segment. Each variant says what the caller can do about it.

/// Why a message was not sent. Nothing was written to the queue in any case.
///
/// `send` returns `Closed`, `TooLarge` or `Disconnected`; `try_send`
/// returns `Full` instead of `Disconnected`; `send_timeout` adds `Timeout`.
/// Any of them may return `TooManyHandles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No room right now (byte capacity or `maxsize` reached). Retry later, or
    /// use `send`/`send_timeout` to wait for room.
    #[error("queue is full")]
    Full,
    /// The deadline passed while the queue stayed full.
    #[error("timed out waiting for room in the queue")]
    Timeout,
    /// The queue was closed: it will never accept a message again.
    #[error("the queue or pipe is closed: nothing more can be sent")]
    Closed,
    /// The message can never fit: larger than the queue's overflow area
    /// (create the queue with a larger `overflow_bytes`), or, on a queue made
    /// without one (`overflow_bytes(0)`), than half its ring.
    #[error("message of {len} bytes exceeds the largest this queue holds ({max} bytes): create it with a larger overflow_bytes, or split the message")]
    TooLarge {
        /// Length of the rejected message.
        len: usize,
        /// The largest message this queue accepts.
        max: usize,
    },
    /// A typed message could not be serialized (rkyv reported an error).
    #[error("message could not be serialized")]
    Serialize,
    /// This end of a one-way pipe only receives.
    #[error("this pipe end is read-only")]
    ReadOnly,
    /// The queue is full and nothing could ever make room: no `Receiver`
    /// and no `Queue` handle is left in any process (dropped, exited, or
    /// killed). A blocking send reports it instead of waiting for room that
    /// will never come; while any process holds the `Queue` it waits, as
    /// Python's `put` does. Detected at the call, at once when the last
    /// handle drops, within about 100 ms of the last holder's death (see
    /// `docs/DESIGN.md`, "Dead peers"). A named queue opened again
    /// reconnects.
    #[error("queue is full and no receiver is left")]
    Disconnected,
    /// This process has no lane of the queue for this role (sending,
    /// receiving) and none of the queue's 256 is free: they are held by
    /// other processes (each holds one per role it uses, however many
    /// handles it has; up to 8 while that many of its threads are inside
    /// an operation at once). Drop the handles of some processes, or let
    /// dead ones be reaped, and retry.
    #[error(
        "no lane of this queue is free for this process (256 lanes, one per process and role)"
    )]
    TooManyHandles,
    /// This process has no fd to spare (`RLIMIT_NOFILE`, often 1,024, or
    /// the system's limit): taking a lane takes one for a moment, to lock
    /// its liveness byte. Close some files or raise the
    /// limit (`ulimit -n`), and retry.
    #[error("too many open files: a new handle needs one fd for a moment (close some files or raise RLIMIT_NOFILE)")]
    TooManyOpenFiles,
    /// A new handle cannot hold the liveness lock of its lane: the queue's
    /// file cannot be opened again (an anonymous queue needs `/proc`
    /// mounted: use a named queue, or keep the fd the queue was created
    /// with open; a named one needs write access), or the process may map
    /// no more (`vm.max_map_count`). Handles that already have their lane
    /// work on.
    #[error("cannot lock a lane of this queue: its file cannot be opened again (anonymous queues need /proc and the queue's fd left open; named ones need write access)")]
    LivenessUnavailable,
    /// No memory for a message larger than half the ring: the queue's
    /// overflow area has no free run that large now (`area_full`: receive
    /// some messages, or create the queue with a larger `overflow_bytes`),
    /// or the system has no memory for its pages (the machine's available
    /// memory, the cgroup's `memory.max`, or `/dev/shm`'s size for a named
    /// queue). Nothing was sent, and nothing sent before is lost.
    #[error("no memory for a message of {len} bytes: {}", if *area_full {
        "the queue's overflow area has no free room that large (receive some messages, or create the queue with a larger overflow_bytes)"
    } else {
        "the system has none available (machine, cgroup, or /dev/shm)"
    })]
    OutOfMemory {
        /// Length of the message.
        len: usize,
        /// Whether the overflow area was full (else the system's memory).
        area_full: bool,
    },
}

/// Why a batch send stopped early: the first `sent` messages of the batch
/// were sent, the next one failed with `error`, and the rest were not tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("batch stopped after {sent} messages")]
pub struct BatchError {
    /// Messages sent (a prefix of the batch).
    pub sent: usize,
    /// Why the next one was not.
    #[source]
    pub error: SendError,
}

impl BatchError {
    /// A batch that could not start: nothing sent.
    pub(crate) fn unstarted(error: SendError) -> Self {
        BatchError { sent: 0, error }
    }
}

/// Why no message was received.
///
/// `recv` returns `Closed`, `Disconnected` or `Corrupted`; `try_recv`
/// returns `Empty` instead of `Disconnected`; `recv_timeout` adds `Timeout`.
/// Any of them may return `TooManyHandles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing to receive right now. Retry later, or use `recv` to wait.
    #[error("queue is empty")]
    Empty,
    /// The deadline passed while the queue stayed empty.
    #[error("timed out waiting for a message")]
    Timeout,
    /// The queue is closed and every message sent before `close` has been
    /// received: the end of the stream. This replaces a sentinel value.
    #[error("the queue or pipe is closed and drained")]
    Closed,
    /// The next record in shared memory is impossible (a length past the
    /// ring, say): a peer wrote garbage. Nothing was read; the queue cannot
    /// be trusted any more.
    #[error("queue segment is corrupted: {0}")]
    Corrupted(&'static str),
    /// A typed message failed validation: its bytes are not a valid archive
    /// of the expected type (a buggy or hostile peer, or a sender of another
    /// type through the byte API). The message was taken and dropped; the
    /// queue itself is fine and the next message can be received.
    #[error("message is not a valid archive of the expected type")]
    Invalid,
    /// This end of a one-way pipe only sends.
    #[error("this pipe end is write-only")]
    WriteOnly,
    /// The queue is empty and nothing could ever send: no `Sender` and no
    /// `Queue` handle is left in any process (dropped, exited, or killed
    /// without `close`); for a pipe, the other end is gone (Python's
    /// `EOFError`). A blocking receive reports it instead of waiting
    /// forever; while any process holds the `Queue` it waits, as Python's
    /// `get` does, so keep only the `Receiver` to learn of it. Detected at
    /// the call, at once when the last handle drops, within about 100 ms of
    /// the last holder's death (see `docs/DESIGN.md`, "Dead peers"). A
    /// named queue opened again reconnects. `try_recv` never reports it.
    #[error("queue is empty and no sender is left")]
    Disconnected,
    /// This process has no lane of the queue for this role (sending,
    /// receiving) and none of the queue's 256 is free: they are held by
    /// other processes (each holds one per role it uses, however many
    /// handles it has; up to 8 while that many of its threads are inside
    /// an operation at once). Drop the handles of some processes, or let
    /// dead ones be reaped, and retry.
    #[error(
        "no lane of this queue is free for this process (256 lanes, one per process and role)"
    )]
    TooManyHandles,
    /// As [`SendError::TooManyOpenFiles`].
    #[error("too many open files: a new handle needs one fd for a moment (close some files or raise RLIMIT_NOFILE)")]
    TooManyOpenFiles,
    /// As [`SendError::LivenessUnavailable`].
    #[error("cannot lock a lane of this queue: its file cannot be opened again (anonymous queues need /proc and the queue's fd left open; named ones need write access)")]
    LivenessUnavailable,
}

impl SendError {
    /// The error for a handle that got no lane.
    pub(crate) fn from_join(e: crate::ring::JoinError) -> Self {
        use crate::ring::JoinError;
        use crate::sync::HoldError;
        match e {
            JoinError::Full => SendError::TooManyHandles,
            JoinError::Lock(HoldError::NoFds) => SendError::TooManyOpenFiles,
            JoinError::Lock(_) => SendError::LivenessUnavailable,
        }
    }
}

impl RecvError {
    /// The error for a handle that got no lane.
    pub(crate) fn from_join(e: crate::ring::JoinError) -> Self {
        match SendError::from_join(e) {
            SendError::TooManyHandles => RecvError::TooManyHandles,
            SendError::TooManyOpenFiles => RecvError::TooManyOpenFiles,
            _ => RecvError::LivenessUnavailable,
        }
    }
}

/// Why a queue could not be created or attached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A builder setting is out of range; the message says which and why.
    #[error("invalid queue configuration: {0}")]
    InvalidConfig(String),
    /// The name is not a valid queue name (see [`crate::Builder::create_named`]).
    #[error("invalid queue name {name:?}: {why}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `create_named`: a segment of that name exists already. Open it, or
    /// remove it with [`crate::Queue::unlink`] if it is stale.
    #[error("a shared-memory segment named {0:?} already exists")]
    AlreadyExists(String),
    /// `open`: no segment of that name exists.
    #[error("no shared-memory segment named {0:?}")]
    NotFound(String),
    /// The segment does not start with shmq's magic number: it is not a
    /// queue (or it has been overwritten).
    #[error("not a shmq segment (magic {found:#018x})")]
    NotAQueue {
        /// The first eight bytes found.
        found: u64,
    },
    /// A shmq segment of another layout version: attach with the shmq
    /// version that created it.
    #[error("shmq layout version {found}, this library reads version {expected}")]
    VersionMismatch {
        /// Version in the segment.
        found: u32,
        /// Version this library implements.
        expected: u32,
    },
    /// The creator has not finished initialising the segment (or died
    /// before it did). Retry shortly; if it persists the segment is stale.
    #[error("segment is not initialised yet")]
    NotInitialized,
    /// The segment is smaller than its header says it must be.
    #[error("segment is truncated: {size} bytes, expected {expected}")]
    Truncated {
        /// Actual size of the file.
        size: u64,
        /// Size the header (or the minimum header) requires.
        expected: u64,
    },
    /// Header fields contradict each other; the text names the field.
    #[error("segment header is inconsistent: {0}")]
    Corrupted(String),
    /// The segment is a shmq segment of another kind (a pipe opened as a
    /// queue, or the reverse).
    #[error("segment is a {found}, not a {expected}")]
    KindMismatch {
        /// What the caller asked for.
        expected: &'static str,
        /// What the segment is.
        found: &'static str,
    },
    /// A typed queue was opened as another message type, or a queue of bytes
    /// as a typed one (see `Queue::typed`).
    #[error("queue carries {}, not {expected}", found.as_deref().unwrap_or("untyped bytes"))]
    TypeMismatch {
        /// The type asked for.
        expected: String,
        /// The type the queue was created for (`None`: created untyped).
        found: Option<String>,
    },
    /// A file descriptor passed as an anonymous queue is not a sealed memfd:
    /// a peer could shrink it and crash every process that maps it.
    #[error("file descriptor is not a sealed memfd (seals {seals:#x})")]
    NotSealed {
        /// The seals found (`F_GET_SEALS`), or -1 if the fd cannot be sealed.
        seals: i32,
    },
    /// `open`: the named segment belongs to another user, who could feed
    /// this process messages or truncate the segment under it (SIGBUS). If
    /// you trust that user, attach with [`crate::Queue::open_trusted`].
    #[error("segment is owned by uid {owner}, not by this process's uid {me}; use Queue::open_trusted if you trust that user")]
    ForeignOwner {
        /// The segment's owner.
        owner: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// `create_named`: `/dev/shm` has no room for the segment's pages
    /// (Docker's default is 64 MiB). Nothing was left behind: use a smaller
    /// `capacity_bytes`, free room there, or an anonymous queue.
    #[error("no room in /dev/shm for a segment of {needed} bytes")]
    NoSpace {
        /// Bytes the segment needs.
        needed: u64,
    },
    /// An operating-system call failed; `op` names it.
    #[error("{op} failed")]
    Os {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl OpenError {
    pub(crate) fn os(op: &'static str, e: impl Into<std::io::Error>) -> Self {
        OpenError::Os {
            op,
            source: e.into(),
        }
    }
}

/// Why a child process could not be started, or did not succeed
/// ([`crate::process`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// [`crate::process::init`] was not called: without it the child would
    /// run `main` from the top instead of the function.
    #[error("call shmq::process::init() as the first line of main before starting processes")]
    NotInitialized,
    /// The function cannot be run in a child (it is in a shared library, or
    /// `/proc/self` cannot be read); the message says which.
    #[error("cannot start a process for this function: {0}")]
    Unsupported(String),
    /// The child ended without success: a non-zero exit code, a signal, or
    /// [`crate::process::EXIT_NOT_STARTED`] if its arguments did not attach
    /// (its stderr says why).
    #[error("child process {pid} failed: {status}")]
    Failed {
        /// The child's process id.
        pid: u32,
        /// How it ended.
        status: std::process::ExitStatus,
    },
    /// `join_timeout` gave up; the child still runs.
    #[error("child process {pid} still runs")]
    Timeout {
        /// The child's process id.
        pid: u32,
    },
    /// Starting the process, or creating its queues, failed.
    #[error("starting a process failed")]
    Io(#[from] std::io::Error),
    /// A queue for the processes (a pool's) could not be made.
    #[error("making a pool's queues failed")]
    Open(#[from] OpenError),
}

/// Why a [`crate::process::Pool`] task gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The function panicked in the worker; the panic's message.
    #[error("the task panicked: {0}")]
    Panicked(String),
    /// The worker process died while it ran the task (it was killed, or
    /// the function exited the process). The pool started another worker.
    #[error("worker process {pid} died running the task ({status})")]
    WorkerDied {
        /// The dead worker's process id.
        pid: u32,
        /// How it ended.
        status: String,
    },
    /// `get_timeout`'s time passed first.
    #[error("timed out waiting for the task's result")]
    Timeout,
    /// The pool was terminated (or dropped) before the task finished.
    #[error("the pool was terminated before the task finished")]
    Terminated,
    /// The pool was closed: it takes no more tasks.
    #[error("the pool is closed: it takes no more tasks")]
    Closed,
    /// The task's argument or result is larger than a message of the
    /// pool's queues can be; make the pool with a larger
    /// `capacity_bytes` (`Pool::with_capacity_bytes`).
    #[error("{what} of {len} bytes exceeds the largest message of the pool's queues ({max} bytes); use Pool::with_capacity_bytes")]
    TooLarge {
        /// `"argument"` or `"result"`.
        what: &'static str,
        /// Its size, serialized.
        len: usize,
        /// The largest message the pool's queues hold.
        max: usize,
    },
    /// The task could not run: the function cannot be run in a worker, its
    /// argument or result did not serialize or validate, or no worker
    /// could be started; the message says which.
    #[error("the task could not run: {0}")]
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    /// An error with a cause says itself in `Display` and its cause in
    /// `source`, never both (a reporter that walks the chain would print
    /// the cause twice).
    #[test]
    fn display_does_not_repeat_the_source() {
        let os = OpenError::os("ftruncate", std::io::Error::from_raw_os_error(28));
        let batch = BatchError {
            sent: 3,
            error: SendError::Closed,
        };
        let io = ProcessError::Io(std::io::Error::from_raw_os_error(2));
        let open = ProcessError::Open(OpenError::InvalidConfig("x".into()));
        let all: [&dyn Error; 4] = [&os, &batch, &io, &open];
        for e in all {
            let cause = e.source().expect("a cause").to_string();
            assert!(
                !e.to_string().contains(&cause),
                "{e} repeats its source {cause:?}"
            );
        }
    }
}
