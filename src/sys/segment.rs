//! Shared-memory segments: creating, sealing, naming, validating, mapping.
//!
//! * Anonymous: `memfd_create(MFD_ALLOW_SEALING | MFD_CLOEXEC)`, sized, then
//!   sealed with `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL` so no holder of
//!   the fd can change its size under the others' mappings (which would turn
//!   their next access into SIGBUS). Whoever attaches a received fd checks the
//!   seals first.
//! * Named: POSIX shm, `shm_open(O_CREAT | O_EXCL | O_RDWR, 0600)`.
//!
//! Attaching never maps before it has checked, from a `pread` copy of the
//! header, that the file is a complete shmq segment of this version; after
//! mapping it re-reads the header through the mapping after an Acquire load of
//! `ready` and checks it again.

use crate::error::OpenError;
use crate::layout::*;
use crate::sync::Ordering;
use memmap2::{MmapOptions, MmapRaw};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::Mode;
use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use super::proc::FileId;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;

/// A mapped shmq segment.
pub(crate) struct Segment {
    map: MmapRaw,
    /// Closed on drop only if it still names `id`: a program that closed
    /// every fd may have given its number to another file.
    file: ManuallyDrop<File>,
    id: FileId,
    name: Option<String>,
    p: Params,
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: taken once, here; `file` is not used after.
        let file = unsafe { ManuallyDrop::take(&mut self.file) };
        if !self.id.names(file.as_raw_fd()) {
            // Not ours any more (the program closed it, and the number may
            // be another file's now): forget the number, close nothing.
            let _ = file.into_raw_fd();
        }
    }
}

/// What a validated header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Params {
    /// One ring's geometry.
    geo: Geometry,
    spec: Spec,
}

impl Params {
    /// Where the last ring ends.
    fn rings_end(&self) -> usize {
        self.geo.ring_len * self.spec.rings as usize
    }

    /// The overflow area, and where it starts (`None`: the segment has none).
    fn overflow(&self) -> Option<(usize, OverflowGeometry)> {
        let og = OverflowGeometry::new(
            self.spec.overflow,
            self.spec.backlog > 0,
            self.geo.granules,
            self.spec.rings,
        )?;
        (og.units > 0).then(|| (OverflowGeometry::start(self.rings_end()), og))
    }

    /// What is reserved at creation: every ring, or for an unbounded
    /// queue (whose records live in the overflow area) its header, control
    /// block and lanes only.
    fn reserved_len(&self) -> usize {
        if self.spec.backlog > 0 {
            self.geo.desc_off
        } else {
            self.rings_end()
        }
    }

    fn total_len(&self) -> usize {
        match self.overflow() {
            Some((off, og)) => off + og.len,
            None => self.rings_end(),
        }
    }
}

impl Segment {
    /// Creates an anonymous, sealed segment.
    pub(crate) fn create_anon(capacity: usize, spec: Spec) -> Result<Self, OpenError> {
        let p = check_config(capacity, spec)?;
        let fd = memfd_create(c"shmq", MFdFlags::MFD_ALLOW_SEALING | MFdFlags::MFD_CLOEXEC)
            .map_err(|e| OpenError::os("memfd_create", e))?;
        let file = File::from(fd);
        file.set_len(p.total_len() as u64)
            .map_err(|e| OpenError::os("ftruncate", e))?;
        // The rings' pages now (the overflow area's come with its messages).
        reserve(&file, p.reserved_len() as u64)?;
        let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
        fcntl(&file, FcntlArg::F_ADD_SEALS(seals))
            .map_err(|e| OpenError::os("fcntl(F_ADD_SEALS)", e))?;
        Segment::init(file, None, p)
    }

    /// Creates a named segment; fails if the name exists.
    pub(crate) fn create_named(
        name: &str,
        capacity: usize,
        spec: Spec,
        mode: u32,
    ) -> Result<Self, OpenError> {
        let p = check_config(capacity, spec)?;
        let name = shm_name(name)?;
        let flags =
            nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_EXCL | nix::fcntl::OFlag::O_RDWR;
        let fd = shm_open(name.as_str(), flags, Mode::from_bits_truncate(mode))
            .map_err(|e| shm_error("shm_open", e, &name, true))?;
        let file = File::from(fd);
        let len = p.total_len() as u64;
        let made = fchmod_exact(&file, mode)
            .and_then(|()| file.set_len(len).map_err(|e| OpenError::os("ftruncate", e)))
            .and_then(|()| reserve(&file, p.reserved_len() as u64))
            .and_then(|()| Segment::init(file, Some(name.clone()), p));
        if made.is_err() {
            // Do not leave a half-made segment behind under that name.
            let _ = shm_unlink(name.as_str());
        }
        made
    }

