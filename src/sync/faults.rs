//! Deliberate faults for the loom models: mutants (protocol breaks the
//! models must catch) and death points (where a model process stops dead).
//! Normal builds contain neither.

/// Picks `$normal`, or, in a loom build run with `SHMQ_MUTANT=$name`,
/// `$broken`. Mutants are deliberate protocol breaks that the loom models
/// must catch (docs/VERIFICATION.md lists which model catches which;
/// `loom-tests/mutants.sh` checks it). Normal builds contain only `$normal`.
macro_rules! mutant {
    ($name:literal, $normal:expr, $broken:expr) => {{
        #[cfg(loom)]
        let v = if $crate::sync::mutant_on($name) {
            $broken
        } else {
            $normal
        };
        #[cfg(not(loom))]
        let v = $normal;
        v
    }};
}
pub(crate) use mutant;

/// Whether the loom build was asked (through `SHMQ_MUTANT`) to break the
/// protocol at `name`. Read once per process, outside loom's view.
#[cfg(loom)]
pub(crate) fn mutant_on(name: &str) -> bool {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CHOSEN
        .get_or_init(|| std::env::var("SHMQ_MUTANT").ok())
        .as_deref()
        == Some(name)
}

#[cfg(loom)]
loom::thread_local! {
    /// The death point at which this loom thread's process dies, if any.
    static DIE_AT: std::cell::Cell<Option<&'static str>> = std::cell::Cell::new(None);
}

/// Makes the calling loom thread stop dead (return at once, leaving shared
/// state as a SIGKILL would) when it next reaches death point `at`.
#[cfg(loom)]
pub(crate) fn die_at(at: &'static str) {
    DIE_AT.with(|d| d.set(Some(at)));
}

/// Whether the calling loom thread dies here.
#[cfg(loom)]
pub(crate) fn dies_here(at: &str) -> bool {
    DIE_AT.with(|d| d.get() == Some(at))
}

/// A place where a process may be killed between two steps of the protocol.
/// Normal builds: nothing. loom builds: if the model chose this point for
/// the calling thread (`die_at`), return `$ret` at once, abandoning the
/// operation half done.
macro_rules! death_point {
    ($name:literal, $ret:expr) => {
        #[cfg(loom)]
        if $crate::sync::dies_here($name) {
            return $ret;
        }
    };
}
pub(crate) use death_point;
