//! `events`: vodtask's event queue beside a JetStream yardstick on the same
//! machine.
//!
//! Producing a vodtask event means an UploadMedia call (a file written,
//! fsynced and probed), which costs far more than a bare publish, so every
//! consume figure is taken on a queue that was filled beforehand: each
//! consume run starts its own server, pre-loads `--events` events and only
//! then times how fast `--consumers` consumers drain it. JetStream gets the
//! same number of messages of the same size. Latency is measured from the
//! commit acknowledgement (UploadMedia returning, or the publish ack) to the
//! arrival at a consumer that was already waiting, one event at a time.

mod floor;
mod jetstream;
pub mod vodtask;

use std::time::Duration;

use anyhow::bail;

use crate::harness::measure::{
    self, CpuPerEvent, Drained, LatencyRun, Mode, PULL_WINDOW_BATCHES, Rate, WARMUP_SAMPLES,
};
use crate::harness::queue::Sizes;
use crate::harness::report::{self, Table, millis, per_second, thousands, verdict};
use crate::harness::server::ServerArgs;
use jetstream::Yardstick;
use vodtask::{ConsumePlan, ConsumeRun, Waiter};

/// The target from the issue: commit-to-delivery p99 below this.
const LATENCY_TARGET: Duration = Duration::from_millis(5);
/// The smallest latency the table shows (0.01 ms).
const VISIBLE_LATENCY: Duration = Duration::from_micros(10);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events pre-loaded before each consume run (and messages published to
    /// JetStream).
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Concurrent consumers in each consume run, each on its own connection.
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// Timed commit-to-delivery samples per latency line, after a warm-up.
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// Concurrent UploadMedia calls while producing and pre-loading, each on
    /// its own connection.
    #[arg(long, default_value_t = 32)]
    upload_clients: usize,
    /// Uploads in the production run, the one with the real ffprobe.
    #[arg(long, default_value_t = 1000)]
    produce_events: u64,
    /// The ffprobe of the pre-loading servers. A NewFileUpload event does
    /// not depend on what the probe says, and the real ffprobe (some 25
    /// probes/s on 2 cores) would make pre-loading most of the run; pass
    /// `ffprobe` to pre-load with the real one.
    #[arg(long, default_value = "true")]
    preload_ffprobe: String,
    /// The consume runs, in this order; vodtask and JetStream run the same
    /// list. `stream:N`: SubscribeEvents with N in flight; `pull:N`:
    /// PullEvents batches of N.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "stream:256,stream:16,pull:16,pull:256"
    )]
    modes: Vec<Mode>,
    /// Every mode runs this many times on each side, vodtask and JetStream
    /// alternating; the table shows medians.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// The NATS server with JetStream; loopback only.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Timed health checks measuring the CPU of a trivial unary call, the
    /// floor under each PullEvents and ConfirmEvents.
    #[arg(long, default_value_t = 20_000)]
    floor_calls: u64,
    #[command(flatten)]
    server: ServerArgs,
}

/// Everything one side measured.
struct Side {
    /// vodtask: with the real ffprobe.
    produce: Rate,
    /// vodtask: all pre-loads together, with `--preload-ffprobe`.
    preload: Rate,
    /// One per mode of `--modes` and round: round after round.
    consume: Vec<Drained>,
    pull_latency: LatencyRun,
    stream_latency: LatencyRun,
}