    /// Opens a named segment; unless `trust_others`, only one owned by this
    /// process's effective uid (another user could have made it to feed us
    /// messages, or truncate it under us).
    pub(crate) fn open_named(name: &str, trust_others: bool) -> Result<Self, OpenError> {
        let name = shm_name(name)?;
        let fd = shm_open(name.as_str(), nix::fcntl::OFlag::O_RDWR, Mode::empty())
            .map_err(|e| shm_error("shm_open", e, &name, false))?;
        let file = File::from(fd);
        if !trust_others {
            use std::os::unix::fs::MetadataExt;
            let owner = file
                .metadata()
                .map_err(|e| OpenError::os("fstat", e))?
                .uid();
            let me = nix::unistd::geteuid().as_raw();
            if owner != me {
                return Err(OpenError::ForeignOwner { owner, me });
            }
        }
        Segment::attach(file, Some(name))
    }

    /// Attaches an anonymous segment from a file descriptor, which must be a
    /// memfd sealed against shrinking and growing.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<Self, OpenError> {
        let need = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW;
        let seals = fcntl(&fd, FcntlArg::F_GET_SEALS).unwrap_or(-1);
        if seals < 0 || !SealFlag::from_bits_truncate(seals).contains(need) {
            return Err(OpenError::NotSealed { seals });
        }
        Segment::attach(File::from(fd), None)
    }

    /// Removes a name; the memory lives on while anything maps it.
    pub(crate) fn unlink(name: &str) -> Result<(), OpenError> {
        let name = shm_name(name)?;
        shm_unlink(name.as_str()).map_err(|e| shm_error("shm_unlink", e, &name, false))
    }

    fn init(file: File, name: Option<String>, p: Params) -> Result<Self, OpenError> {
        let (geo, spec) = (p.geo, p.spec);
        let map = map(&file, p.total_len())?;
        let hdr = map.as_mut_ptr().cast::<Header>();
        // SAFETY: the mapping is at least HEADER_LEN bytes, page aligned, and
        // nobody else can have attached yet (`ready` is still 0, and a named
        // segment was created with O_EXCL), so plain writes are unraced.
        unsafe {
            (*hdr).magic = MAGIC;
            (*hdr).version = VERSION;
            (*hdr).header_len = HEADER_LEN as u32;
            (*hdr).capacity = geo.capacity as u64;
            (*hdr).maxsize = spec.maxsize;
            (*hdr).granule = GRANULE as u32;
            (*hdr).desc_off = geo.desc_off as u64;
            (*hdr).data_off = geo.data_off as u64;
            (*hdr).total_len = p.total_len() as u64;
            (*hdr).creator_pid = std::process::id();
            (*hdr).kind = spec.kind;
            (*hdr).rings = spec.rings;
            (*hdr).type_hash = spec.type_tag.hash;
            (*hdr).type_name = spec.type_tag.name;
            (*hdr).overflow = spec.overflow;
            (*hdr).backlog = spec.backlog;
            // SYNC: pairs with the Acquire load of `ready` in `attach`: every
            // field above is visible to whoever sees READY_YES.
            (*hdr).ready.store(READY_YES, Ordering::Release);
        }
        Ok(Segment::new(map, file, name, p))
    }

    fn attach(file: File, name: Option<String>) -> Result<Self, OpenError> {
        let size = file
            .metadata()
            .map_err(|e| OpenError::os("fstat", e))?
            .len();
        // Validate a private copy before mapping anything.
        let mut buf = [0u8; CONTROL_OFF];
        let n = read_prefix(&file, &mut buf)?;
        let p = parse_header(&buf[..n], size)?;
        let map = map(&file, p.total_len())?;
        let hdr = map.as_ptr().cast::<Header>();
        // SAFETY: the mapping covers the header, and is page aligned, so
        // `ready` is an aligned AtomicU32.
        // SYNC: Acquire pairs with the creator's Release store of `ready` in
        // `init`: the header fields re-read below are the ones it wrote.
        let ready = unsafe { (*hdr).ready.load(Ordering::Acquire) };
        // SAFETY: the mapping covers CONTROL_OFF bytes; a byte copy of memory
        // another process may write concurrently is a plain snapshot.
        let copy: [u8; CONTROL_OFF] = unsafe { std::ptr::read_volatile(map.as_ptr().cast()) };
        let again = parse_header(&copy, size)?;
        if ready != READY_YES || again != p {
            return Err(OpenError::Corrupted(
                "header changed while attaching".into(),
            ));
        }
        Ok(Segment::new(map, file, name, p))
    }

    fn new(map: MmapRaw, file: File, name: Option<String>, p: Params) -> Self {
        // The file was just opened and read: fstat fails only if a thread
        // of the program closed it meanwhile, and then nothing names it.
        let id = FileId::of(file.as_raw_fd()).unwrap_or(FileId::NONE);
        Segment {
            map,
            file: ManuallyDrop::new(file),
            id,
            name,
            p,
        }
    }

    /// The segment's file (to check fd numbers against).
    pub(crate) fn file_id(&self) -> FileId {
        self.id
    }

    /// The segment's fd, if it is still open on the segment's file (the
    /// program may have closed it, and reused its number).
    pub(crate) fn fd_checked(&self) -> Option<BorrowedFd<'_>> {
        self.id
            .names(self.file.as_raw_fd())
            .then(|| self.file.as_fd())
    }

    /// Start of ring `k` (`k < self.spec().rings`) in the mapping.
    pub(crate) fn ring_base(&self, k: u16) -> NonNull<u8> {
        assert!(k < self.p.spec.rings, "ring {k} out of range");
        let base = NonNull::new(self.map.as_mut_ptr()).expect("mmap never returns null");
        // SAFETY: ring `k` starts `k * ring_len` bytes in, inside the mapping
        // of `rings * ring_len` bytes.
        unsafe { base.add(k as usize * self.p.geo.ring_len) }
    }
    /// The overflow area's start in the mapping and its geometry, if the
    /// segment has one.
    pub(crate) fn overflow(&self) -> Option<(NonNull<u8>, OverflowGeometry)> {
        let (off, og) = self.p.overflow()?;
        let base = NonNull::new(self.map.as_mut_ptr()).expect("mmap never returns null");
        // SAFETY: the area lies inside the mapping of `total_len` bytes.
        Some((unsafe { base.add(off) }, og))
    }

    /// One ring's geometry.
    pub(crate) fn geometry(&self) -> &Geometry {
        &self.p.geo
    }
    /// Kind, ring count, `maxsize` and message type, as validated.
    pub(crate) fn spec(&self) -> &Spec {
        &self.p.spec
    }
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
    /// Whether `ptr` lies inside this segment's mapping.
    pub(crate) fn contains(&self, ptr: *const u8) -> bool {
        let b = self.map.as_ptr() as usize;
        (b..b + self.map.len()).contains(&(ptr as usize))
    }
}

