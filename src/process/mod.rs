//! Starting processes: run a function in a child process with queues and
//! pipes handed to it, like Python's `Process(target=f, args=(q,))`.
//!
//! [`spawn`] runs this program again (the very file this process runs,
//! through `/proc/self/exe`, even if its path was since replaced) and has
//! the child call `f(args)` instead of the rest of `main`. For that,
//! [`init`] must be the first line of `main`: in a child it runs the
//! function and exits with what it returned; in the parent it returns at
//! once. Queues, typed queues, pipe ends and plain values travel as
//! arguments (see [`Pass`]); the child gets its own handles, attached
//! before `f` starts.
//!
//! ```no_run
//! use shmq::{process, Queue};
//!
//! fn consumer(q: Queue) -> Result<(), shmq::RecvError> {
//!     for msg in &q.receiver() {
//!         println!("{} bytes", msg.len());
//!     }
//!     Ok(())
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     process::init(); // first: a child runs `consumer` here and exits
//!     let q = Queue::builder().maxsize(1024).create()?;
//!     let mut child = process::spawn(consumer, &q)?;
//!     q.sender().send(b"hello")?;
//!     q.close();
//!     child.join()?; // Err if the child failed
//!     Ok(())
//! }
//! ```
//!
//! # How the function is found
//!
//! A function pointer is meaningless in another process, but its distance
//! from a function of this crate is the same in every run of one
//! executable file. The parent passes that distance, the child adds it to
//! its own address of the same function. Two checks make this sound: the
//! child runs the same file (`/proc/self/exe` is executed, and the child
//! compares the file's device and inode with what the parent saw before it
//! jumps), and the function lies in the same mapped file as this crate
//! (the parent checks `/proc/self/maps`; a function in a shared library is
//! refused with [`ProcessError::Unsupported`]). This is what the
//! `procspawn` crate does; shmq does it without serde or sockets, and
//! refuses where `procspawn` asks you to promise.
//!
//! # The fork recipe
//!
//! Handles survive `fork`: a child made by `fork` may use every queue its
//! parent had (each handle takes a fresh lane in the child on first use).
//! But after `fork` only the forking thread exists in the child, so a lock
//! another thread held stays locked for ever: fork only from a program
//! with a single thread, or call only async-signal-safe functions in the
//! child before `exec`. [`spawn`] has no such limit.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let q = shmq::Queue::builder().create()?;
//! // SAFETY (of this recipe): this program has one thread here.
//! match unsafe { nix::unistd::fork() }? {
//!     nix::unistd::ForkResult::Child => {
//!         q.sender().send(b"from the child")?;
//!         std::process::exit(0);
//!     }
//!     nix::unistd::ForkResult::Parent { child } => {
//!         println!("{:?}", &*q.receiver().recv()?);
//!         nix::sys::wait::waitpid(child, None)?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod pass;
pub(crate) mod pool;

pub use crate::error::ProcessError;
pub use crate::error::TaskError;
pub use pass::{Attach, Handoff, Pass, Receive};
pub use pool::{AsyncResult, ImapUnordered, Pool};

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, ExitStatus, Termination};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable that tells a child which function to run.
const CALL_VAR: &str = "SHMQ_PROCESS_CALL";
/// Exit status of a child that could not start its function (its
/// arguments did not attach, or the call was malformed).
pub const EXIT_NOT_STARTED: u8 = 120;

/// Set by [`init`]; [`spawn`] refuses without it (the child would run
/// `main` from the top, and spawn again).
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// The first line of `main` in a program that uses [`spawn`] or a
/// [`Pool`]. In a child started by them it runs the child's function and
/// exits with its result; otherwise it returns at once.
///
/// Anything `main` does before `init` is done again in every child.
pub fn init() {
    INITIALIZED.store(true, Ordering::SeqCst);
    let Some(call) = std::env::var_os(CALL_VAR) else {
        return;
    };
    // Grandchildren must not see it (a child may spawn in turn).
    std::env::remove_var(CALL_VAR);
    // SAFETY: getauxval only reads the process's auxiliary vector.
    if unsafe { nix::libc::getauxval(nix::libc::AT_SECURE) } != 0 {
        // A set-uid or set-gid program (or one with file capabilities):
        // its environment is whoever ran it's to choose, so a call named
        // there is not the program's own. Refuse, before anything runs.
        eprintln!(
            "shmq: refusing to run a function named in the environment of a \
             set-uid/set-gid process (AT_SECURE)"
        );
        std::process::exit(EXIT_NOT_STARTED.into());
    }
    let code = match Call::parse(&call) {
        Ok(c) => c.run(),
        Err(why) => {
            eprintln!("shmq: this process was started to run a function, but {why}");
            ExitCode::from(EXIT_NOT_STARTED)
        }
    };
    // `ExitCode` has no stable way out of the process but `main`'s return;
    // find its number (the codes `Termination` makes are few).
    let n = (0..=255u8)
        .find(|&n| ExitCode::from(n) == code)
        .unwrap_or(1);
    std::process::exit(n.into())
}

