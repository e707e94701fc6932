//! What the benchmarks measure with: latency histograms, rates, consume
//! runs and their modes, commit-to-delivery samples, and the countdown that
//! ends a drain. The same for vodtask and for any yardstick beside it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use super::cpu;

/// Untimed events before each latency measurement (connections, caches).
pub const WARMUP_SAMPLES: usize = 20;
/// How long one latency sample may take before the run gives up.
const SAMPLE_DEADLINE: Duration = Duration::from_secs(10);
/// Between latency samples, so that the consumer is back in its long poll
/// (or its stream is idle again) before the next event is committed.
const SAMPLE_PAUSE: Duration = Duration::from_millis(5);
/// A pull consumer holds at most this many batches unconfirmed: it pulls
/// the next batch while earlier ones are being confirmed.
pub const PULL_WINDOW_BATCHES: u32 = 4;
/// Added to every load's or drain's deadline.
const SLACK: Duration = Duration::from_secs(60);

/// Call latencies in microseconds, from 1 µs to 10 min at 3 significant digits.
#[derive(Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        // Constant bounds that hdrhistogram accepts (1 <= low, high >= 2 * low, sigfig <= 5).
        let histogram =
            Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds");
        Latencies(histogram)
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    pub fn merge(&mut self, other: &Latencies) {
        for v in other.0.iter_recorded() {
            self.0
                .saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.0.value_at_quantile(q))
    }
}

/// The middle value (the mean of the two middle ones for an even count);
/// None for none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Times `samples` sequential calls after `warmup` untimed ones.
pub async fn time_calls<F, Fut>(
    warmup: usize,
    samples: usize,
    mut call: F,
) -> anyhow::Result<Latencies>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    for _ in 0..warmup {
        call().await?;
    }
    let mut latencies = Latencies::default();
    for _ in 0..samples {
        // The future does nothing until awaited; only the call is timed.
        let pending = call();
        let started = Instant::now();
        pending.await?;
        latencies.record(started.elapsed());
    }
    Ok(latencies)
}

/// A count over a time.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub count: u64,
    pub elapsed: Duration,
}

impl Rate {
    /// `count` since `started`.
    pub fn since(started: Instant, count: u64) -> Rate {
        Rate {
            count,
            elapsed: started.elapsed(),
        }
    }

    pub fn per_second(self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.count as f64 / secs
        } else {
            0.0
        }
    }
}

/// The longest a load or a drain of `count` may take on a side that should
/// manage at least `slowest_rate` per second.
pub fn deadline(count: u64, slowest_rate: u64) -> Duration {
    SLACK + Duration::from_secs(count / slowest_rate.max(1))
}

/// How consumers take events.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// vodtask: SubscribeEvents with this max_in_flight per stream.
    /// JetStream: a continuous pull (`messages()`) with batches this size and
    /// as many unacknowledged messages per consumer.
    Stream { max_in_flight: u32 },
    /// vodtask: PullEvents with this max_events. JetStream: pull requests for
    /// batches this size.
    Pull { batch: u32 },
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        let bad = || format!("{s:?}: expected stream:N or pull:N with N in 1..=1000");
        let (kind, n) = s.split_once(':').ok_or_else(bad)?;
        let n: u32 = n.parse().map_err(|_| bad())?;
        if !(1..=1000).contains(&n) {
            return Err(bad());
        }
        match kind {
            "stream" => Ok(Mode::Stream { max_in_flight: n }),
            "pull" => Ok(Mode::Pull { batch: n }),
            _ => Err(bad()),
        }
    }
}

impl Mode {
    /// As `--modes` spells it.
    pub fn short(self) -> String {
        match self {
            Mode::Stream { max_in_flight } => format!("stream:{max_in_flight}"),
            Mode::Pull { batch } => format!("pull:{batch}"),
        }
    }

    pub fn label(self) -> String {
        match self {
            Mode::Stream { max_in_flight } => format!("consume, stream, {max_in_flight} in flight"),
            Mode::Pull { batch } => format!("consume, pull, batch {batch}"),
        }
    }

    /// The unconfirmed events one consumer may hold: the stream's own limit,
    /// or a few batches so that confirms overlap the next pull.
    pub fn window(self) -> u32 {
        match self {
            Mode::Stream { max_in_flight } => max_in_flight,
            Mode::Pull { batch } => batch * PULL_WINDOW_BATCHES,
        }
    }

    /// The events a consumer takes per step: in flight, or per pull.
    pub fn depth(self) -> u32 {
        match self {
            Mode::Stream { max_in_flight } => max_in_flight,
            Mode::Pull { batch } => batch,
        }
    }

    pub fn same_kind(self, other: Mode) -> bool {
        matches!(
            (self, other),
            (Mode::Stream { .. }, Mode::Stream { .. }) | (Mode::Pull { .. }, Mode::Pull { .. })
        )
    }
}

/// One consume run: its rate and, where /proc could tell, the CPU time of
/// the server and of this process over it.
#[derive(Debug, Clone, Copy)]
pub struct Drained {
    pub rate: Rate,
    pub cpu: Option<cpu::Usage>,
}

impl Drained {
    /// Server and client CPU µs per event, where /proc could tell.
    pub fn cpu_per_event(&self) -> Option<CpuPerEvent> {
        let n = self.rate.count.max(1) as f64;
        self.cpu.map(|u| CpuPerEvent {
            server: u.server.as_secs_f64() * 1e6 / n,
            client: u.client.as_secs_f64() * 1e6 / n,
        })
    }

    /// The server's SQLite writer thread's CPU µs per event, where /proc
    /// could tell (a vodtask server only).
    pub fn writer_per_event(&self) -> Option<f64> {
        let n = self.rate.count.max(1) as f64;
        Some(self.cpu?.server_writer?.as_secs_f64() * 1e6 / n)
    }
}