/// The error for a failed `shm_*` call on `name`: when creating, EEXIST is
/// `AlreadyExists`; otherwise ENOENT is `NotFound`; anything else is `Os`.
/// Sets `file`'s mode to exactly `mode` (`shm_open` applied the umask).
fn fchmod_exact(file: &File, mode: u32) -> Result<(), OpenError> {
    nix::sys::stat::fchmod(file, Mode::from_bits_truncate(mode))
        .map_err(|e| OpenError::os("fchmod", e))
}

/// Reserves the pages of a named segment now, so that a full `/dev/shm` is
/// an error here rather than a SIGBUS at some later write.
fn reserve(file: &File, len: u64) -> Result<(), OpenError> {
    match nix::fcntl::posix_fallocate(file, 0, len as nix::libc::off_t) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::ENOSPC) => Err(OpenError::NoSpace { needed: len }),
        // A file system without fallocate: nothing reserved, as before.
        Err(nix::errno::Errno::EOPNOTSUPP) | Err(nix::errno::Errno::EINVAL) => Ok(()),
        Err(e) => Err(OpenError::os("posix_fallocate", e)),
    }
}

fn shm_error(op: &'static str, e: nix::errno::Errno, name: &str, creating: bool) -> OpenError {
    match (e, creating) {
        (nix::errno::Errno::EEXIST, true) => OpenError::AlreadyExists(name.to_owned()),
        (nix::errno::Errno::ENOENT, false) => OpenError::NotFound(name.to_owned()),
        (e, _) => OpenError::os(op, e),
    }
}

