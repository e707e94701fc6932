//! `compare`: two server binaries side by side on the event queue, for
//! telling whether a change to the server made it faster on a machine whose
//! other tenants move every single figure.
//!
//! One queue is pre-loaded once; each drain runs on a fresh copy of its
//! database, so a round costs a server start and a drain instead of a
//! pre-load. The binaries alternate (A then B, then B then A) so that both
//! meet the same moments of the machine, and the report gives B's medians
//! against A's, beside the CPU time each spent per event.

use std::path::PathBuf;

use anyhow::bail;

use crate::harness::measure::{CpuPerEvent, Drained, Mode, median, median_over};
use crate::harness::queue;
use crate::harness::report::{self, Table, thousands};
use crate::harness::server::{ClientTransport, Server, ServerArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events in the queue that every drain empties.
    #[arg(long, default_value_t = 40_000)]
    events: u64,
    /// Concurrent consumers in each drain, each on its own connection.
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// The drains of each round, in this order (as in `events`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "stream:16,pull:16,stream:256,pull:256"
    )]
    modes: Vec<Mode>,
    /// Every mode is drained this many times by each binary.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Concurrent UploadMedia calls while pre-loading.
    #[arg(long, default_value_t = 32)]
    upload_clients: usize,
    /// Server B, measured against `--vodtask-bin` (A); the same file for
    /// comparing clients, or for measuring the noise.
    #[arg(long)]
    vodtask_bin_b: PathBuf,
    /// How A's consumers connect.
    #[arg(long, value_enum, default_value_t)]
    client_a: ClientTransport,
    /// How B's consumers connect.
    #[arg(long, value_enum, default_value_t)]
    client_b: ClientTransport,
    /// A flag for B's drain servers only, after `--server-flag`s, e.g.
    /// `--server-flag-b=--sync=normal` (B may be A's binary); repeatable.
    #[arg(long = "server-flag-b", allow_hyphen_values = true)]
    server_flags_b: Vec<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// One drain by one binary.
struct Run {
    drained: Drained,
    confirm_calls: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.drained.rate.per_second()
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.rounds == 0 || args.modes.is_empty() {
        bail!("--rounds and --modes must not be empty");
    }
    if !args.vodtask_bin_b.is_file() {
        bail!(
            "--vodtask-bin-b {}: no such file",
            args.vodtask_bin_b.display()
        );
    }
    let binaries = [args.server.binary()?, args.vodtask_bin_b.clone()];
    let drain_flags = |side: usize| {
        let mut flags = vec!["--workers", "0"];
        flags.extend(args.server.server_flags.iter().map(String::as_str));
        if side == 1 {
            flags.extend(args.server_flags_b.iter().map(String::as_str));
        }
        flags
    };

    eprintln!("pre-loading {} events with A", args.events);
    let loader = Server::start(&args.server, &["--workers", "0", "--ffprobe", "true"]).await?;
    let loaded = queue::preload(&loader.default_app(), args.events, args.upload_clients).await;
    let template = loader.kill_keeping_dir().await?;
    let preload = loaded?;
    eprintln!("  {}/s", thousands(preload.per_second()));
    let data = template.path().join("data");

    // runs[mode][binary]: one per round.
    let mut runs: Vec<[Vec<Run>; 2]> = args.modes.iter().map(|_| [vec![], vec![]]).collect();
    for round in 0..args.rounds {
        for (m, &mode) in args.modes.iter().enumerate() {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                let mut server = Server::start_with(
                    binaries[side].clone(),
                    Some(&data),
                    false,
                    &drain_flags(side),
                    &[],
                )
                .await?;
                server.client_transport = [args.client_a, args.client_b][side];
                let (drained, tally) = server
                    .run(async |server| {
                        queue::drain(&[server], args.consumers, args.events, mode).await
                    })
                    .await?;
                if tally.not_confirmed() > 0 {
                    bail!(
                        "{} drain of round {}: {} confirm results were not CONFIRMED",
                        mode.short(),
                        round + 1,
                        tally.not_confirmed()
                    );
                }
                let run = Run {
                    drained,
                    confirm_calls: tally.confirm_calls(),
                };
                eprintln!(
                    "round {} {} {}: {}/s, CPU µs/event {} (SQLite writer {})",
                    round + 1,
                    mode.short(),
                    ["A", "B"][side],
                    thousands(run.rate()),
                    run.drained
                        .cpu_per_event()
                        .map_or("n/a".into(), |c| format!("{:.1}+{:.1}", c.server, c.client)),
                    run.drained
                        .writer_per_event()
                        .map_or("n/a".into(), |w| format!("{w:.1}"))
                );
                runs[m][side].push(run);
            }
        }
    }
    report(&args, &binaries, &runs);
    Ok(())
}

