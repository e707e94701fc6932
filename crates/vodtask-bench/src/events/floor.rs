//! The floor under every PullEvents and ConfirmEvents: what one trivial
//! unary gRPC call (the standard health check: no auth, no store, a
//! two-byte answer) costs the server and this client in CPU. A 16-deep
//! consumer pays it at least once per 16 events; the report sets it beside
//! the CPU lines of the consume runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use tokio::task::JoinSet;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::harness::cpu;
use crate::harness::measure::{Drained, Rate};
use crate::harness::server::{Server, ServerArgs};

/// Connections, and calls in flight on each: as many calls at once as the
/// consume runs keep going with their default four consumers.
pub const CONNECTIONS: usize = 4;
pub const IN_FLIGHT: usize = 4;

/// `calls` health checks (after as many untimed ones) on a fresh server.
pub async fn call_floor(server_args: &ServerArgs, calls: u64) -> anyhow::Result<Drained> {
    Server::with(server_args, &["--workers", "0"], async |server| {
        let mut clients = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            clients.push(HealthClient::new(server.channel().await?));
        }
        // The warm-up fills the connections' buffers and HPACK tables.
        call_all(&clients, calls).await?;
        let meter = cpu::Meter::start(server.pid());
        let started = Instant::now();
        call_all(&clients, calls).await?;
        let rate = Rate::since(started, calls);
        Ok(Drained {
            rate,
            cpu: meter.stop(),
        })
    })
    .await
}

async fn call_all(
    clients: &[HealthClient<tonic::transport::Channel>],
    calls: u64,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut callers = JoinSet::new();
    for client in clients {
        for _ in 0..IN_FLIGHT {
            let mut client = client.clone();
            let next = Arc::clone(&next);
            callers.spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < calls {
                    client
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .context("grpc.health.v1.Health/Check")?;
                }
                anyhow::Ok(())
            });
        }
    }
    while let Some(joined) = callers.join_next().await {
        joined.context("a caller failed")??;
    }
    Ok(())
}
