//! The process's own resources, from Linux's `/proc/self`.

/// What the process uses now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Process {
    /// User and system CPU time, in hundredths of a second (clock ticks of 100 Hz).
    pub(crate) cpu_centiseconds: u64,
    /// Resident memory.
    pub(crate) resident_bytes: u64,
    /// Open file descriptors.
    pub(crate) open_fds: u64,
    /// The soft limit of open files, when there is one.
    pub(crate) max_fds: Option<u64>,
}

/// Linux's page size on the platforms we run on.
const PAGE_BYTES: u64 = 4096;

impl Process {
    /// Reads `/proc/self`; `None` where there is none.
    pub(crate) fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(Self {
            cpu_centiseconds: cpu_ticks(&stat)?,
            resident_bytes: statm.split_whitespace().nth(1)?.parse::<u64>().ok()? * PAGE_BYTES,
            open_fds,
            max_fds: max_open_files(&limits),
        })
    }
}

/// `utime + stime` of a `/proc/PID/stat` line (fields 14 and 15, counted after the command
/// name, which may hold spaces and parentheses).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The soft limit of the `Max open files` line of `/proc/PID/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (retail (serve) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 9 0 12345 1000000 2000 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn the_open_files_limit_is_the_soft_one() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files("Max open files unlimited unlimited files"),
            None
        );
    }

    #[test]
    fn this_process_uses_some_memory_and_holds_some_files() {
        let process = Process::read().expect("Linux");
        assert!(process.resident_bytes > 1_000_000, "{process:?}");
        assert!(process.open_fds >= 3, "{process:?}");
        assert!(process.max_fds.is_some_and(|max| max >= process.open_fds));
    }
}
