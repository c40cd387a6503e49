//! Handing a queue (or pipe) to another process: by fd or name in an
//! environment variable, with the child's lanes taken before its `exec`.

use super::*;

impl Queue {
    /// Attaches an anonymous queue from its memfd (received over a Unix
    /// socket, say). The fd must be sealed against shrinking and growing, as
    /// [`Builder::create`] leaves it.
    ///
    /// # Errors
    /// [`OpenError::NotSealed`], then as [`Queue::open`].
    pub fn from_fd(fd: OwnedFd) -> Result<Queue, OpenError> {
        Queue::from_segment(Segment::from_fd(fd)?)
    }

    /// Arranges for `cmd`'s process to receive this queue: the environment
    /// variable `var` tells the child where to find it, and the child calls
    /// [`Queue::from_env`] with the same name. An anonymous queue's memfd is
    /// inherited across `exec` (only by this child); a named queue is found by
    /// its name.
    ///
    /// ```no_run
    /// let q = shmq::Queue::builder().create()?;
    /// let mut cmd = std::process::Command::new("worker");
    /// q.inherit_into(&mut cmd, "JOBS");
    /// let child = cmd.spawn()?;
    /// // in `worker`:  let q = shmq::Queue::from_env("JOBS")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inherit_into(&self, cmd: &mut Command, var: &str) {
        inherit_handles(&self.shared, cmd, var, "", vec![(0, ROLE_QUEUE)]);
    }

    /// Attaches the queue a parent passed with [`Queue::inherit_into`].
    ///
    /// # Errors
    /// [`OpenError::InvalidConfig`] if `var` is unset or malformed; then as
    /// [`Queue::from_fd`] or [`Queue::open`].
    pub fn from_env(var: &str) -> Result<Queue, OpenError> {
        let (seg, _, lock) = segment_from_env(var)?;
        let q = Queue::from_segment(seg)?;
        adopt_handoff(&q.shared, lock);
        Ok(q)
    }
}

/// Arranges for `cmd`'s process to find `shared`'s segment through `var`
/// (see [`Queue::inherit_into`]); `suffix` is appended to the value (a pipe
/// end). The child counts from its start as holding a handle of each
/// `(ring, role)` in `roles`: before its `exec` it takes those lanes, with
/// their locks on a description opened now and inherited (`;lock=D` in the
/// value), and gives them up when it attaches (`from_env`). So a parent
/// that drops its own handles right after spawning does not make the other
/// side see the end before the child attached. The lanes die with the child,
/// or when the parent drops `cmd` if the child never attaches and has
/// exited.
pub(crate) fn inherit_handles(
    shared: &Arc<Shared>,
    cmd: &mut Command,
    var: &str,
    suffix: &str,
    roles: Vec<(u16, u64)>,
) {
    let seg = &shared.seg;
    let seg_fd = seg.as_raw_fd();
    let place = match seg.name() {
        Some(name) => format!("name:{name}"),
        None => format!("fd:{seg_fd}"),
    };
    let anon = seg.name().is_none();
    // An anonymous segment travels as its fd: if the program closed it (or
    // its number is another file's now), the spawn fails with EBADF.
    let gone = anon && seg.fd_checked().is_none();
    let handoff = proc::open_description(seg.file_id(), seg_fd, seg.name()).ok();
    let lock = handoff
        .as_ref()
        .map_or(String::new(), |d| format!(";lock={}", d.as_raw_fd()));
    cmd.env(var, format!("{place}{suffix}{lock}"));
    let shared = shared.clone();
    // SAFETY: the closure runs in the forked child before exec. It makes
    // async-signal-safe calls only (fcntl, getpid, sched_yield in the
    // lanes' spin lock) and atomic operations on the shared mapping, which
    // the child inherited; it allocates nothing (everything it uses was
    // made here, in the parent; an error is an OS error code, and
    // `join_handoff` never falls back to recovery, which would allocate). The fds it names
    // were inherited open (fork copies the table). The closure owns the
    // hand-off description: the parent's copy closes when `cmd` drops.
    unsafe {
        cmd.pre_exec(move || {
            if gone {
                return Err(std::io::Error::from_raw_os_error(nix::libc::EBADF));
            }
            if anon {
                segment::clear_cloexec(seg_fd)?;
            }
            if let Some(d) = &handoff {
                segment::clear_cloexec(d.as_raw_fd())?;
                let pid = nix::libc::getpid() as u32;
                for &(k, role) in &roles {
                    let _ = shared.ring(k).join_handoff(role, pid, d.as_raw_fd());
                }
            }
            Ok(())
        });
    }
}

/// Attaches the segment named by `var` (`name:NAME` or `fd:N`, then an
/// optional `@K`, returned as `K`, then an optional `;lock=D`, the hand-off
/// description of `inherit_handles`, returned as `D` once checked to be a
/// description of the same file).
pub(crate) fn segment_from_env(
    var: &str,
) -> Result<(Segment, Option<u16>, Option<OwnedFd>), OpenError> {
    let val = std::env::var(var)
        .map_err(|_| OpenError::InvalidConfig(format!("environment variable {var} is not set")))?;
    let bad = || OpenError::InvalidConfig(format!("{var}={val:?} is not fd:N or name:NAME"));
    let (rest, lock) = match val.split_once(";lock=") {
        Some((r, d)) => (r, Some(d.parse::<i32>().map_err(|_| bad())?)),
        None => (val.as_str(), None),
    };
    let (place, end) = match rest.split_once('@') {
        Some((p, k)) => (p, Some(k.parse().map_err(|_| bad())?)),
        None => (rest, None),
    };
    let seg = if let Some(name) = place.strip_prefix("name:") {
        Segment::open_named(name, false)?
    } else {
        let fd = place
            .strip_prefix("fd:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?;
        Segment::from_fd(segment::dup_inherited(fd)?)?
    };
    // Only an inherited description (not close-on-exec: the parent's copy
    // is) of this very file is ours to unlock and close.
    let lock = lock.filter(|&d| {
        // SAFETY: F_GETFD only reads the fd's flags; a closed fd fails.
        let flags = unsafe { nix::libc::fcntl(d, nix::libc::F_GETFD) };
        flags >= 0 && flags & nix::libc::FD_CLOEXEC == 0 && seg.file_id().names(d)
    });
    // SAFETY: an open fd (fstat succeeded) of our segment's file, passed to
    // us by the parent to take over; nothing else in this process uses it.
    let lock = lock.map(|d| unsafe { OwnedFd::from_raw_fd(d) });
    Ok((seg, end, lock))
}

/// After a child attached with its own handles: gives up the lanes its
/// parent had it take before `exec` (see [`inherit_handles`]).
pub(crate) fn adopt_handoff(shared: &Shared, lock: Option<OwnedFd>) {
    if let Some(d) = lock {
        let pid = proc::pid();
        for k in 0..shared.seg.spec().rings {
            shared.ring(k).adopt_handoff(pid, d.as_raw_fd());
        }
    }
}