fn map(file: &File, len: usize) -> Result<MmapRaw, OpenError> {
    MmapOptions::new()
        .len(len)
        .map_raw(file)
        .map_err(|e| OpenError::os("mmap", e))
}

fn read_prefix(file: &File, buf: &mut [u8]) -> Result<usize, OpenError> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(OpenError::os("pread", e)),
        }
    }
    Ok(n)
}

/// Validates a header copy against the file size. `b` holds the first bytes
/// of the file (fewer than `CONTROL_OFF` if the file is that short).
fn parse_header(b: &[u8], size: u64) -> Result<Params, OpenError> {
    let h = ready_header(b, size)?;
    let bad = |what: &str| Err(OpenError::Corrupted(what.into()));
    if h.header_len != HEADER_LEN as u32 {
        return bad("header_len");
    }
    if h.granule != GRANULE as u32 {
        return bad("granule (record alignment)");
    }
    let Some(geo) = usize::try_from(h.capacity).ok().and_then(Geometry::new) else {
        return bad("capacity is not a power of two in the supported range");
    };
    if h.maxsize > max_maxsize(&geo, h.backlog) {
        return bad("maxsize exceeds what the ring can count");
    }
    match (h.kind, h.rings) {
        (KIND_QUEUE, 1) | (KIND_PIPE, 1..=MAX_RINGS) => {}
        _ => return bad("kind and number of rings"),
    }
    if h.backlog > 0 && (h.kind != KIND_QUEUE || h.overflow == 0) {
        return bad("an unbounded ring needs a queue with an overflow area");
    }
    if OverflowGeometry::new(h.overflow, h.backlog > 0, geo.granules, h.rings).is_none() {
        return bad("overflow area size");
    }
    let p = Params {
        geo,
        spec: Spec {
            maxsize: h.maxsize,
            overflow: h.overflow,
            backlog: h.backlog,
            kind: h.kind,
            rings: h.rings,
            type_tag: TypeTag {
                hash: h.type_hash,
                name: h.type_name,
            },
        },
    };
    let total = p.total_len() as u64;
    if h.desc_off != geo.desc_off as u64
        || h.data_off != geo.data_off as u64
        || h.total_len != total
    {
        return bad("offsets do not match the capacity");
    }
    if size < total {
        return Err(OpenError::Truncated {
            size,
            expected: total,
        });
    }
    if size > total {
        return bad("file is larger than the header says");
    }
    Ok(p)
}

