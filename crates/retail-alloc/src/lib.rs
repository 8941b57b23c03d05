//! The memory allocator of the `retail` binary: mimalloc, set up so that memory freed by work
//! that runs for hours (a stream consumer, the API server) goes back to the system.
//!
//! mimalloc's defaults keep freed memory for a second before returning it and let the kernel
//! back its arenas with transparent huge pages. For a consumer making thousands of small Delta
//! commits that meant a resident size growing with the number of commits while the live heap
//! stayed under 60 MiB (measured with heaptrack; see ADR 0006). With freed memory returned at
//! once and no huge pages, the same consumer stays flat at about 110 MiB. A one-shot command
//! (`ingest`, `pipeline run`) keeps freed memory for a quarter of a second instead: it exits
//! soon, and returning memory at once only makes it fault the same pages in again
//! ([`Lifetime`]).

/// The allocator, for `#[global_allocator]`.
pub use mimalloc::MiMalloc as Allocator;

/// mimalloc 3's `mi_option_purge_delay`: milliseconds before freed memory is returned to the
/// system (1,000 by default; 0 returns it at once).
const PURGE_DELAY: i32 = 15;
/// The purge delay of one-shot commands, in milliseconds: long enough for the next stage to
/// reuse what the last one freed, short enough that memory a thread freed (and others cannot
/// reuse) goes back before the 10× run's peak (ADR 0006, second amendment).
const BATCH_PURGE_DELAY: i32 = 250;
/// mimalloc 3's `mi_option_allow_thp`: whether arenas may use transparent huge pages (1 by
/// default).
const ALLOW_THP: i32 = 43;

/// How long the process runs, which decides when freed memory goes back to the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// A command that does one piece of work and exits (`ingest`, `pipeline run`, `bench`):
    /// freed memory is kept for 250 ms and reused. Returning it at once made the real data's
    /// `pipeline run` fault in 450,000 pages again (a third of its time in the kernel);
    /// keeping it for mimalloc's default second took the 10× run's peak to 1.7 GiB (ADR 0006).
    Batch,
    /// A process that runs for hours (`serve`, `scheduler`, `stream run`, `demo`): freed
    /// memory goes back at once, so thousands of small commits do not grow the resident size.
    LongRunning,
}

/// Sets mimalloc's options for the process's [`Lifetime`], and no transparent huge pages
/// either way. An option the user set in the environment (`MIMALLOC_PURGE_DELAY`,
/// `MIMALLOC_ALLOW_THP`) is left as set. Call it before the work starts.
pub fn configure(lifetime: Lifetime) {
    let delay = match lifetime {
        Lifetime::Batch => BATCH_PURGE_DELAY,
        Lifetime::LongRunning => 0,
    };
    set_unless_in_environment(PURGE_DELAY, "MIMALLOC_PURGE_DELAY", delay);
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        set(ALLOW_THP, 0);
        disable_transparent_huge_pages();
    }
}

/// Turns transparent huge pages off for the whole process, including the arena mimalloc
/// reserved before `main` (what `MIMALLOC_ALLOW_THP=0` does when mimalloc starts).
#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() {
    #[allow(unsafe_code)]
    // SAFETY: PR_SET_THP_DISABLE takes one integer argument and the unused ones as 0.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}

fn set_unless_in_environment(option: i32, variable: &str, value: i32) {
    if std::env::var_os(variable).is_none() {
        set(option, value);
    }
}

fn set(option: i32, value: i32) {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` takes any option number below `_mi_option_last` and any value;
    // it only stores the value. The numbers are checked against mimalloc's defaults in the
    // tests below, so a mimalloc whose option numbering moved fails them.
    unsafe {
        libmimalloc_sys::mi_option_set(option, value.into());
    }
}

/// The value of a mimalloc option.
#[cfg(test)]
fn get(option: i32) -> libc::c_long {
    #[allow(unsafe_code)]
    // SAFETY: reading an option number below `_mi_option_last` has no precondition.
    unsafe {
        libmimalloc_sys::mi_option_get(option)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mimalloc 3's default purge delay, in milliseconds.
    const DEFAULT_PURGE_DELAY: i32 = 1_000;

    #[test]
    fn the_option_numbers_are_mimalloc_3s_purge_delay_and_allow_thp() {
        // The test binary does not use mimalloc as its allocator, so nothing has set these:
        // they hold mimalloc 3's documented defaults, which tells the numbers are right.
        assert_eq!(
            get(PURGE_DELAY),
            DEFAULT_PURGE_DELAY.into(),
            "mi_option_purge_delay moved"
        );
        assert_eq!(get(ALLOW_THP), 1, "mi_option_allow_thp moved");
        configure(Lifetime::LongRunning);
        assert_eq!(get(PURGE_DELAY), 0);
        assert_eq!(get(ALLOW_THP), 0);
        configure(Lifetime::Batch);
        assert_eq!(get(PURGE_DELAY), BATCH_PURGE_DELAY.into());
        assert_eq!(get(ALLOW_THP), 0);
    }
}
