//! The memory allocator of the `retail` binary: mimalloc, set up so that memory freed by work
//! that runs for hours (a stream consumer, the API server) goes back to the system.
//!
//! mimalloc's defaults keep freed memory for a second before returning it and let the kernel
//! back its arenas with transparent huge pages. For a consumer making thousands of small Delta
//! commits that meant a resident size growing with the number of commits while the live heap
//! stayed under 60 MiB (measured with heaptrack; see ADR 0006). With freed memory returned at
//! once and no huge pages, the same consumer stays flat at about 110 MiB. A one-shot command
//! (`ingest`, `pipeline run`) keeps freed memory instead, for reuse, while the process holds
//! less than 1 GiB, and for a quarter of a second once it holds more: it exits soon, and
//! returning memory only makes it fault the same pages in again ([`Lifetime`]).

/// The allocator, for `#[global_allocator]`.
pub use mimalloc::MiMalloc as Allocator;

/// mimalloc 3's `mi_option_purge_delay`: milliseconds before freed memory is returned to the
/// system (1,000 by default; 0 returns it at once; negative never).
const PURGE_DELAY: i32 = 15;
/// The purge delay of one-shot commands once they hold [`BATCH_KEEP_BELOW`], in milliseconds:
/// long enough for the next stage to reuse what the last one freed, short enough that memory a
/// thread freed (and others cannot reuse) goes back before the 10× run's peak (ADR 0006,
/// second amendment).
const BATCH_PURGE_DELAY: i32 = 250;
/// A one-shot command returns nothing it frees while its resident size is under this (ADR
/// 0006, third amendment): on the real data a `pipeline run` peaks at about 600 MiB so, and
/// returning memory cost it 7 % of its time in purges and page faults.
const BATCH_KEEP_BELOW: u64 = 1 << 30;
/// How often a one-shot command's resident size is looked at until it reaches
/// [`BATCH_KEEP_BELOW`].
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(10);
/// mimalloc 3's `mi_option_allow_thp`: whether arenas may use transparent huge pages (1 by
/// default).
const ALLOW_THP: i32 = 43;

/// How long the process runs, which decides when freed memory goes back to the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// A command that does one piece of work and exits (`ingest`, `pipeline run`, `bench`):
    /// freed memory is kept and reused, all of it while the process holds under 1 GiB and for
    /// 250 ms once it holds more. Returning it at once made the real data's `pipeline run`
    /// fault in 450,000 pages again (a third of its time in the kernel); keeping all of it
    /// took the 10× run's peak to 2.2 GiB (ADR 0006).
    Batch,
    /// A process that runs for hours (`serve`, `scheduler`, `stream run`, `demo`): freed
    /// memory goes back at once, so thousands of small commits do not grow the resident size.
    LongRunning,
}

/// Sets mimalloc's options for the process's [`Lifetime`], and no transparent huge pages
/// either way. An option the user set in the environment (`MIMALLOC_PURGE_DELAY`,
/// `MIMALLOC_ALLOW_THP`) is left as set. Call it before the work starts: for a one-shot command
/// it starts a thread that looks at the resident size until it reaches 1 GiB.
pub fn configure(lifetime: Lifetime) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        match lifetime {
            Lifetime::Batch => {
                set(PURGE_DELAY, -1);
                purge_once_over(BATCH_KEEP_BELOW, resident_bytes);
            }
            Lifetime::LongRunning => set(PURGE_DELAY, 0),
        }
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        set(ALLOW_THP, 0);
        disable_transparent_huge_pages();
    }
}

/// Starts a thread that sets the purge delay to [`BATCH_PURGE_DELAY`] once `resident()` says
/// the process holds `limit` bytes or more, or cannot say (at once where `/proc` cannot be
/// read), then ends. What was freed before stays with the process, for reuse.
fn purge_once_over(limit: u64, resident: fn() -> Option<u64>) {
    let watch = move || {
        while resident().is_some_and(|bytes| bytes < limit) {
            std::thread::sleep(WATCH_EVERY);
        }
        set(PURGE_DELAY, BATCH_PURGE_DELAY);
    };
    if std::thread::Builder::new()
        .name("retail-alloc".to_owned())
        .spawn(watch)
        .is_err()
    {
        set(PURGE_DELAY, BATCH_PURGE_DELAY);
    }
}

/// The process's resident size (`/proc/self/statm`), `None` where it cannot be read.
#[cfg(target_os = "linux")]
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    #[allow(unsafe_code)]
    // SAFETY: sysconf has no precondition.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(not(target_os = "linux"))]
fn resident_bytes() -> Option<u64> {
    None
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
        assert_eq!(
            get(PURGE_DELAY),
            -1,
            "a test process holds far less than 1 GiB"
        );
        assert_eq!(get(ALLOW_THP), 0);
    }

    #[test]
    fn a_one_shot_command_starts_returning_memory_once_it_holds_the_limit() {
        let resident = resident_bytes().expect("/proc/self/statm");
        assert!(resident > 1 << 20, "{resident} bytes resident");
        set(PURGE_DELAY, -1);
        // Over the limit already: the watcher sets the delay and ends.
        purge_once_over(resident / 2, resident_bytes);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while get(PURGE_DELAY) != BATCH_PURGE_DELAY.into() {
            assert!(
                std::time::Instant::now() < deadline,
                "the delay was not set"
            );
            std::thread::sleep(WATCH_EVERY);
        }
        // Under it: the watcher keeps watching and leaves the delay alone.
        set(PURGE_DELAY, -1);
        purge_once_over(u64::MAX, resident_bytes);
        std::thread::sleep(WATCH_EVERY * 10);
        assert_eq!(get(PURGE_DELAY), -1);
    }
}