impl Side {
    /// The consume runs of mode `index`, one per round.
    fn rounds<'a>(
        &'a self,
        args: &Args,
        index: usize,
    ) -> impl Iterator<Item = &'a Drained> + Clone {
        self.consume.iter().skip(index).step_by(args.modes.len())
    }

    /// The consume rates of mode `index`, one per round.
    fn rates(&self, args: &Args, index: usize) -> Vec<f64> {
        self.rounds(args, index)
            .map(|d| d.rate.per_second())
            .collect()
    }

    /// Median over the rounds of mode `index`; None when a round has no
    /// reading.
    fn writer_per_event(&self, args: &Args, index: usize) -> Option<f64> {
        measure::median_over(self.rounds(args, index), Drained::writer_per_event)
    }

    /// None when a round has no CPU reading.
    fn cpu_per_event(&self, args: &Args, index: usize) -> Option<CpuPerEvent> {
        CpuPerEvent::median(self.rounds(args, index))
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.events == 0
        || args.consumers == 0
        || args.samples == 0
        || args.upload_clients == 0
        || args.produce_events == 0
        || args.floor_calls == 0
        || args.rounds == 0
        || args.modes.is_empty()
    {
        bail!(
            "--events, --consumers, --samples, --upload-clients, --produce-events, \
             --floor-calls and --rounds must be at least 1, and --modes must name a mode"
        );
    }
    jetstream::ensure_loopback(&args.nats_url)?;
    // Fail before the long vodtask runs if the yardstick is not there.
    let yardstick = Yardstick::connect(&args.nats_url).await?;

    eprintln!(
        "vodtask: produce, {} uploads with the real ffprobe",
        args.produce_events
    );
    let produce =
        vodtask::produce_run(&args.server, args.produce_events, args.upload_clients).await?;
    eprintln!("  {}/s", thousands(produce.per_second()));

    // The first vodtask run tells the size of an event, which JetStream's
    // messages copy; every later vodtask run comes right before JetStream's
    // run of the same mode and round.
    let mut runs = vec![vodtask_run(&args, 0, 0).await?];
    let payload_len = runs[0].sizes.average().round() as usize;
    let js = yardstick
        .measure(
            &jetstream::Plan {
                messages: args.events,
                payload_len,
                consumers: args.consumers,
                samples: args.samples,
                modes: &args.modes,
                rounds: args.rounds,
            },
            async |round, index| {
                if round > 0 || index > 0 {
                    runs.push(vodtask_run(&args, round, index).await?);
                }
                Ok(())
            },
        )
        .await?;
    eprintln!("vodtask: commit-to-delivery latency");
    let pull_latency = vodtask::latency_run(&args.server, args.samples, Waiter::LongPoll).await?;
    let stream_latency = vodtask::latency_run(&args.server, args.samples, Waiter::Stream).await?;
    eprintln!("vodtask: the CPU of a trivial unary call");
    let call_floor = floor::call_floor(&args.server, args.floor_calls).await?;

    // Every run pre-loads the same way: one figure over all of them.
    let mut preload = Rate {
        count: 0,
        elapsed: Duration::ZERO,
    };
    let mut sizes = Sizes::default();
    let mut not_confirmed = 0;
    for run in &runs {
        preload.count += run.preload.count;
        preload.elapsed += run.preload.elapsed;
        sizes.merge(&run.sizes);
        not_confirmed += run.not_confirmed;
    }
    let binary = runs[0].binary.display().to_string();
    let consume = runs.iter().map(|r| r.consume).collect();

    let report = Report {
        args: &args,
        binary,
        stream_name: yardstick.stream_name(),
        sizes,
        payload_len,
        not_confirmed,
        call_floor,
        vodtask: Side {
            produce,
            preload,
            consume,
            pull_latency,
            stream_latency,
        },
        jetstream: Side {
            // A publish is all JetStream has for both.
            produce: js.publish,
            preload: js.publish,
            consume: js.consume,
            pull_latency: js.pull_latency,
            stream_latency: js.stream_latency,
        },
    };
    report.print();
    Ok(())
}

/// vodtask's consume run of mode `index` in `round`.
async fn vodtask_run(args: &Args, round: usize, index: usize) -> anyhow::Result<ConsumeRun> {
    let mode = args.modes[index];
    eprintln!("vodtask: {}, round {}", mode.label(), round + 1);
    let plan = ConsumePlan {
        events: args.events,
        consumers: args.consumers,
        upload_clients: args.upload_clients,
        ffprobe: &args.preload_ffprobe,
    };
    let run = vodtask::consume_run(&args.server, &plan, mode).await?;
    eprintln!(
        "  pre-load {}/s, consume {}/s, {:.1} events per ConfirmEvents",
        thousands(run.preload.per_second()),
        thousands(run.consume.rate.per_second()),
        run.consume.rate.count as f64 / run.confirm_calls.max(1) as f64
    );
    Ok(run)
}

struct Report<'a> {
    args: &'a Args,
    binary: String,
    stream_name: String,
    sizes: Sizes,
    payload_len: usize,
    not_confirmed: u64,
    call_floor: Drained,
    vodtask: Side,
    jetstream: Side,
}

/// One line of the comparison table.
struct Line {
    what: String,
    vodtask: String,
    jetstream: String,
    ratio: String,
    target: String,
    verdict: String,
}

