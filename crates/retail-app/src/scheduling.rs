//! The scheduler's loop in `retail serve` and `retail scheduler`: every process tries to hold
//! the scheduler's lease; the one holding it runs the schedules and sensors each tick, and
//! renews the lease every third of its length on the side, so a long run does not let it lapse.
//! When the holder dies, another process takes the lease once it lapses (at most
//! `scheduler.lease_seconds` plus a tick); a holder that stops cleanly releases it at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use retail_services::SchedulerService;
use retail_services::scheduler::SchedulerConfig;

/// This process's name as a lease holder: host, process id and a random part (two processes
/// of one host, or a restarted process, never share one).
pub fn holder_name() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{}:{}:{}",
        crate::host_name(),
        std::process::id(),
        &random[..8]
    )
}

/// Holds (or waits for) the lease and runs the schedules and sensors every tick while held,
/// until `stop`; then finishes the tick in progress and releases the lease.
pub(crate) async fn run_in_background(
    scheduler: Arc<dyn SchedulerService>,
    config: &SchedulerConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let holder = holder_name();
    let held = Arc::new(AtomicBool::new(false));
    let renew_every = Duration::from_secs(config.lease_seconds.max(1)).div_f64(3.0);
    let tick_every = Duration::from_secs(config.tick_seconds.max(1));

    let renew = {
        let (scheduler, holder, held, mut stop) = (
            Arc::clone(&scheduler),
            holder.clone(),
            Arc::clone(&held),
            stop.clone(),
        );
        async move {
            loop {
                let now_held = match scheduler.hold_lease(&holder).await {
                    Ok(now_held) => now_held,
                    Err(error) => {
                        tracing::warn!(%error, "cannot take or renew the scheduler's lease");
                        false
                    }
                };
                let was_held = held.swap(now_held, Ordering::SeqCst);
                match (was_held, now_held) {
                    (false, true) => tracing::info!(
                        holder = %holder,
                        "this process holds the scheduler's lease: it runs the schedules and sensors"
                    ),
                    (true, false) => tracing::warn!(
                        holder = %holder,
                        "this process lost the scheduler's lease"
                    ),
                    _ => {}
                }
                tokio::select! {
                    () = tokio::time::sleep(renew_every) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
            }
        }
    };

    let ticks = async {
        // Let the first renewal decide before the first tick.
        tokio::time::sleep(Duration::from_millis(100)).await;
        loop {
            if held.load(Ordering::SeqCst) {
                match scheduler.tick().await {
                    Ok(report) if report.lost_lease => {
                        tracing::warn!(
                            "another scheduler moved a cursor: this one stops until it holds the lease again"
                        );
                        held.store(false, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "the scheduler's tick failed"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(tick_every) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    };

    tokio::join!(renew, ticks);
    if held.load(Ordering::SeqCst)
        && let Err(error) = scheduler.release_lease(&holder).await
    {
        tracing::warn!(%error, "cannot release the scheduler's lease (it lapses on its own)");
    }
}