/// Starts a child process that runs `f(args)` (see the module docs) and
/// returns at once. `args` is a value, a reference to a queue, typed queue
/// or pipe end, or a tuple of those; `f` receives the child's own copy
/// (see [`Pass`]). The child inherits stdin, stdout, stderr and the
/// environment; it exits with what `f` returns (`Ok(())` or `()`: 0,
/// `Err(e)`: 1 after printing `e`, a panic: 101).
///
/// # Errors
/// [`ProcessError::NotInitialized`] if [`init`] was not called;
/// [`ProcessError::Unsupported`] if `f` is not in the executable that holds
/// this crate (a shared library) or `/proc/self` cannot be read;
/// [`ProcessError::Io`] if the process could not be started.
pub fn spawn<A, R>(f: fn(A::Received) -> R, args: A) -> Result<Child, ProcessError>
where
    A: Pass,
    R: Termination,
{
    spawn_call(
        trampoline::<A::Received, R> as fn(usize) -> ExitCode,
        f as usize,
        &args,
    )
}

/// Starts a child that calls `trampoline(fn_addr)` with `args` handed over.
fn spawn_call<A: Pass>(
    trampoline: fn(usize) -> ExitCode,
    f: usize,
    args: &A,
) -> Result<Child, ProcessError> {
    if !INITIALIZED.load(Ordering::SeqCst) {
        return Err(ProcessError::NotInitialized);
    }
    let image = Image::get()?;
    let (tramp_off, f_off) = (image.offset(trampoline as usize)?, image.offset(f)?);
    let mut cmd = Command::new("/proc/self/exe");
    if let Some(arg0) = std::env::args_os().next() {
        cmd.arg0(arg0);
    }
    let call = format!("1:{}:{}:{tramp_off}:{f_off}", image.dev, image.ino);
    cmd.env(CALL_VAR, call);
    args.pass(&mut Handoff::new(&mut cmd));
    let child = cmd.spawn()?;
    Ok(Child {
        pid: child.id(),
        child,
        status: None,
    })
}

/// What the child runs: attaches `A`, calls the function at `f`, reports.
fn trampoline<A: Receive, R: Termination>(f: usize) -> ExitCode {
    // SAFETY: `f` is the address of a `fn(A) -> R` in this same executable
    // file: `spawn` took it from one of that type, made it an offset from
    // `anchor` in its image, and `Call::run` checked that this process runs
    // the same file before adding the offset back to our `anchor`.
    let f: fn(A) -> R = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    match A::receive(&mut Attach::new()) {
        Ok(args) => f(args).report(),
        Err(e) => {
            eprintln!("shmq: child process could not attach its arguments: {e}");
            ExitCode::from(EXIT_NOT_STARTED)
        }
    }
}

/// The function addresses are measured from: any function of this crate
/// that the linker keeps.
#[inline(never)]
fn anchor() -> usize {
    anchor as fn() -> usize as usize
}

/// The executable file this process runs, and where it is mapped.
struct Image {
    dev: u64,
    ino: u64,
    /// Address ranges mapped from that file.
    ranges: Vec<(usize, usize)>,
}