impl Report<'_> {
    fn print(&self) {
        let args = self.args;
        let flags: String = args
            .server
            .server_flags
            .iter()
            .map(|f| format!(" {f}"))
            .collect();
        report::print_heading(
            "vodtask-bench events",
            &[
                (
                    "vodtask",
                    format!(
                        "{} serve --workers 0{flags}, a fresh server and data dir per run",
                        self.binary
                    ),
                ),
                (
                    "JetStream",
                    format!(
                        "{}, stream {} (FILE storage, deleted at the end), durable pull \
                         consumers with explicit ack",
                        args.nats_url, self.stream_name
                    ),
                ),
                (
                    "cores",
                    format!(
                        "{} (shared by vodtask, nats-server and this benchmark)",
                        report::cores()
                    ),
                ),
                (
                    "events",
                    format!(
                        "{} per consume run; vodtask pre-loads them with {} concurrent \
                         UploadMedia calls, JetStream publishes them with {} acks in flight",
                        thousands(args.events as f64),
                        args.upload_clients,
                        jetstream::PUBLISH_WINDOW
                    ),
                ),
                (
                    "event size",
                    format!(
                        "vodtask content_json {:.0} bytes on average (min {}, max {}, over {} \
                         deliveries); JetStream payload {} bytes",
                        self.sizes.average(),
                        self.sizes.min,
                        self.sizes.max,
                        thousands(self.sizes.count as f64),
                        self.payload_len
                    ),
                ),
                (
                    "consumers",
                    format!(
                        "{} per consume run, each on its own connection; pull consumers keep \
                         up to {PULL_WINDOW_BATCHES} batches unconfirmed so that confirms \
                         overlap the next pull",
                        args.consumers
                    ),
                ),
                (
                    "latency",
                    format!(
                        "{} sequential events per line after {WARMUP_SAMPLES} untimed ones, \
                         one at a time, each to a consumer already waiting",
                        args.samples
                    ),
                ),
            ],
        );
        print_lines(&self.lines());
        report::print_notes(&self.notes());
    }

    fn lines(&self) -> Vec<Line> {
        let (v, j) = (&self.vodtask, &self.jetstream);
        let mut lines = vec![
            rate_line(
                "produce: UploadMedia (ffprobe) / publish+ack".into(),
                v.produce,
                j.produce,
                false,
            ),
            rate_line(
                format!(
                    "pre-load: UploadMedia (--ffprobe {}) / publish+ack",
                    self.args.preload_ffprobe
                ),
                v.preload,
                j.preload,
                false,
            ),
        ];
        for (index, &mode) in self.args.modes.iter().enumerate() {
            let what = match mode {
                Mode::Stream { max_in_flight } => {
                    format!("consume: SubscribeEvents {max_in_flight} / messages() {max_in_flight}")
                }
                Mode::Pull { batch } => format!("consume: PullEvents {batch} / fetch {batch}"),
            };
            let (vr, jr) = (v.rates(self.args, index), j.rates(self.args, index));
            let ratios: Vec<f64> = vr.iter().zip(&jr).map(|(v, j)| v / j).collect();
            let met = measure::median(&ratios).is_some_and(|r| r >= 1.0);
            lines.push(Line {
                what,
                vodtask: per_second(measure::median(&vr)),
                jetstream: per_second(measure::median(&jr)),
                ratio: measure::median(&ratios).map_or("n/a".into(), |r| format!("{r:.2}")),
                target: ">= JetStream".into(),
                verdict: verdict(met),
            });
        }
        for (index, &mode) in self.args.modes.iter().enumerate() {
            let (vc, jc) = (
                v.cpu_per_event(self.args, index),
                j.cpu_per_event(self.args, index),
            );
            let show = |c: Option<CpuPerEvent>| c.map_or("n/a".into(), |c| c.to_string());
            lines.push(Line {
                what: format!("CPU us/event (server+client): {}", mode.short()),
                vodtask: show(vc),
                jetstream: show(jc),
                ratio: match (vc, jc) {
                    (Some(vc), Some(jc)) => ratio(vc.total(), jc.total()),
                    _ => "n/a".into(),
                },
                target: "(info)".into(),
                verdict: String::new(),
            });
        }
        lines.push(Line {
            what: "CPU us per unary call (health check), server+client".into(),
            vodtask: self
                .call_floor
                .cpu_per_event()
                .map_or("n/a".into(), |c| c.to_string()),
            jetstream: "n/a".into(),
            ratio: String::new(),
            target: "(info)".into(),
            verdict: String::new(),
        });
        for (name, vl, jl) in [
            ("pull long poll", &v.pull_latency, &j.pull_latency),
            ("stream", &v.stream_latency, &j.stream_latency),
        ] {
            for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
                let vq = vl.latencies.quantile(q);
                let jq = jl.latencies.quantile(q);
                let mut line = Line {
                    what: format!("commit->delivery {label}, {name}"),
                    vodtask: millis(vq),
                    jetstream: millis(jq),
                    // Below what the table shows, JetStream's figure is the
                    // histogram's floor: a ratio to it would mean nothing.
                    ratio: if jq < VISIBLE_LATENCY {
                        "n/a".into()
                    } else {
                        ratio(vq.as_secs_f64(), jq.as_secs_f64())
                    },
                    target: String::new(),
                    verdict: String::new(),
                };
                if label == "p99" {
                    line.target = format!("< {}", millis(LATENCY_TARGET));
                    line.verdict = verdict(vq < LATENCY_TARGET);
                }
                lines.push(line);
            }
        }
        lines
    }

    fn call_floor_note(&self) -> String {
        let Some(per_call) = self.call_floor.cpu_per_event().map(CpuPerEvent::total) else {
            return "The unary call's CPU could not be read from /proc.".into();
        };
        let modes = &self.args.modes;
        let floor = self.per_mode(", ", |index| {
            format!("{:.1}", per_call * least_calls_per_event(modes[index]))
        });
        format!(
            "The per-call floor: a trivial unary call (grpc.health.v1 Health/Check; {} calls \
             from {} connections with {} in flight each) costs the server and this client \
             {per_call:.1} µs of CPU together. A stream consumer confirms at least once per \
             max_in_flight events, a pull consumer makes a PullEvents and a ConfirmEvents per \
             batch, so at least this much of each vodtask CPU line above, in µs/event, is that \
             floor: {}.{}",
            thousands(self.args.floor_calls as f64),
            floor::CONNECTIONS,
            floor::IN_FLIGHT,
            floor,
            self.bounds_note(per_call)
        )
    }

    /// What the calls alone say of each shallow mode: the deepest mode of
    /// the same kind in this run, less its own share of calls, plus the
    /// shallow mode's share is the least it can cost per event on this host.
    /// Above JetStream's figure, the calls alone rule the target out here.
    fn bounds_note(&self, per_call: f64) -> String {
        let modes = &self.args.modes;
        let bounds: Vec<String> = modes
            .iter()
            .enumerate()
            .filter_map(|(index, &mode)| {
                let (deep_index, &deep) = modes
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.same_kind(mode) && m.depth() > mode.depth())
                    .max_by_key(|(_, m)| m.depth())?;
                let deep_cpu = self.vodtask.cpu_per_event(self.args, deep_index)?.total();
                let js = self.jetstream.cpu_per_event(self.args, index)?.total();
                let bound = least_cpu_per_event(mode, deep, deep_cpu, per_call);
                let verdict = if bound > js {
                    "above JetStream's, so here the calls alone rule the target out"
                } else {
                    "not above JetStream's"
                };
                Some(format!(
                    "{} at least {bound:.1} (from {}) against JetStream's {js:.1}, {verdict}",
                    mode.short(),
                    deep.short()
                ))
            })
            .collect();
        if bounds.is_empty() {
            return String::new();
        }
        format!(
            " Added to a deeper mode's CPU per event less its own share of calls, that gives \
             the least a shallow mode can cost on this host: {}.",
            bounds.join("; ")
        )
    }

    /// `value` of each mode (by its index), after the mode's name.
    fn per_mode(&self, separator: &str, value: impl Fn(usize) -> String) -> String {
        let per_mode: Vec<String> = self
            .args
            .modes
            .iter()
            .enumerate()
            .map(|(index, mode)| format!("{} {}", mode.short(), value(index)))
            .collect();
        per_mode.join(separator)
    }

    /// How much of vodtask's server CPU per event its SQLite writer thread
    /// took: the group commits, most of them confirms.
    fn writer_note(&self) -> String {
        let writer = self.per_mode(", ", |index| {
            self.vodtask
                .writer_per_event(self.args, index)
                .map_or("n/a".into(), |w| format!("{w:.1}"))
        });
        format!(
            "Of vodtask's server CPU us/event above, its SQLite writer thread (the group \
             commits that each ConfirmEvents waits for) took: {writer}."
        )
    }

    fn notes(&self) -> Vec<String> {
        let v = &self.vodtask;
        let early = |side: &Side| side.pull_latency.early + side.stream_latency.early;
        let mut notes = vec![
            "Latency runs from the commit acknowledgement (UploadMedia's return; JetStream's \
             publish ack) to the arrival at the consumer in this process."
                .to_string(),
            format!(
                "Delivered before the producer had its acknowledgement, counted as 0 ms: vodtask \
                 {} of {samples}, JetStream {} of {samples}; a ratio to a JetStream latency under \
                 0.01 ms is n/a.",
                early(v),
                early(&self.jetstream),
                samples = 2 * self.args.samples,
            ),
            "Each vodtask ConfirmEvents is answered once its SQLite group commit is done \
             (fsynced under the default `--sync full`; the server's flags are above); leases \
             live in memory. JetStream's acks are fire-and-forget and nats-server does not \
             fsync each message."
                .to_string(),
            "A consume rate counts confirmed (vodtask) or acked (JetStream) events from the \
             first request to the last."
                .to_string(),
            {
                let ratios = self.per_mode("; ", |index| {
                    let v = self.vodtask.rates(self.args, index);
                    let j = self.jetstream.rates(self.args, index);
                    let ratios: Vec<String> = v
                        .iter()
                        .zip(&j)
                        .map(|(v, j)| format!("{:.2}", v / j))
                        .collect();
                    ratios.join(" ")
                });
                format!(
                    "{} round(s); each vodtask run came right before JetStream's run of the same \
                     mode; rates and ratios are medians over the rounds. Ratio per round: {ratios}.",
                    self.args.rounds,
                )
            },
            "CPU us/event: user plus system time of the server (vodtask or nats-server) and of \
             this benchmark's consumers over a consume run, per event, in 10 ms ticks."
                .to_string(),
            self.writer_note(),
            self.call_floor_note(),
            format!(
                "vodtask's produce rate ({} uploads) includes writing, fsyncing and probing each \
                 file with the real ffprobe; the pre-loads run `--ffprobe {}`, which changes \
                 nothing in the events.",
                self.args.produce_events, self.args.preload_ffprobe
            ),
            format!(
                "Targets: vodtask consumes at least at JetStream's rate; commit-to-delivery p99 \
                 under {}.",
                millis(LATENCY_TARGET)
            ),
        ];
        if self.not_confirmed > 0 {
            notes.push(format!(
                "{} vodtask confirms came back other than CONFIRMED (an expired lease); \
                 those events were delivered again and counted once confirmed.",
                self.not_confirmed
            ));
        }
        notes
    }
}

