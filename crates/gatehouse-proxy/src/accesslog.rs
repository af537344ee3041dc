//! Access decisions, written to the store by a background task. Requests hand records to a
//! bounded channel and never wait: when the writer falls behind, records are dropped and
//! counted (`gatehouse_access_log_dropped_total`) rather than slowing the data plane.

use std::time::Duration;

use gatehouse_store::{AccessLogRecord, DataPlaneStore as _, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Records buffered before new ones are dropped.
pub const CAPACITY: usize = 16 * 1024;
/// Records written per transaction at most.
const BATCH: usize = 512;
/// How long decisions are kept.
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct AccessLogger {
    tx: mpsc::Sender<AccessLogRecord>,
    dropped: metrics::Counter,
}

impl AccessLogger {
    /// Starts the writer task.
    pub fn spawn(store: Store) -> (Self, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<AccessLogRecord>(CAPACITY);
        let task = tokio::spawn(async move {
            let mut buf = Vec::with_capacity(BATCH);
            let mut last_prune = std::time::Instant::now();
            while rx.recv_many(&mut buf, BATCH).await > 0 {
                if let Err(e) = store.insert_access_logs(&buf).await {
                    tracing::error!(error = %e, lost = buf.len(), "could not write access decisions");
                    metrics::counter!("gatehouse_access_log_dropped_total").increment(buf.len() as u64);
                }
                buf.clear();
                if last_prune.elapsed() > Duration::from_secs(3600) {
                    last_prune = std::time::Instant::now();
                    let before =
                        gatehouse_core::now_millis() - i64::try_from(RETENTION.as_millis()).unwrap_or(i64::MAX);
                    if let Err(e) = store.prune_access_logs(before).await {
                        tracing::warn!(error = %e, "could not prune old access decisions");
                    }
                }
            }
        });
        (Self { tx, dropped: metrics::counter!("gatehouse_access_log_dropped_total") }, task)
    }

    /// Queues a record; never waits.
    pub fn log(&self, record: AccessLogRecord) {
        if self.tx.try_send(record).is_err() {
            self.dropped.increment(1);
        }
    }
}
