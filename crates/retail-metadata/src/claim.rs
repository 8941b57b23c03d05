//! Exclusive claims on an operation, released when dropped and when the holder dies.

/// An exclusive claim on one kind of operation (`pipeline run`, `ingestion`) among every
/// process sharing a metadata store. Dropping it releases the claim; so does the death of the
/// process (the OS closes its file lock, PostgreSQL its session).
#[derive(Debug)]
pub struct Claim {
    operation: &'static str,
    _held: Held,
}

#[derive(Debug)]
pub(crate) enum Held {
    /// An in-memory store: nobody else can see it.
    Nothing,
    /// An OS lock on a file beside the SQLite database.
    File(#[allow(dead_code)] std::fs::File),
    /// A session advisory lock, held by a connection of its own.
    Postgres(#[allow(dead_code)] tokio_postgres::Client),
}

impl Claim {
    pub(crate) fn new(operation: &'static str, held: Held) -> Self {
        Self {
            operation,
            _held: held,
        }
    }

    /// The operation claimed.
    pub fn operation(&self) -> &'static str {
        self.operation
    }
}
