//! What recording one HTTP request's metrics costs, with the Prometheus recorder installed.
//!
//! `cargo run --release -p retail-telemetry --example record_cost`
//!
//! Prints nanoseconds per call for one thread and for two threads recording at once (the
//! series a cached analytics request touches: its request counter and histogram, and one
//! process-cache lookup).

use std::time::Instant;

const CALLS: u32 = 2_000_000;

fn record(calls: u32) {
    for i in 0..calls {
        retail_telemetry::metrics::record_http_request(
            "/api/v1/analytics/sales-summary",
            "GET",
            200,
            f64::from(i % 100) * 1e-5,
        );
        retail_telemetry::metrics::record_cache("process", "hit");
    }
}

fn main() {
    let handle = retail_telemetry::prometheus::handle();
    record(10_000);
    let started = Instant::now();
    record(CALLS);
    let one = started.elapsed().as_nanos() as f64 / f64::from(CALLS);
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| record(CALLS));
        scope.spawn(|| record(CALLS));
    });
    let two = started.elapsed().as_nanos() as f64 / f64::from(CALLS);
    let rendered = handle.render();
    println!("one thread: {one:.0} ns per request; two threads at once: {two:.0} ns per pair");
    println!("rendered {} bytes", rendered.len());
}