impl Image {
    /// Read once: a file's mappings do not move.
    fn get() -> Result<&'static Image, ProcessError> {
        static IMAGE: OnceLock<Result<Image, String>> = OnceLock::new();
        IMAGE
            .get_or_init(Image::read)
            .as_ref()
            .map_err(|why| ProcessError::Unsupported(why.clone()))
    }

    fn read() -> Result<Image, String> {
        let meta = std::fs::metadata("/proc/self/exe")
            .map_err(|e| format!("cannot stat /proc/self/exe: {e}"))?;
        let maps = std::fs::read_to_string("/proc/self/maps")
            .map_err(|e| format!("cannot read /proc/self/maps: {e}"))?;
        let at = anchor();
        // The file (device and inode fields) that holds `anchor`...
        let file = maps_lines(&maps)
            .find(|&(lo, hi, ..)| (lo..hi).contains(&at))
            .map(|(.., dev, ino)| (dev, ino))
            .ok_or("this crate's code is in no mapping of /proc/self/maps")?;
        // ...and every executable range mapped from it (code only: an
        // offset into its data is never a function).
        let ranges = maps_lines(&maps)
            .filter(|&(_, _, perms, dev, ino)| (dev, ino) == file && perms.contains('x'))
            .map(|(lo, hi, ..)| (lo, hi))
            .collect();
        Ok(Image {
            dev: meta.dev(),
            ino: meta.ino(),
            ranges,
        })
    }

    /// `addr`'s distance from `anchor`, if it lies in this image.
    fn offset(&self, addr: usize) -> Result<isize, ProcessError> {
        if !self.ranges.iter().any(|&(lo, hi)| (lo..hi).contains(&addr)) {
            return Err(ProcessError::Unsupported(format!(
                "the function at {addr:#x} is not in the executable that holds shmq \
                 (a shared library?); spawn a function of the program itself"
            )));
        }
        Ok(addr.wrapping_sub(anchor()) as isize)
    }

    /// The address `offset` from `anchor`, if it lies in this image.
    fn resolve(&self, offset: isize) -> Option<usize> {
        let addr = anchor().wrapping_add(offset as usize);
        self.ranges
            .iter()
            .any(|&(lo, hi)| (lo..hi).contains(&addr))
            .then_some(addr)
    }
}