/// The header in `b` if it is a shmq header of this version whose creator
/// has finished it (its fields not yet checked against each other).
fn ready_header(b: &[u8], size: u64) -> Result<Header, OpenError> {
    if size == 0 {
        return Err(OpenError::NotInitialized);
    }
    let mut m = [0u8; 8];
    m[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
    let magic = u64::from_le_bytes(m);
    if b.len() < 8 {
        return Err(OpenError::NotAQueue { found: magic });
    }
    if magic == 0 && b.iter().all(|&x| x == 0) {
        // A creator between ftruncate and its first header write.
        return Err(OpenError::NotInitialized);
    }
    if magic != MAGIC {
        return Err(OpenError::NotAQueue { found: magic });
    }
    let h = Header::from_bytes(b).filter(|_| b.len() >= CONTROL_OFF && size >= HEADER_LEN as u64);
    let Some(mut h) = h else {
        return Err(OpenError::Truncated {
            size,
            expected: HEADER_LEN as u64,
        });
    };
    if h.version != VERSION {
        return Err(OpenError::VersionMismatch {
            found: h.version,
            expected: VERSION,
        });
    }
    if *h.ready.get_mut() != READY_YES {
        return Err(OpenError::NotInitialized);
    }
    Ok(h)
}

/// The largest `maxsize` a ring of `geo` counts: one message per granule
/// for a bounded ring; [`MAX_UNBOUNDED_MESSAGES`] for an unbounded one.
fn max_maxsize(geo: &Geometry, backlog: u64) -> u64 {
    if backlog > 0 {
        MAX_UNBOUNDED_MESSAGES
    } else {
        geo.granules
    }
}

fn check_config(capacity: usize, spec: Spec) -> Result<Params, OpenError> {
    let maxsize = spec.maxsize;
    let geo = Geometry::new(capacity).ok_or_else(|| {
        OpenError::InvalidConfig(format!(
            "capacity_bytes must be from 1 to {MAX_CAPACITY} (rounded up to a power of two, at least {MIN_CAPACITY}), got {capacity}"
        ))
    })?;
    if maxsize > max_maxsize(&geo, spec.backlog) {
        return Err(OpenError::InvalidConfig(if spec.backlog > 0 {
            format!("maxsize {maxsize} exceeds the most messages a queue counts, {MAX_UNBOUNDED_MESSAGES}")
        } else {
            format!(
                "maxsize {maxsize} exceeds what {capacity} bytes can hold ({} messages of up to {GRANULE} bytes); \
                 an unbounded queue (Builder::unbounded) holds more",
                geo.granules
            )
        }));
    }
    if spec.backlog > 0 && spec.overflow == 0 {
        return Err(OpenError::InvalidConfig(
            "an unbounded queue keeps its messages in the overflow area: overflow_bytes must not be 0".into(),
        ));
    }
    if OverflowGeometry::new(spec.overflow, spec.backlog > 0, geo.granules, spec.rings).is_none() {
        return Err(OpenError::InvalidConfig(format!(
            "overflow_bytes must be at most {MAX_OVERFLOW}, got {}",
            spec.overflow
        )));
    }
    Ok(Params { geo, spec })
}

/// Checks a queue name and returns it in POSIX shm form (`/name`).
///
/// Accepted: 1 to 200 characters from `[A-Za-z0-9._-]`, optionally after one
/// leading `/`, not starting with `.`. Anything else (slashes inside, `..`,
/// NUL, spaces) is refused, so a name can never reach outside `/dev/shm`.
pub(crate) fn shm_name(name: &str) -> Result<String, OpenError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let err = |why| OpenError::InvalidName {
        name: name.to_owned(),
        why,
    };
    if bare.is_empty() || bare.len() > 200 {
        return Err(err("must be 1 to 200 characters long"));
    }
    if bare.starts_with('.') {
        return Err(err("must not start with '.'"));
    }
    if !bare
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return Err(err(
            "may contain only ASCII letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(format!("/{bare}"))
}

/// Clears `FD_CLOEXEC` on `fd` in a child between fork and exec.
///
/// Only async-signal-safe calls: it runs in a forked child.
pub(crate) fn clear_cloexec(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl with F_SETFD on an fd number has no memory effects.
    if unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Takes our own duplicate of an inherited descriptor number (checking that it
/// is open), and marks the original close-on-exec so it stops propagating.
pub(crate) fn dup_inherited(fd: RawFd) -> Result<OwnedFd, OpenError> {
    // SAFETY: F_GETFD only asks whether `fd` is open.
    if fd < 0 || unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) } < 0 {
        return Err(OpenError::os(
            "inherited fd",
            std::io::Error::from_raw_os_error(nix::libc::EBADF),
        ));
    }
    // SAFETY: `fd` is open (checked above); F_DUPFD_CLOEXEC returns a new
    // descriptor that we own alone.
    let new = unsafe { nix::libc::fcntl(fd, nix::libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(OpenError::os(
            "fcntl(F_DUPFD_CLOEXEC)",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: as above; failure only leaves the original inheritable.
    unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC) };
    // SAFETY: `new` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

impl AsRawFd for Segment {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(shm_name("jobs").unwrap(), "/jobs");
        assert_eq!(shm_name("/jobs-1.a_b").unwrap(), "/jobs-1.a_b");
        for bad in [
            "",
            "/",
            "a/b",
            "../etc",
            ".hidden",
            "x y",
            "a\0b",
            &"n".repeat(201),
        ] {
            assert!(
                matches!(shm_name(bad), Err(OpenError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn header_round_trip_and_every_field_checked() {
        let spec = Spec {
            maxsize: 3,
            ..Spec::default()
        };
        let seg = Segment::create_anon(4096, spec).unwrap();
        let size = seg.p.total_len() as u64;
        let mut buf = [0u8; CONTROL_OFF];
        read_prefix(&seg.file, &mut buf).unwrap();
        let p = parse_header(&buf, size).unwrap();
        assert_eq!((p.geo.capacity, p.spec), (4096, spec));
        let corrupt = |off: usize, val: u64, width: usize| {
            let mut b = buf;
            b[off..off + width].copy_from_slice(&val.to_le_bytes()[..width]);
            parse_header(&b, size)
        };
        assert!(matches!(
            corrupt(0, 7, 8),
            Err(OpenError::NotAQueue { found: 7 })
        ));
        assert!(matches!(
            corrupt(8, 99, 4),
            Err(OpenError::VersionMismatch { found: 99, .. })
        ));
        assert!(matches!(corrupt(36, 0, 4), Err(OpenError::NotInitialized)));
        assert!(matches!(corrupt(12, 5, 4), Err(OpenError::Corrupted(_))));
        assert!(matches!(corrupt(16, 4000, 8), Err(OpenError::Corrupted(_))));
        assert!(matches!(
            corrupt(16, 1 << 40, 8),
            Err(OpenError::Corrupted(_))
        ));
        assert!(matches!(
            corrupt(24, 1 << 20, 8),
            Err(OpenError::Corrupted(_))
        ));
        assert!(matches!(corrupt(32, 16, 4), Err(OpenError::Corrupted(_))));
        assert!(matches!(corrupt(40, 0, 8), Err(OpenError::Corrupted(_))));
        assert!(matches!(corrupt(48, 1, 8), Err(OpenError::Corrupted(_))));
        assert!(matches!(
            corrupt(56, 1 << 50, 8),
            Err(OpenError::Corrupted(_))
        ));
        assert!(matches!(corrupt(68, 3, 2), Err(OpenError::Corrupted(_))));
        assert!(matches!(corrupt(70, 2, 2), Err(OpenError::Corrupted(_))));
        assert!(matches!(corrupt(70, 0, 2), Err(OpenError::Corrupted(_))));
        assert!(matches!(corrupt(120, 5, 8), Err(OpenError::Corrupted(_))));
        assert!(matches!(
            corrupt(120, 1 << 40, 8),
            Err(OpenError::Corrupted(_))
        ));
        // A valid size that does not match the file's.
        assert!(matches!(
            corrupt(120, UNIT as u64, 8),
            Err(OpenError::Corrupted(_))
        ));
        assert!(matches!(
            parse_header(&buf, size - 1),
            Err(OpenError::Truncated { .. })
        ));
        assert!(matches!(
            parse_header(&buf[..50], 50),
            Err(OpenError::Truncated { .. })
        ));
        assert!(matches!(
            parse_header(&buf[..3], 3),
            Err(OpenError::NotAQueue { .. })
        ));
        assert!(matches!(
            parse_header(&[], 0),
            Err(OpenError::NotInitialized)
        ));
        assert!(matches!(
            parse_header(&[0; 128], 1 << 20),
            Err(OpenError::NotInitialized)
        ));
    }

    #[test]
    fn unsealed_memfd_is_refused() {
        // Without MFD_ALLOW_SEALING a memfd reports F_SEAL_SEAL alone.
        let fd = memfd_create(c"plain", MFdFlags::MFD_CLOEXEC).unwrap();
        assert!(matches!(
            Segment::from_fd(fd),
            Err(OpenError::NotSealed { seals: 1 })
        ));
        // A regular file cannot be sealed at all.
        let f = File::open("/proc/self/exe").unwrap();
        assert!(matches!(
            Segment::from_fd(f.into()),
            Err(OpenError::NotSealed { seals: -1 })
        ));
        let fd = memfd_create(c"sealable", MFdFlags::MFD_ALLOW_SEALING).unwrap();
        assert!(matches!(
            Segment::from_fd(fd),
            Err(OpenError::NotSealed { .. })
        ));
    }

    #[test]
    fn bad_config() {
        assert!(matches!(
            Segment::create_anon(1000, Spec::default()),
            Err(OpenError::InvalidConfig(_))
        ));
        assert!(matches!(
            Segment::create_anon(
                4096,
                Spec {
                    maxsize: 65,
                    ..Spec::default()
                }
            ),
            Err(OpenError::InvalidConfig(_))
        ));
    }
}
