//! Keeping an in-memory snapshot current: reload on a relevant change notification, on a
//! lagged or lost notification stream, and every [`RECONCILE`] regardless — so a missed
//! notification heals within a minute on every instance.

use std::future::Future;
use std::time::Duration;

use gatehouse_store::{Change, Store};
use tokio::sync::broadcast::error::RecvError;

/// How often snapshots reload without a notification.
pub const RECONCILE: Duration = Duration::from_secs(60);

/// Runs `reload` whenever `relevant(change)` holds for a committed change, and periodically.
/// Stops when the store's notification bus closes.
pub fn spawn_reloader<F, Fut>(store: &Store, relevant: fn(Change) -> bool, mut reload: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut changes = store.subscribe();
    tokio::spawn(async move {
        loop {
            let due = tokio::select! {
                change = changes.recv() => match change {
                    Ok(c) => relevant(c),
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => break,
                },
                () = tokio::time::sleep(RECONCILE) => true,
            };
            if due {
                reload().await;
            }
        }
    })
}
