//! Blocking calls: each waits with the GIL released in slices of
//! [`SLICE`], checking for signals (Ctrl-C) and its deadline between
//! slices; a message that is ready is taken with the GIL held and no slice
//! at all.

use crate::errors::{recv_err, send_err};
use crate::gil::{without_gil, SameThread};
use crate::prelude::*;

/// How long a blocking call waits with the GIL released before it checks
/// for signals and its deadline.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// A deadline from Python's `block`/`timeout`: `None` waits for ever,
/// `Some(now)` not at all.
pub(crate) fn deadline(block: bool, timeout: Option<f64>) -> PyResult<Option<Instant>> {
    let now = Instant::now();
    Ok(match (block, timeout) {
        (false, _) => Some(now),
        (true, None) => None,
        (true, Some(t)) if t.is_nan() => return Err(PyValueError::new_err("timeout is NaN")),
        (true, Some(t)) if t <= 0.0 => Some(now),
        (true, Some(t)) => now.checked_add(Duration::from_secs_f64(t.min(1e9))),
    })
}

/// The next slice of a wait ending at `deadline`, or `None` once it passed.
pub(crate) fn slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(SLICE))
        }
    }
}

pub(crate) fn send_loop(
    is_pipe: bool,
    py: Python<'_>,
    tx: &Sender,
    slices: &[&[u8]],
    deadline: Option<Instant>,
) -> PyResult<()> {
    match tx.try_send_vectored(slices) {
        Err(SendError::Full) => {}
        r => return r.map_err(send_err),
    }
    loop {
        let Some(s) = slice(deadline) else {
            return Err(send_err(SendError::Full));
        };
        let (txr, sl) = (SameThread(tx), SameThread(slices));
        let r = without_gil(py, move || {
            let (tx, sl) = (txr, sl);
            SameThread(tx.0.send_vectored_timeout(sl.0, s))
        });
        match r.0 {
            Err(SendError::Timeout) => py.check_signals()?,
            Err(SendError::Disconnected) if !is_pipe => {
                // As `take`: a full queue with no reader anywhere
                // waits, as Python's would.
                py.check_signals()?;
                without_gil(py, || std::thread::sleep(s.min(Duration::from_millis(10))));
            }
            r => return r.map_err(send_err),
        }
    }
}

/// Takes the next record for `rx`, waiting until `deadline`.
pub(crate) fn take<'r>(
    is_pipe: bool,
    py: Python<'_>,
    rx: &'r Receiver,
    deadline: Option<Instant>,
) -> PyResult<RecvGuard<'r>> {
    match rx.try_recv() {
        Ok(g) => return Ok(g),
        Err(RecvError::Empty) => {}
        Err(e) => return Err(recv_err(e, is_pipe)),
    }
    loop {
        let Some(s) = slice(deadline) else {
            return Err(recv_err(RecvError::Empty, is_pipe));
        };
        let rxr = SameThread(rx);
        let r: SameThread<Result<RecvGuard<'r>, RecvError>> = without_gil(py, move || {
            let rxr = rxr;
            SameThread(rxr.0.recv_timeout(s))
        });
        match r.0 {
            Ok(g) => return Ok(g),
            Err(RecvError::Timeout) => py.check_signals()?,
            Err(RecvError::Disconnected) if !is_pipe => {
                // A queue never ends for `multiprocessing` users: with
                // no handle left anywhere, wait as Python's would.
                py.check_signals()?;
                without_gil(py, || std::thread::sleep(s.min(Duration::from_millis(10))));
            }
            Err(e) => return Err(recv_err(e, is_pipe)),
        }
    }
}

pub(crate) fn poll_loop(
    is_pipe: bool,
    py: Python<'_>,
    rx: &Receiver,
    deadline: Option<Instant>,
) -> PyResult<bool> {
    loop {
        let s = slice(deadline).unwrap_or(Duration::ZERO);
        let rxr = SameThread(rx);
        let r = without_gil(py, move || {
            let rxr = rxr;
            SameThread(rxr.0.poll(s))
        });
        match r.0 {
            Ok(true) => return Ok(true),
            Ok(false) if slice(deadline).is_none() => return Ok(false),
            Ok(false) => py.check_signals()?,
            Err(RecvError::Disconnected | RecvError::Closed) if is_pipe => return Ok(true),
            Err(RecvError::Disconnected) => {
                // A queue: as `take`, no end.
                py.check_signals()?;
                if slice(deadline).is_none() {
                    return Ok(false);
                }
                without_gil(py, || std::thread::sleep(s.min(Duration::from_millis(10))));
            }
            Err(e) => return Err(recv_err(e, is_pipe)),
        }
    }
}
