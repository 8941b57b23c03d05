//! Integration tests of the assembled platform: the API driven in-process and over TCP, built
//! by the composition root exactly as `retail serve` builds it.

mod api;
mod production;
mod scheduler;
mod streams;
mod tls;
