//! Progress of long work, reported to whoever is watching (a terminal bar, a log, nothing).

/// Receives progress of a long step.
pub trait Progress: Send + Sync {
    /// A step starts; `total` units of work are expected (0 when unknown).
    fn begin(&self, step: &str, total: u64);
    /// `units` more are done.
    fn advance(&self, units: u64);
    /// The step is over.
    fn end(&self);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _step: &str, _total: u64) {}
    fn advance(&self, _units: u64) {}
    fn end(&self) {}
}