/// The median of `figure` over `drains`; None when a drain has no reading.
pub fn median_over<'a>(
    drains: impl IntoIterator<Item = &'a Drained>,
    figure: impl Fn(&Drained) -> Option<f64>,
) -> Option<f64> {
    let values: Option<Vec<f64>> = drains.into_iter().map(figure).collect();
    median(&values?)
}

/// CPU microseconds per event of the server and of this process (the
/// client); printed as `total=server+client`.
#[derive(Debug, Clone, Copy)]
pub struct CpuPerEvent {
    pub server: f64,
    pub client: f64,
}

impl CpuPerEvent {
    pub fn total(self) -> f64 {
        self.server + self.client
    }

    /// The medians over `drains`, server and client apart.
    pub fn median<'a>(drains: impl IntoIterator<Item = &'a Drained> + Clone) -> Option<Self> {
        let of = |drain: &Drained| drain.cpu_per_event();
        Some(CpuPerEvent {
            server: median_over(drains.clone(), |d| Some(of(d)?.server))?,
            client: median_over(drains, |d| Some(of(d)?.client))?,
        })
    }
}

impl std::fmt::Display for CpuPerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1}={:.1}+{:.1}",
            self.total(),
            self.server,
            self.client
        )
    }
}

/// A count that wakes its waiter once it reaches a target: a drain is done
/// when every event is settled.
pub struct Countdown {
    target: u64,
    count: AtomicU64,
    done: Notify,
}

impl Countdown {
    pub fn new(target: u64) -> Self {
        Countdown {
            target,
            count: AtomicU64::new(0),
            done: Notify::new(),
        }
    }

    pub fn add(&self, n: u64) {
        let before = self.count.fetch_add(n, Ordering::Relaxed);
        if before < self.target && before + n >= self.target {
            // Stores a permit if the waiter is not waiting yet.
            self.done.notify_one();
        }
    }

    /// Waits until the count reaches its target; fails when one of
    /// `running` (`who`, e.g. "a consumer") stops first or when `deadline`
    /// passes.
    pub async fn wait(
        &self,
        running: &mut JoinSet<anyhow::Result<()>>,
        who: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        tokio::select! {
            _ = self.done.notified() => Ok(()),
            Some(joined) = running.join_next() => {
                joined.with_context(|| format!("{who} failed"))??;
                bail!("{who} stopped before all {} were done", self.target);
            }
            _ = tokio::time::sleep(deadline) => bail!(
                "{} of {} done after {deadline:?}",
                self.count.load(Ordering::Relaxed),
                self.target
            ),
        }
    }
}

/// Sequential commit-to-delivery samples.
#[derive(Clone, Default)]
pub struct LatencyRun {
    pub latencies: Latencies,
    /// Deliveries that reached the consumer before the producer had its
    /// acknowledgement (recorded as zero).
    pub early: u64,
}

/// A delivery as the waiting consumer saw it.
pub struct Arrival {
    pub at: Instant,
    /// Holds the key that the producer returned for this sample.
    pub body: String,
}

/// Times `samples` events (after a warm-up) from the acknowledgement of
/// `produce(n)`, which returns a key found in the body of its delivery, to
/// their arrival at the consumer that `wait` runs, which reports each
/// arrival on the sender it is given.
pub async fn sample_latency<W, WFut, F, Fut>(
    samples: usize,
    wait: W,
    mut produce: F,
) -> anyhow::Result<LatencyRun>
where
    W: FnOnce(mpsc::Sender<Arrival>) -> WFut,
    WFut: Future<Output = anyhow::Result<()>> + Send + 'static,
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<String>>,
{
    let (arrived, mut arrivals) = mpsc::channel(1);
    // Dropping the set stops the waiter (and closes its stream).
    let mut waiting = JoinSet::new();
    waiting.spawn(wait(arrived));
    let sampled = async {
        let mut run = LatencyRun::default();
        for n in 0..(WARMUP_SAMPLES + samples) as u64 {
            tokio::time::sleep(SAMPLE_PAUSE).await;
            let key = produce(n).await?;
            let acked = Instant::now();
            let arrival = tokio::time::timeout(SAMPLE_DEADLINE, arrivals.recv())
                .await
                .with_context(|| {
                    format!("sample {n} was not delivered within {SAMPLE_DEADLINE:?}")
                })?
                .context("the waiting consumer stopped")?;
            if !arrival.body.contains(&key) {
                bail!("sample {n}: expected the delivery of {key}, got another event");
            }
            if n >= WARMUP_SAMPLES as u64 {
                run.latencies
                    .record(arrival.at.saturating_duration_since(acked));
                if arrival.at < acked {
                    run.early += 1;
                }
            }
        }
        anyhow::Ok(run)
    }
    .await;
    if sampled.is_err() {
        // The waiter's own error says more than "the consumer stopped".
        waiting.abort_all();
        if let Some(Ok(Err(e))) = waiting.join_next().await {
            return Err(e).context("the waiting consumer");
        }
    }
    sampled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_spelled_and_only_one_kind_matches_another() {
        let mode = |s: &str| s.parse::<Mode>().expect("a valid mode");
        assert_eq!(mode("stream:16").short(), "stream:16");
        assert_eq!(mode("pull:256").depth(), 256);
        assert_eq!(mode("pull:16").window(), 16 * PULL_WINDOW_BATCHES);
        assert!(mode("stream:16").same_kind(mode("stream:256")));
        assert!(!mode("stream:16").same_kind(mode("pull:256")));
        assert!("pull:0".parse::<Mode>().is_err());
        assert!("push:4".parse::<Mode>().is_err());
    }

    #[test]
    fn medians_take_the_middle_or_the_mean_of_the_two_middle_values() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
