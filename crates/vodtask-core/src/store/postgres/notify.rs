//! Wake-ups across nodes through LISTEN/NOTIFY, never needed for
//! correctness: consumers also look again on a timer, and a listener that
//! lost its connection wakes everything when it is back.
//!
//! NOTIFY is sent after the commit that caused it, from a task of its own
//! (coalescing what queued up meanwhile into one statement), not inside the
//! writing transactions: PostgreSQL serialises the commits of notifying
//! transactions on one lock, which would put every event write in one line.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use crate::ids::AppId;
use crate::store::leases::{Wake, WakeListener};

/// How long a listener waits before connecting again.
const RECONNECT: Duration = Duration::from_secs(1);

pub(super) struct Notifier {
    /// This process, so that it skips its own notifications.
    pub(super) node: String,
    channel: String,
    listener: RwLock<Option<WakeListener>>,
    outgoing: mpsc::UnboundedSender<Wake>,
}

impl Notifier {
    /// Starts the sender and (when `listening`) the listener; both stop
    /// with `stop`.
    pub(super) fn start(
        pool: Pool,
        config: tokio_postgres::Config,
        schema: &str,
        listening: bool,
        stop: CancellationToken,
    ) -> Arc<Notifier> {
        let (outgoing, queued) = mpsc::unbounded_channel();
        let notifier = Arc::new(Notifier {
            node: uuid::Uuid::new_v4().simple().to_string(),
            channel: format!("vodtask {schema}"),
            listener: RwLock::new(None),
            outgoing,
        });
        tokio::spawn(send(
            pool,
            notifier.channel.clone(),
            notifier.node.clone(),
            queued,
            stop.clone(),
        ));
        if listening {
            tokio::spawn(listen(Arc::downgrade(&notifier), config, stop));
        }
        notifier
    }

    pub(super) fn listen(&self, listener: WakeListener) {
        if let Ok(mut slot) = self.listener.write() {
            *slot = Some(listener);
        }
    }

    fn tell_here(&self, wake: &Wake) {
        if let Some(listener) = self.listener.read().ok().and_then(|l| l.clone()) {
            listener(wake);
        }
    }

    /// Tells this process at once, and the others soon.
    pub(super) fn announce(&self, wake: Wake) {
        self.tell_here(&wake);
        self.tell_others(wake);
    }

    /// Tells the other processes (this one knows already).
    pub(super) fn tell_others(&self, wake: Wake) {
        // Fails only once the sender stopped with the store.
        let _ = self.outgoing.send(wake);
    }

    /// Events of these apps were committed here.
    pub(super) fn committed(&self, apps: &[AppId]) {
        for app in apps {
            self.tell_others(Wake::App(*app));
        }
    }
}

fn payload(node: &str, wake: &Wake) -> Option<String> {
    match wake {
        Wake::App(app) => Some(format!("{node} a {}", app.0)),
        Wake::Consumer(consumer) => Some(format!("{node} c {consumer}")),
        Wake::All => None,
    }
}

fn parse(payload: &str) -> Option<(&str, Wake)> {
    let mut parts = payload.splitn(3, ' ');
    let node = parts.next()?;
    let kind = parts.next()?;
    let value = parts.next()?;
    let wake = match kind {
        "a" => Wake::App(AppId(value.parse().ok()?)),
        "c" => Wake::Consumer(value.to_string()),
        _ => return None,
    };
    Some((node, wake))
}

async fn send(
    pool: Pool,
    channel: String,
    node: String,
    mut queued: mpsc::UnboundedReceiver<Wake>,
    stop: CancellationToken,
) {
    let mut batch = Vec::new();
    loop {
        let n = tokio::select! {
            n = queued.recv_many(&mut batch, 256) => n,
            () = stop.cancelled() => return,
        };
        if n == 0 {
            return;
        }
        let mut payloads: Vec<String> =
            batch.drain(..).filter_map(|w| payload(&node, &w)).collect();
        payloads.sort_unstable();
        payloads.dedup();
        if payloads.is_empty() {
            continue;
        }
        let sent = match pool.get().await {
            Ok(c) => c
                .execute(
                    "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                    &[&channel, &payloads],
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = sent {
            // The other nodes find the news at their next periodic look.
            tracing::debug!("sending wake-ups to other nodes failed: {e}");
        }
    }
}

async fn listen(
    notifier: std::sync::Weak<Notifier>,
    config: tokio_postgres::Config,
    stop: CancellationToken,
) {
    let mut first = true;
    loop {
        let Some(channel) = notifier.upgrade().map(|n| n.channel.clone()) else {
            return;
        };
        match listen_once(&notifier, &config, &channel, &mut first, &stop).await {
            Ok(()) => return,
            Err(e) => tracing::warn!("listening for other nodes' wake-ups: {e}; connecting again"),
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Listens until the connection ends (Err) or the store stops (Ok).
async fn listen_once(
    notifier: &std::sync::Weak<Notifier>,
    config: &tokio_postgres::Config,
    channel: &str,
    first: &mut bool,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let (messages_tx, mut messages) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if messages_tx.send(n.payload().to_string()).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("the connection closed".to_string())
    });
    let quoted = channel.replace('"', "\"\"");
    client
        .batch_execute(&format!("LISTEN \"{quoted}\""))
        .await
        .map_err(|e| e.to_string())?;
    if !std::mem::replace(first, false) {
        // Notifications sent while this listener was away are lost.
        if let Some(n) = notifier.upgrade() {
            n.tell_here(&Wake::All);
        }
    }
    loop {
        tokio::select! {
            message = messages.recv() => {
                let Some(message) = message else { break };
                let Some(n) = notifier.upgrade() else { return Ok(()) };
                if let Some((node, wake)) = parse(&message)
                    && node != n.node
                {
                    n.tell_here(&wake);
                }
            }
            () = stop.cancelled() => return Ok(()),
        }
    }
    drop(client);
    match driver.await {
        Ok(Err(e)) => Err(e),
        _ => Err("the connection closed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for wake in [Wake::App(AppId(42)), Wake::Consumer("n1:7".into())] {
            let p = payload("node", &wake).expect("a payload");
            assert_eq!(parse(&p), Some(("node", wake)));
        }
        assert_eq!(parse("node x 1"), None);
        assert_eq!(parse("node a nope"), None);
    }
}