/// `(start, end, permissions, device, inode)` of each file mapping in
/// `/proc/self/maps`.
fn maps_lines(maps: &str) -> impl Iterator<Item = (usize, usize, &str, &str, &str)> {
    maps.lines().filter_map(|line| {
        let mut f = line.split_ascii_whitespace();
        let (range, perms, _off, dev, ino) =
            (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        let (lo, hi) = range.split_once('-')?;
        let lo = usize::from_str_radix(lo, 16).ok()?;
        let hi = usize::from_str_radix(hi, 16).ok()?;
        (ino != "0").then_some((lo, hi, perms, dev, ino))
    })
}

/// The call a child was started for: `1:DEV:INO:TRAMPOLINE:FN`.
struct Call {
    dev: u64,
    ino: u64,
    trampoline: isize,
    f: isize,
}

impl Call {
    fn parse(s: &OsString) -> Result<Call, String> {
        let bad = || format!("{CALL_VAR}={s:?} is malformed");
        let s = s.to_str().ok_or_else(bad)?;
        let mut parts = s.split(':');
        if parts.next() != Some("1") {
            return Err(bad());
        }
        let mut num = || {
            parts
                .next()
                .and_then(|p| p.parse::<i128>().ok())
                .ok_or_else(bad)
        };
        let (dev, ino, trampoline, f) = (num()?, num()?, num()?, num()?);
        Ok(Call {
            dev: u64::try_from(dev).map_err(|_| bad())?,
            ino: u64::try_from(ino).map_err(|_| bad())?,
            trampoline: isize::try_from(trampoline).map_err(|_| bad())?,
            f: isize::try_from(f).map_err(|_| bad())?,
        })
    }

    fn run(self) -> ExitCode {
        match std::fs::metadata("/proc/self/exe") {
            Ok(m) if (m.dev(), m.ino()) == (self.dev, self.ino) => {}
            Ok(_) => {
                eprintln!("shmq: refusing to run a function of another executable file");
                return ExitCode::from(EXIT_NOT_STARTED);
            }
            Err(e) => {
                eprintln!("shmq: cannot check which file this process runs: {e}");
                return ExitCode::from(EXIT_NOT_STARTED);
            }
        }
        let image = match Image::get() {
            Ok(i) => i,
            Err(e) => {
                eprintln!("shmq: {e}");
                return ExitCode::from(EXIT_NOT_STARTED);
            }
        };
        let (Some(t), Some(f)) = (image.resolve(self.trampoline), image.resolve(self.f)) else {
            eprintln!("shmq: refusing a call whose code offsets lie outside this program's code");
            return ExitCode::from(EXIT_NOT_STARTED);
        };
        // SAFETY: this process runs the same file as the parent that
        // measured these offsets (checked above), and both land in that
        // file's executable mappings, so `t` is the `trampoline::<A, R>`
        // (a `fn(usize) -> ExitCode`) the parent named, and `f` its `fn`.
        // (Whoever sets our environment could name other code of this
        // file: the environment is trusted as the program's own, which
        // `init` enforces for set-uid programs; see SECURITY.md.)
        let t: fn(usize) -> ExitCode =
            unsafe { std::mem::transmute::<usize, fn(usize) -> ExitCode>(t) };
        t(f)
    }
}

/// A child process started by [`spawn`]: wait for it, check how it ended,
/// stop it. Dropping a `Child` neither waits for nor stops the process.
#[derive(Debug)]
pub struct Child {
    child: std::process::Child,
    pid: u32,
    status: Option<ExitStatus>,
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the child to end; `Ok` if it succeeded (Python's `join`
    /// then `exitcode == 0`).
    ///
    /// # Errors
    /// [`ProcessError::Failed`] with its exit status if it failed, was
    /// killed or could not start its function; [`ProcessError::Io`] if
    /// waiting failed.
    pub fn join(&mut self) -> Result<(), ProcessError> {
        let status = self.wait()?;
        self.check(status)
    }

    /// As [`Child::join`], giving up after `timeout`
    /// ([`ProcessError::Timeout`]; the child goes on).
    ///
    /// # Errors
    /// As [`Child::join`], and [`ProcessError::Timeout`].
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<(), ProcessError> {
        match self.wait_timeout(timeout)? {
            Some(status) => self.check(status),
            None => Err(ProcessError::Timeout { pid: self.pid }),
        }
    }

    fn check(&self, status: ExitStatus) -> Result<(), ProcessError> {
        if status.success() {
            Ok(())
        } else {
            Err(ProcessError::Failed {
                pid: self.pid,
                status,
            })
        }
    }

    /// Waits for the child to end and returns its exit status.
    ///
    /// # Errors
    /// As [`std::process::Child::wait`].
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let s = self.child.wait()?;
        self.status = Some(s);
        Ok(s)
    }

    /// Waits at most `timeout`; `None` if the child still runs.
    ///
    /// # Errors
    /// As [`std::process::Child::try_wait`].
    pub fn wait_timeout(&mut self, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_micros(50);
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(nap.min(deadline - now));
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    /// The exit status if the child has ended, without waiting.
    ///
    /// # Errors
    /// As [`std::process::Child::try_wait`].
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Whether the child still runs (Python's `is_alive`).
    pub fn is_alive(&mut self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// Asks the child to stop (SIGTERM, Python's `terminate`); does not wait.
    ///
    /// # Errors
    /// If the signal could not be sent; none once the child has been waited for.
    pub fn terminate(&mut self) -> std::io::Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).map_err(std::io::Error::from)
    }

    /// Stops the child at once (SIGKILL, Python's `kill`); does not wait.
    ///
    /// # Errors
    /// As [`std::process::Child::kill`].
    pub fn kill(&mut self) -> std::io::Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        self.child.kill()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing(_: ()) {}

    #[test]
    fn spawn_refuses_without_init() {
        // The unit-test binary's `main` is libtest's: `init` never ran, and a
        // child would run the tests again instead of `nothing`.
        assert!(matches!(
            spawn(nothing, ()),
            Err(ProcessError::NotInitialized)
        ));
    }

    #[test]
    fn handles_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Pool>();
        send_sync::<AsyncResult<u64>>();
        send::<Child>();
        send::<ImapUnordered<u64>>();
    }

    #[test]
    fn calls_parse_or_say_why() {
        let ok = Call::parse(&OsString::from("1:66306:1234:-4096:8192")).unwrap();
        assert_eq!(
            (ok.dev, ok.ino, ok.trampoline, ok.f),
            (66306, 1234, -4096, 8192)
        );
        for bad in ["", "2:1:2:3:4", "1:1:2:3", "1:x:2:3:4", "1:-1:2:3:4"] {
            let why = Call::parse(&OsString::from(bad)).err().unwrap();
            assert!(why.contains("malformed"), "{bad:?}: {why}");
        }
    }

    #[test]
    fn only_this_image_resolves() {
        let image = Image::get().unwrap();
        let off = image.offset(anchor as fn() -> usize as usize).unwrap();
        assert_eq!(off, 0);
        assert_eq!(image.resolve(0), Some(anchor()));
        let stack = &off as *const isize as usize;
        assert!(
            image.offset(stack).is_err(),
            "a stack address is no function of ours"
        );
        assert!(image.resolve(isize::MAX / 2).is_none());
    }
}