fn report<'a>(args: &Args, binaries: &[PathBuf; 2], runs: &'a [[Vec<Run>; 2]]) {
    let flags = |extra: &[String]| {
        let all: Vec<&str> = args
            .server
            .server_flags
            .iter()
            .chain(extra)
            .map(String::as_str)
            .collect();
        if all.is_empty() {
            String::new()
        } else {
            format!(" {}", all.join(" "))
        }
    };
    report::print_heading(
        "vodtask-bench compare",
        &[
            (
                "A",
                format!(
                    "{}{} ({:?} client)",
                    binaries[0].display(),
                    flags(&[]),
                    args.client_a
                ),
            ),
            (
                "B",
                format!(
                    "{}{} ({:?} client)",
                    binaries[1].display(),
                    flags(&args.server_flags_b),
                    args.client_b
                ),
            ),
            (
                "",
                format!(
                    "{} events pre-loaded once; each drain on a fresh copy of that database, by \
                     {} consumers; {} rounds, A and B alternating",
                    args.events, args.consumers, args.rounds
                ),
            ),
        ],
    );
    let mut table = Table::new(&[
        "mode",
        "A events/s",
        "B events/s",
        "B/A",
        "A CPU µs/ev srv+cli",
        "B CPU µs/ev srv+cli",
        "B/A srv",
    ]);
    let mut notes = Vec::new();
    for (m, mode) in args.modes.iter().enumerate() {
        let [a, b] = &runs[m];
        let drains = |side: &'a [Run]| side.iter().map(|r| &r.drained);
        let rate = |side| {
            median(
                &drains(side)
                    .map(|d| d.rate.per_second())
                    .collect::<Vec<_>>(),
            )
        };
        let (a_rate, b_rate) = (rate(a).unwrap_or(0.0), rate(b).unwrap_or(0.0));
        let (a_cpu, b_cpu) = (
            CpuPerEvent::median(drains(a)),
            CpuPerEvent::median(drains(b)),
        );
        let shown = |c: Option<CpuPerEvent>| c.map_or("n/a".into(), |c| c.to_string());
        let server_ratio = a_cpu
            .zip(b_cpu)
            .map_or("n/a".into(), |(a, b)| format!("{:.2}", b.server / a.server));
        table.row([
            mode.short(),
            thousands(a_rate),
            thousands(b_rate),
            format!("{:.2}", b_rate / a_rate.max(1e-9)),
            shown(a_cpu),
            shown(b_cpu),
            server_ratio,
        ]);
        let per_round: Vec<String> = a
            .iter()
            .zip(b)
            .map(|(a, b)| format!("{:.2}", b.rate() / a.rate().max(1e-9)))
            .collect();
        let per_confirm = |side: &[Run]| {
            let events: u64 = side.iter().map(|r| r.drained.rate.count).sum();
            let calls: u64 = side.iter().map(|r| r.confirm_calls).sum();
            events as f64 / calls.max(1) as f64
        };
        let writer = |side| {
            median_over(drains(side), Drained::writer_per_event)
                .map_or("n/a".into(), |w| format!("{w:.1}"))
        };
        notes.push(format!(
            "{}: B/A rate per round {}; events per ConfirmEvents A {:.1}, B {:.1}; the \
             server's SQLite writer thread, CPU µs/event A {}, B {}",
            mode.short(),
            per_round.join(" "),
            per_confirm(a),
            per_confirm(b),
            writer(a),
            writer(b)
        ));
    }
    table.print();
    notes.push(
        "Rates and CPU are medians over the rounds; CPU is user plus system time of the \
         server and of this benchmark's consumers, in 10 ms ticks."
            .into(),
    );
    report::print_notes(&notes);
}