fn rate_line(what: String, vodtask: Rate, jetstream: Rate, target: bool) -> Line {
    let (v, j) = (vodtask.per_second(), jetstream.per_second());
    Line {
        what,
        vodtask: format!("{}/s", thousands(v)),
        jetstream: format!("{}/s", thousands(j)),
        ratio: ratio(v, j),
        target: if target { ">= JetStream" } else { "(info)" }.into(),
        verdict: if target {
            verdict(v >= j)
        } else {
            String::new()
        },
    }
}

fn ratio(vodtask: f64, jetstream: f64) -> String {
    if jetstream > 0.0 {
        format!("{:.2}", vodtask / jetstream)
    } else {
        String::new()
    }
}

/// The fewest unary calls per event a vodtask consumer can make: a
/// stream's consumer holds at most N unconfirmed, so it confirms at least
/// every N; a pull consumer pulls and confirms each batch.
fn least_calls_per_event(mode: Mode) -> f64 {
    match mode {
        Mode::Stream { max_in_flight } => 1.0 / f64::from(max_in_flight),
        Mode::Pull { batch } => 2.0 / f64::from(batch),
    }
}

/// The least CPU per event `mode` can cost, given what a `deeper` mode of
/// the same kind cost and what one unary call costs: the deeper mode's
/// figure with its own share of calls swapped for this mode's.
fn least_cpu_per_event(mode: Mode, deeper: Mode, deeper_cpu: f64, per_call: f64) -> f64 {
    deeper_cpu + per_call * (least_calls_per_event(mode) - least_calls_per_event(deeper))
}

fn print_lines(lines: &[Line]) {
    let mut table = Table::new(&[
        "measurement",
        "vodtask",
        "JetStream",
        "vodtask/JS",
        "target",
        "",
    ]);
    for l in lines {
        table.row([
            l.what.clone(),
            l.vodtask.clone(),
            l.jetstream.clone(),
            l.ratio.clone(),
            l.target.clone(),
            l.verdict.clone(),
        ]);
    }
    table.print();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(s: &str) -> Mode {
        s.parse().expect("a valid mode")
    }

    #[test]
    fn the_least_cost_swaps_the_deeper_modes_calls_for_the_shallow_ones() {
        // A stream confirms once per 16 instead of once per 256; a puller
        // makes two calls per batch.
        let stream = least_cpu_per_event(mode("stream:16"), mode("stream:256"), 13.0, 36.5);
        assert!((stream - 15.14).abs() < 0.01, "{stream}");
        let pull = least_cpu_per_event(mode("pull:16"), mode("pull:256"), 13.8, 36.5);
        assert!((pull - 18.08).abs() < 0.01, "{pull}");
    }
}
