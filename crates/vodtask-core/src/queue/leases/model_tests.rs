//! A property test of the lease state machine against a reference model
//! (issue 29): random sequences of commits, takes, confirms, nacks,
//! extends, clock steps, broken streams, store writes (landing or failing),
//! redrives and restarts are applied to a `Leases` and to a plain model of
//! what docs/events.md promises; after every step the two
//! must agree and the queue's promises must hold.
//!
//! The harness plays the engine's part (`engine/events.rs`,
//! `engine/subscription.rs`): it is the store, writes settlements when told
//! to, answers the handles only the store can tell about, and rebuilds the
//! leases from the store on a restart.
//!
//! Backoffs are drawn with jitter from the thread's RNG, which proptest does
//! not seed. The model knows each draw's range, reads the drawn time back
//! from the structure, and the clock never stops inside a range, so whether
//! an event is due never depends on the draw and failures replay (only which
//! of two backed-off events goes first into a full batch can differ; the
//! model accepts either).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

use super::*;
use crate::time::from_micros;

/// Tasks (order keys) events are committed for.
const TASKS: usize = 2;
/// Holder 0 pulls (no consumer id); the others are streams.
const HOLDERS: usize = 3;
/// A stream's `max_in_flight`.
const MAX_IN_FLIGHT: u32 = 3;
/// The clock at the start: 2025, so event times look real.
const START: i64 = 1_750_000_000_000_000;
/// A handle naming no event of the app.
const FOREIGN_SEQ: i64 = 1_000_000;

type Check = Result<(), TestCaseError>;

// ---------------------------------------------------------------- the ops

#[derive(Debug, Clone)]
enum Pick {
    /// The last handle issued.
    Last,
    /// One of the last few handles issued (likely still live).
    Recent(Index),
    /// Any handle issued so far (likely stale).
    Any(Index),
    /// Not a handle at all (did not decode).
    Garbage,
    /// A well-formed handle of no event.
    Foreign,
}

#[derive(Debug, Clone)]
enum Op {
    /// A task's next event is committed (and loaded, as a refill would).
    Commit {
        task: usize,
    },
    /// A pull (holder 0, up to `max`) or a stream refill (up to its credit).
    Take {
        holder: usize,
        max: u32,
    },
    /// ConfirmEvents; `write_now`: the store write lands before the next op
    /// (else it stays in flight while other calls run).
    Confirm {
        picks: Vec<Pick>,
        write_now: bool,
    },
    Nack {
        picks: Vec<Pick>,
        delay_ms: Option<u64>,
    },
    Extend {
        picks: Vec<Pick>,
        secs: u64,
    },
    /// The clock moves on (leases run out, backoffs end).
    Advance {
        micros: i64,
    },
    /// The clock moves to the next lease's end (`past`: just beyond it) or
    /// the next event's due time: the boundaries.
    AdvanceTo {
        lease: bool,
        past: bool,
    },
    /// A stream breaks; a new stream takes its place.
    Release {
        holder: usize,
    },
    /// A settlement write in flight lands (`ok`) or fails.
    Flush {
        which: Index,
        ok: bool,
    },
    /// RedriveEvents of one dead-lettered event.
    Redrive {
        which: Index,
    },
    /// The process dies and starts again; writes in flight land where
    /// `landed` has their bit.
    Restart {
        landed: u8,
    },
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        3 => Just(Pick::Last),
        4 => any::<Index>().prop_map(Pick::Recent),
        3 => any::<Index>().prop_map(Pick::Any),
        1 => Just(Pick::Garbage),
        1 => Just(Pick::Foreign),
    ]
}

fn picks() -> impl Strategy<Value = Vec<Pick>> {
    prop::collection::vec(pick(), 1..=3)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..TASKS).prop_map(|task| Op::Commit { task }),
        5 => (0..HOLDERS, 1..=4u32).prop_map(|(holder, max)| Op::Take { holder, max }),
        4 => (picks(), any::<bool>()).prop_map(|(picks, write_now)| Op::Confirm { picks, write_now }),
        2 => (picks(), prop::option::of(0..5_000u64))
            .prop_map(|(picks, delay_ms)| Op::Nack { picks, delay_ms }),
        1 => (picks(), prop_oneof![1..=60u64, 43_000..=50_000u64])
            .prop_map(|(picks, secs)| Op::Extend { picks, secs }),
        4 => prop_oneof![0..2_000_000i64, 0..40_000_000i64, 0..1_500_000_000i64]
            .prop_map(|micros| Op::Advance { micros }),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(lease, past)| Op::AdvanceTo { lease, past }),
        1 => (1..HOLDERS).prop_map(|holder| Op::Release { holder }),
        3 => (any::<Index>(), prop::bool::weighted(0.8)).prop_map(|(which, ok)| Op::Flush { which, ok }),
        2 => any::<Index>().prop_map(|which| Op::Redrive { which }),
        1 => any::<u8>().prop_map(|landed| Op::Restart { landed }),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Config {
    lease: Duration,
    max_deliveries: Option<u32>,
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop_oneof![Just(1u64), Just(5), Just(30)],
        // Mostly low limits, so that events go dead (and come back).
        prop_oneof![1 => Just(None), 2 => Just(Some(1)), 2 => (2..=3u32).prop_map(Some)],
    )
        .prop_map(|(secs, max_deliveries)| Config {
            lease: Duration::from_secs(secs),
            max_deliveries,
        })
}

// -------------------------------------------------------------- the model

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Pending,
    Confirmed,
    Dead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Confirm,
    Dead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MState {
    /// Behind the task's current event.
    Waiting,
    /// Deliverable from `at` (None: a backoff drawn in `drawn`, not read
    /// back yet). `drawn` stays for the clock to keep clear of.
    Due {
        at: Option<i64>,
        drawn: Option<(i64, i64)>,
    },
    Leased {
        token: u64,
        until: i64,
        consumer: Option<ConsumerId>,
    },
    /// A settlement write is in flight.
    Settling(Outcome),
}

#[derive(Debug)]
struct MEvent {
    task: usize,
    task_sequence: i64,
    event_time: i64,
    stored: Stored,
    deliveries: u32,
    /// None: not in the queue (settled).
    mem: Option<MState>,
}

/// What a handle of a call should answer.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Is(HandleResult),
    /// A handle whose lease does not hold, of a pending event.
    Stale(i64),
}

#[derive(Debug)]
struct Write {
    seqs: Vec<(i64, u32)>,
    outcome: Outcome,
}

struct Harness {
    cfg: Config,
    real: Leases,
    now: i64,
    epoch: u32,
    /// Index = seq - 1.
    events: Vec<MEvent>,
    /// Each task's one event that may be due, out or settling.
    current: [Option<i64>; TASKS],
    /// A redriven event waits behind the task's current event, which was
    /// out when it came back: the only time a task goes out of seq order.
    held_over: [bool; TASKS],
    /// Every handle issued, in order.
    issued: Vec<MsgHandle>,
    /// The highest token issued in this epoch.
    last_token: u64,
    writes: Vec<Write>,
    consumers: [ConsumerId; HOLDERS],
    next_consumer: ConsumerId,
    step: usize,
}

/// The range a `backoff(deliveries)` from `from` lands in (±20 % jitter,
/// plus rounding).
fn backoff_window(from: i64, deliveries: u32) -> (i64, i64) {
    let base = (1i64 << deliveries.saturating_sub(1).min(10)).min(600);
    (from + base * 800_000 - 2, from + base * 1_200_000 + 2)
}

fn order_key(task: usize) -> String {
    format!("task-{task}")
}

impl Harness {
    fn new(cfg: Config) -> Self {
        Harness {
            cfg,
            real: Leases::new(1),
            now: START,
            epoch: 1,
            events: Vec::new(),
            current: [None; TASKS],
            held_over: [false; TASKS],
            issued: Vec::new(),
            last_token: 0,
            writes: Vec::new(),
            consumers: [1, 2, 3],
            next_consumer: HOLDERS as ConsumerId + 1,
            step: 0,
        }
    }

    fn rules(&self) -> TakeRules {
        TakeRules {
            lease: self.cfg.lease,
            max_deliveries: self.cfg.max_deliveries,
        }
    }

    fn ts(&self) -> Timestamp {
        from_micros(self.now)
    }

    fn ev(&self, seq: i64) -> Option<&MEvent> {
        usize::try_from(seq - 1)
            .ok()
            .and_then(|i| self.events.get(i))
    }

    fn ev_mut(&mut self, seq: i64) -> &mut MEvent {
        let i = usize::try_from(seq - 1).expect("model seqs start at 1");
        &mut self.events[i]
    }

    fn seqs(&self) -> impl Iterator<Item = i64> + '_ {
        1..=self.events.len() as i64
    }

    fn loaded(&self, seq: i64) -> PendingEvent {
        let e = self.ev(seq).expect("loading an event the model has");
        PendingEvent {
            seq,
            order_key: order_key(e.task),
            event: Event {
                event_id: format!("ev-{seq}"),
                event_type: "TranscodeComplete".into(),
                task_id: order_key(e.task),
                event_time: from_micros(e.event_time),
                task_sequence: e.task_sequence,
                content_json: "{}".into(),
                // The store keeps no count for pending events: after a
                // restart or a redrive, counting starts over.
                deliveries: 0,
            },
        }
    }

    /// The task's pending events in the queue, ascending.
    fn task_seqs(&self, task: usize) -> Vec<i64> {
        self.seqs()
            .filter(|&s| {
                self.ev(s)
                    .is_some_and(|e| e.task == task && e.mem.is_some())
            })
            .collect()
    }

    /// A handle's lease holds (the one delivery it names, still leased).
    fn live(&self, h: &MsgHandle) -> bool {
        h.epoch == self.epoch
            && self.ev(h.seq).is_some_and(|e| {
                matches!(e.mem, Some(MState::Leased { token, until, .. })
                    if token == h.token && until >= self.now)
            })
    }

    fn apply(&mut self, op: &Op) -> Check {
        match op {
            Op::Commit { task } => self.commit(*task),
            Op::Take { holder, max } => self.take(*holder, *max)?,
            Op::Confirm { picks, write_now } => {
                self.change(picks, LeaseChange::Settle, *write_now)?
            }
            Op::Nack { picks, delay_ms } => self.change(
                picks,
                LeaseChange::Nack(delay_ms.map(Duration::from_millis)),
                false,
            )?,
            Op::Extend { picks, secs } => self.change(
                picks,
                LeaseChange::Extend(Duration::from_secs(*secs)),
                false,
            )?,
            Op::Advance { micros } => self.advance(*micros),
            Op::AdvanceTo { lease, past } => {
                let now = self.now;
                let next = self
                    .events
                    .iter()
                    .filter_map(|e| match e.mem? {
                        MState::Leased { until, .. } if *lease => Some(until),
                        MState::Due { at, .. } if !*lease => at,
                        _ => None,
                    })
                    .filter(|&t| t >= now)
                    .min();
                if let Some(t) = next {
                    self.advance(t - now + i64::from(*past));
                }
            }
            Op::Release { holder } => self.release(*holder)?,
            Op::Flush { which, ok } => {
                if !self.writes.is_empty() {
                    let i = which.index(self.writes.len());
                    self.flush(i, *ok)?;
                }
            }
            Op::Redrive { which } => {
                let dead: Vec<i64> = self
                    .seqs()
                    .filter(|&s| self.ev(s).is_some_and(|e| e.stored == Stored::Dead))
                    .collect();
                if !dead.is_empty() {
                    self.redrive(dead[which.index(dead.len())]);
                }
            }
            Op::Restart { landed } => self.restart(*landed),
        }
        self.end_step()
    }

    /// After each op: read back the backoffs drawn, and check. Steps in
    /// messages count ops from 0.
    fn end_step(&mut self) -> Check {
        self.read_back_draws()?;
        self.check()?;
        self.step += 1;
        Ok(())
    }

    fn commit(&mut self, task: usize) {
        let seq = self.events.len() as i64 + 1;
        let task_sequence = self.events.iter().filter(|e| e.task == task).count() as i64 + 1;
        let mem = if self.current[task].is_some() {
            MState::Waiting
        } else {
            self.current[task] = Some(seq);
            MState::Due {
                at: Some(self.now),
                drawn: None,
            }
        };
        self.events.push(MEvent {
            task,
            task_sequence,
            event_time: self.now,
            stored: Stored::Pending,
            deliveries: 0,
            mem: Some(mem),
        });
        self.real.insert(self.loaded(seq));
    }

    /// Leases that ran out by now get their backoff, as `Leases::expire`.
    fn sweep(&mut self) {
        let now = self.now;
        for e in &mut self.events {
            if let Some(MState::Leased { until, .. }) = e.mem
                && until < now
            {
                e.mem = Some(MState::Due {
                    at: None,
                    drawn: Some(backoff_window(until, e.deliveries)),
                });
            }
        }
    }

    /// The model's due interval of an event (exact when known).
    fn due_range(&self, seq: i64) -> Option<(i64, i64)> {
        match self.ev(seq)?.mem? {
            MState::Due { at: Some(t), .. } => Some((t, t)),
            MState::Due {
                at: None,
                drawn: Some(w),
            } => Some(w),
            _ => None,
        }
    }

    fn take(&mut self, holder: usize, max: u32) -> Check {
        let consumer = (holder != 0).then(|| self.consumers[holder]);
        self.sweep();
        let max = match consumer {
            None => max,
            Some(c) => {
                // A stream takes what its credit allows (subscription.rs).
                let held = self.real.held_by(c, self.ts());
                let model = self.held(c);
                prop_assert_eq!(held, model, "held_by({}) at step {}", c, self.step);
                MAX_IN_FLIGHT.saturating_sub(held)
            }
        };
        if max == 0 {
            return Ok(());
        }
        let now = self.now;
        let (out, dead) = self.real.take(max, consumer, self.rules(), self.ts());

        // Due events: surely due or surely not, the clock being clear of
        // every drawn range.
        let candidates: Vec<(i64, (i64, i64))> = self
            .seqs()
            .filter_map(|s| self.due_range(s).map(|r| (s, r)))
            .filter(|&(_, (lo, hi))| hi < now || (lo == hi && lo <= now))
            .collect();
        prop_assert!(
            self.seqs()
                .filter_map(|s| self.due_range(s))
                .all(|(lo, hi)| lo == hi || hi < now || lo > now),
            "harness: the clock stopped inside a backoff's range"
        );
        let got: BTreeSet<i64> = out
            .iter()
            .map(|d| d.handle.seq)
            .chain(dead.iter().map(|&(s, _)| s))
            .collect();
        prop_assert_eq!(got.len(), out.len() + dead.len(), "an event taken twice");

        for d in &out {
            let seq = d.handle.seq;
            let e = self
                .ev(seq)
                .ok_or_else(|| fail(format!("unknown seq {seq} taken")))?;
            prop_assert!(
                e.stored != Stored::Confirmed,
                "step {}: confirmed event {} delivered again",
                self.step,
                seq
            );
            prop_assert!(
                !matches!(e.mem, Some(MState::Leased { .. } | MState::Settling(_))),
                "step {}: event {} handed out while {:?}",
                self.step,
                seq,
                e.mem
            );
            self.check_order(seq, &out)?;
            prop_assert!(
                candidates.iter().any(|&(s, _)| s == seq),
                "step {}: event {} taken while not due ({:?})",
                self.step,
                seq,
                e.mem
            );
            prop_assert!(
                self.cfg.max_deliveries.is_none_or(|m| e.deliveries < m),
                "step {}: event {} delivered beyond max_deliveries",
                self.step,
                seq
            );
            prop_assert_eq!(d.event.deliveries, e.deliveries + 1);
            prop_assert_eq!(&d.event.event_id, &format!("ev-{seq}"));
            prop_assert_eq!(d.event.task_sequence, e.task_sequence);
            prop_assert_eq!(d.handle.epoch, self.epoch);
            prop_assert!(d.handle.token > self.last_token, "a token reused");
            self.last_token = d.handle.token;
        }
        for &(seq, n) in &dead {
            let e = self
                .ev(seq)
                .ok_or_else(|| fail(format!("unknown seq {seq} dead")))?;
            prop_assert!(candidates.iter().any(|&(s, _)| s == seq));
            prop_assert!(
                self.cfg.max_deliveries.is_some_and(|m| e.deliveries >= m),
                "step {}: event {} dead-lettered after {} deliveries",
                self.step,
                seq,
                e.deliveries
            );
            prop_assert_eq!(n, e.deliveries);
        }
        // Every due event that could be leased was, up to `max`; dead ones
        // only as met on the way.
        let leasable = candidates
            .iter()
            .filter(|&&(s, _)| {
                let d = self.ev(s).map_or(0, |e| e.deliveries);
                self.cfg.max_deliveries.is_none_or(|m| d < m)
            })
            .count();
        prop_assert_eq!(
            out.len(),
            leasable.min(max as usize),
            "step {}: due events left behind",
            self.step
        );
        if out.len() < max as usize {
            prop_assert_eq!(got.len(), candidates.len(), "due events left behind");
        }
        // Oldest due first: nothing left behind was surely due before
        // something taken.
        for &(x, (_, hi_x)) in candidates.iter().filter(|(s, _)| !got.contains(s)) {
            for &(y, (lo_y, _)) in candidates.iter().filter(|(s, _)| got.contains(s)) {
                prop_assert!(
                    (lo_y, y) < (hi_x, x),
                    "step {}: {} taken before {}, due earlier",
                    self.step,
                    y,
                    x
                );
            }
        }

        let until = now + micros(self.cfg.lease);
        for d in &out {
            let e = self.ev_mut(d.handle.seq);
            e.deliveries += 1;
            e.mem = Some(MState::Leased {
                token: d.handle.token,
                until,
                consumer,
            });
            self.issued.push(d.handle);
        }
        for &(seq, _) in &dead {
            self.ev_mut(seq).mem = Some(MState::Settling(Outcome::Dead));
        }
        if !dead.is_empty() {
            self.writes.push(Write {
                seqs: dead,
                outcome: Outcome::Dead,
            });
        }
        if let Some(c) = consumer {
            prop_assert!(self.held(c) <= MAX_IN_FLIGHT, "a stream over its credit");
        }
        Ok(())
    }

    /// Per-task order: a task's event goes out only as the task's one
    /// current event, and only when no earlier event of the task is still
    /// unsettled (save a redriven one, which waits for the one that was out
    /// when it came back).
    fn check_order(&self, seq: i64, batch: &[Delivery]) -> Check {
        let e = self.ev(seq).ok_or_else(|| fail("unknown seq".into()))?;
        let task = e.task;
        for s in self.task_seqs(task).into_iter().filter(|&s| s != seq) {
            let other = self.ev(s).and_then(|o| o.mem);
            prop_assert!(
                !matches!(other, Some(MState::Leased { .. } | MState::Settling(_)))
                    && !batch.iter().any(|d| d.handle.seq == s),
                "step {}: event {} of task {} handed out while {} is {:?}",
                self.step,
                seq,
                task,
                s,
                other
            );
            prop_assert!(
                s > seq || self.held_over[task],
                "step {}: event {} of task {} handed out before earlier event {}",
                self.step,
                seq,
                task,
                s
            );
        }
        prop_assert_eq!(
            self.current[task],
            Some(seq),
            "step {}: not the task's current event",
            self.step
        );
        Ok(())
    }

    fn resolve_pick(&self, p: &Pick) -> Option<Option<MsgHandle>> {
        let n = self.issued.len();
        match p {
            Pick::Garbage => Some(None),
            Pick::Foreign => Some(Some(MsgHandle {
                epoch: self.epoch,
                seq: FOREIGN_SEQ,
                token: 1,
            })),
            Pick::Last if n > 0 => Some(Some(self.issued[n - 1])),
            Pick::Recent(i) if n > 0 => {
                let k = n.min(4);
                Some(Some(self.issued[n - k + i.index(k)]))
            }
            Pick::Any(i) if n > 0 => Some(Some(self.issued[i.index(n)])),
            _ => None,
        }
    }

    /// What the store says of a handle the queue cannot place
    /// (`Engine::resolve`).
    fn store_says(&self, seq: i64) -> HandleResult {
        match self.ev(seq).map(|e| e.stored) {
            Some(Stored::Confirmed) => HandleResult::AlreadyConfirmed,
            Some(Stored::Pending | Stored::Dead) => HandleResult::Expired,
            None => HandleResult::Unknown,
        }
    }

    fn change(&mut self, picks: &[Pick], op: LeaseChange, write_now: bool) -> Check {
        let handles: Vec<Option<MsgHandle>> =
            picks.iter().filter_map(|p| self.resolve_pick(p)).collect();
        if handles.is_empty() {
            return Ok(());
        }
        let v = self.real.change(&handles, op, self.ts());
        prop_assert_eq!(v.results.len(), handles.len());

        // The model, handle by handle (a handle can settle an event that a
        // later handle of the same call names).
        let mut expect: Vec<Expect> = Vec::new();
        let mut confirm = Vec::new();
        let mut credited = Vec::new();
        for h in &handles {
            let Some(h) = h else {
                expect.push(Expect::Is(HandleResult::Unknown));
                continue;
            };
            if !self.live(h) {
                expect.push(match self.ev(h.seq).map(|e| e.stored) {
                    None => Expect::Is(HandleResult::Unknown),
                    Some(Stored::Confirmed) => Expect::Is(HandleResult::AlreadyConfirmed),
                    Some(_) => Expect::Stale(h.seq),
                });
                continue;
            }
            expect.push(Expect::Is(HandleResult::Done));
            let now = self.now;
            let e = self.ev_mut(h.seq);
            let Some(MState::Leased {
                token, consumer, ..
            }) = e.mem
            else {
                return Err(fail("a live handle's event is not leased".into()));
            };
            match op {
                LeaseChange::Settle => {
                    e.mem = Some(MState::Settling(Outcome::Confirm));
                    confirm.push(h.seq);
                    credited.extend(consumer);
                }
                LeaseChange::Extend(by) => {
                    e.mem = Some(MState::Leased {
                        token,
                        until: now + micros(by.min(MAX_VISIBILITY_TIMEOUT)),
                        consumer,
                    });
                }
                LeaseChange::Nack(delay) => {
                    e.mem = Some(match delay {
                        Some(d) => MState::Due {
                            at: Some(now + micros(d)),
                            drawn: None,
                        },
                        None => MState::Due {
                            at: None,
                            drawn: Some(backoff_window(now, e.deliveries)),
                        },
                    });
                    credited.extend(consumer);
                }
            }
        }
        credited.sort_unstable();
        credited.dedup();
        prop_assert_eq!(&v.confirm, &confirm, "step {}: confirmed", self.step);
        prop_assert_eq!(&v.credited, &credited, "step {}: credited", self.step);

        // The engine writes the confirms, then asks the store about the
        // handles the queue could not place.
        if !confirm.is_empty() {
            self.writes.push(Write {
                seqs: confirm.iter().map(|&s| (s, 0)).collect(),
                outcome: Outcome::Confirm,
            });
            if write_now {
                self.flush(self.writes.len() - 1, true)?;
            }
        }
        let mut unknown = v.unknown.iter();
        for (i, (raw, h)) in v.results.iter().zip(&handles).enumerate() {
            let answer = match raw {
                Some(r) => *r,
                None => {
                    let seq = unknown
                        .next()
                        .ok_or_else(|| fail("fewer unknown seqs than None results".into()))?;
                    prop_assert_eq!(Some(*seq), h.map(|h| h.seq));
                    self.store_says(*seq)
                }
            };
            let ok = match expect[i] {
                Expect::Is(r) => answer == r,
                // Stale: EXPIRED, or ALREADY_CONFIRMED if the event is
                // confirmed by the time the call answers (a confirm in
                // flight, or one by another handle of this call).
                Expect::Stale(seq) => {
                    answer == HandleResult::Expired
                        || answer == HandleResult::AlreadyConfirmed
                            && self.ev(seq).is_some_and(|e| e.stored == Stored::Confirmed)
                }
            };
            prop_assert!(
                ok,
                "step {}: {:?} of {:?} answered {:?}, expected {:?}",
                self.step,
                op,
                h,
                answer,
                expect[i]
            );
        }
        prop_assert!(
            unknown.next().is_none(),
            "more unknown seqs than None results"
        );
        Ok(())
    }

    /// The clock moves on, and steps past any range a backoff was (or will
    /// be) drawn from, so that no outcome hangs on the draw.
    fn advance(&mut self, by: i64) {
        self.now += by;
        loop {
            let hit = self
                .events
                .iter()
                .filter_map(|e| match e.mem? {
                    MState::Leased { until, .. } => Some(backoff_window(until, e.deliveries)),
                    MState::Due { drawn, .. } => drawn,
                    _ => None,
                })
                .find(|&(lo, hi)| lo <= self.now && self.now <= hi);
            match hit {
                Some((_, hi)) => self.now = hi + 1,
                None => break,
            }
        }
    }

    fn release(&mut self, holder: usize) -> Check {
        let c = self.consumers[holder];
        let n = self.real.release(c, self.ts());
        let now = self.now;
        let mut mine = 0;
        for e in &mut self.events {
            if let Some(MState::Leased {
                consumer: Some(x), ..
            }) = e.mem
                && x == c
            {
                e.mem = Some(MState::Due {
                    at: Some(now),
                    drawn: None,
                });
                mine += 1;
            }
        }
        prop_assert_eq!(n, mine, "step {}: released", self.step);
        // Stream ids are never reused: the next stream is another.
        self.consumers[holder] = self.next_consumer;
        self.next_consumer += 1;
        Ok(())
    }

    fn flush(&mut self, i: usize, ok: bool) -> Check {
        let w = self.writes.remove(i);
        let seqs: Vec<i64> = w.seqs.iter().map(|&(s, _)| s).collect();
        let now = self.now;
        if !ok {
            self.real.unsettle(&seqs, self.ts());
            for &s in &seqs {
                self.ev_mut(s).mem = Some(MState::Due {
                    at: Some(now),
                    drawn: None,
                });
            }
            return Ok(());
        }
        let mut news = false;
        for &s in &seqs {
            let e = self.ev_mut(s);
            if e.stored == Stored::Pending {
                e.stored = match w.outcome {
                    Outcome::Confirm => Stored::Confirmed,
                    Outcome::Dead => Stored::Dead,
                };
            }
            e.mem = None;
            let task = e.task;
            prop_assert_eq!(
                self.current[task],
                Some(s),
                "harness: settled a non-current event"
            );
            {
                self.held_over[task] = false;
                self.current[task] = self.task_seqs(task).first().copied();
                if let Some(next) = self.current[task] {
                    let n = self.ev_mut(next);
                    if n.mem == Some(MState::Waiting) {
                        n.mem = Some(MState::Due {
                            at: Some(now),
                            drawn: None,
                        });
                        news = true;
                    }
                }
            }
        }
        let real_news = self.real.settled(&seqs, self.ts());
        prop_assert_eq!(real_news, news, "step {}: settled's news", self.step);
        Ok(())
    }

    /// RedriveEvents of one dead-lettered event.
    fn redrive(&mut self, seq: i64) {
        let (task, event_time) = {
            let e = self.ev_mut(seq);
            e.stored = Stored::Pending;
            e.deliveries = 0;
            (e.task, e.event_time)
        };
        let due = MState::Due {
            at: Some(event_time),
            drawn: None,
        };
        let first = self.task_seqs(task).first().is_none_or(|&s| s > seq);
        let mem = match self.current[task] {
            None => {
                self.current[task] = Some(seq);
                due
            }
            // Not the task's earliest: it waits its turn.
            Some(_) if !first => MState::Waiting,
            Some(cur) => match self.ev(cur).and_then(|e| e.mem) {
                // The current one is out: it stays out, this one waits.
                Some(MState::Leased { .. } | MState::Settling(_)) => {
                    self.held_over[task] = true;
                    MState::Waiting
                }
                // Not out: this one goes first.
                _ => {
                    self.ev_mut(cur).mem = Some(MState::Waiting);
                    self.current[task] = Some(seq);
                    self.held_over[task] = false;
                    due
                }
            },
        };
        self.ev_mut(seq).mem = Some(mem);
        self.real.insert(self.loaded(seq));
    }

    fn restart(&mut self, landed: u8) {
        for (i, w) in std::mem::take(&mut self.writes).into_iter().enumerate() {
            if landed & (1 << (i % 8)) == 0 {
                continue;
            }
            for (s, _) in w.seqs {
                let e = self.ev_mut(s);
                if e.stored == Stored::Pending {
                    e.stored = match w.outcome {
                        Outcome::Confirm => Stored::Confirmed,
                        Outcome::Dead => Stored::Dead,
                    };
                }
            }
        }
        self.epoch += 1;
        self.last_token = 0;
        self.real = Leases::new(self.epoch);
        self.current = [None; TASKS];
        self.held_over = [false; TASKS];
        for seq in self.seqs().collect::<Vec<_>>() {
            let e = self.ev_mut(seq);
            e.deliveries = 0;
            if e.stored != Stored::Pending {
                e.mem = None;
                continue;
            }
            let task = e.task;
            let at = e.event_time;
            let mem = if self.current[task].is_some() {
                MState::Waiting
            } else {
                self.current[task] = Some(seq);
                MState::Due {
                    at: Some(at),
                    drawn: None,
                }
            };
            self.ev_mut(seq).mem = Some(mem);
            // The window refills in seq order.
            self.real.insert(self.loaded(seq));
        }
        // Streams die with the process.
        for c in self.consumers.iter_mut().skip(1) {
            *c = self.next_consumer;
            self.next_consumer += 1;
        }
    }

    /// Backoffs drawn by this step: read back, and in their range.
    fn read_back_draws(&mut self) -> Check {
        for seq in self.seqs().collect::<Vec<_>>() {
            let Some(MState::Due {
                at: None,
                drawn: Some((lo, hi)),
            }) = self.ev(seq).and_then(|e| e.mem)
            else {
                continue;
            };
            let real = self.real.entries.get(&seq).map(|e| e.state);
            let Some(State::Due(t)) = real else {
                return Err(fail(format!(
                    "step {}: event {seq} should be backing off, is {real:?}",
                    self.step
                )));
            };
            prop_assert!(
                lo <= t && t <= hi,
                "step {}: event {} backs off to {}, outside {}..{}",
                self.step,
                seq,
                t,
                lo,
                hi
            );
            self.ev_mut(seq).mem = Some(MState::Due {
                at: Some(t),
                drawn: Some((lo, hi)),
            });
        }
        Ok(())
    }

    fn held(&self, c: ConsumerId) -> u32 {
        self.events
            .iter()
            .filter(|e| matches!(e.mem, Some(MState::Leased { consumer: Some(x), .. }) if x == c))
            .count() as u32
    }

    /// The structure agrees with the model, and its indexes with itself.
    fn check(&self) -> Check {
        let step = self.step;
        let real = &self.real;
        // The same events, in the same states.
        let model_seqs: BTreeSet<i64> = self
            .seqs()
            .filter(|&s| self.ev(s).is_some_and(|e| e.mem.is_some()))
            .collect();
        let real_seqs: BTreeSet<i64> = real.entries.keys().copied().collect();
        prop_assert_eq!(
            &real_seqs,
            &model_seqs,
            "step {}: events in the queue",
            step
        );
        for &seq in &model_seqs {
            let e = self.ev(seq).ok_or_else(|| fail("model seq".into()))?;
            let r = &real.entries[&seq];
            prop_assert_eq!(
                r.event.deliveries,
                e.deliveries,
                "step {}: deliveries of {}",
                step,
                seq
            );
            prop_assert_eq!(r.order_key.to_string(), order_key(e.task));
            let same = match (e.mem, r.state) {
                (Some(MState::Waiting), State::Waiting) => true,
                (Some(MState::Due { at: Some(a), .. }), State::Due(b)) => a == b,
                (
                    Some(MState::Leased {
                        token,
                        until,
                        consumer,
                    }),
                    State::Leased {
                        token: t,
                        until: u,
                        consumer: c,
                    },
                ) => token == t && until == u && consumer == c,
                (Some(MState::Settling(_)), State::Settling) => true,
                _ => false,
            };
            prop_assert!(
                same,
                "step {}: event {} is {:?}, the model says {:?}",
                step,
                seq,
                r.state,
                e.mem
            );
        }

        // The indexes.
        let due: BTreeSet<(i64, i64)> = real
            .entries
            .iter()
            .filter_map(|(&s, e)| match e.state {
                State::Due(t) => Some((t, s)),
                _ => None,
            })
            .collect();
        prop_assert_eq!(&real.due, &due, "step {}: due index", step);
        let leases: BTreeSet<(i64, i64)> = real
            .entries
            .iter()
            .filter_map(|(&s, e)| match e.state {
                State::Leased { until, .. } => Some((until, s)),
                _ => None,
            })
            .collect();
        prop_assert_eq!(&real.leases, &leases, "step {}: lease index", step);
        let mut keys: HashMap<&str, Vec<i64>> = HashMap::new();
        for (&s, e) in &real.entries {
            keys.entry(&*e.order_key).or_default().push(s);
        }
        for list in keys.values_mut() {
            list.sort_unstable();
        }
        let real_keys: HashMap<&str, Vec<i64>> = real
            .keys
            .iter()
            .map(|(k, l)| (&**k, l.iter().copied().collect()))
            .collect();
        prop_assert_eq!(&real_keys, &keys, "step {}: key lists", step);
        let mut held: BTreeMap<ConsumerId, u32> = BTreeMap::new();
        for e in real.entries.values() {
            if let State::Leased {
                consumer: Some(c), ..
            } = e.state
            {
                *held.entry(c).or_default() += 1;
            }
        }
        let real_held: BTreeMap<ConsumerId, u32> =
            real.held.iter().map(|(&c, &n)| (c, n)).collect();
        prop_assert_eq!(&real_held, &held, "step {}: credit held", step);

        // One event of a task at a time: the current one.
        for task in 0..TASKS {
            let key = order_key(task);
            let active: Vec<i64> = real
                .entries
                .iter()
                .filter(|(_, e)| &*e.order_key == key.as_str() && e.state != State::Waiting)
                .map(|(&s, _)| s)
                .collect();
            prop_assert!(
                active.len() <= 1,
                "step {}: task {} has {:?} not waiting",
                step,
                task,
                active
            );
            prop_assert_eq!(
                active.first().copied(),
                self.current[task],
                "step {}: task {}'s events not waiting: {:?}",
                step,
                task,
                active
            );
        }

        // Handles: the live ones hold, every other one answers stale.
        let now = self.now;
        let mut live = BTreeSet::new();
        for &h in &self.issued {
            let holds = real.held_lease(&h, now).is_ok();
            prop_assert_eq!(holds, self.live(&h), "step {}: handle {:?}", step, h);
            if holds {
                prop_assert!(
                    live.insert(h.seq),
                    "step {}: two live handles of {}",
                    step,
                    h.seq
                );
            }
        }

        // Counts, and when things change by themselves.
        let mut counts = Counts::default();
        for e in self.events.iter().filter_map(|e| e.mem) {
            match e {
                MState::Leased { until, .. } if until >= now => counts.in_flight += 1,
                MState::Settling(_) => counts.in_flight += 1,
                MState::Due { at: Some(t), .. } if t <= now => counts.ready += 1,
                _ => counts.delayed += 1,
            }
        }
        prop_assert_eq!(real.counts(self.ts()), counts, "step {}: counts", step);
        let until = self
            .events
            .iter()
            .filter_map(|e| match e.mem? {
                MState::Leased { until, .. } => Some(until),
                _ => None,
            })
            .min();
        prop_assert_eq!(real.next_expiry(), until.map(|t| from_micros(t + 1)));
        let due_at = self
            .events
            .iter()
            .filter_map(|e| match e.mem? {
                MState::Due { at, .. } => at,
                _ => None,
            })
            .min();
        let change = due_at.into_iter().chain(until.map(|t| t + 1)).min();
        prop_assert_eq!(real.next_change(), change.map(from_micros));
        Ok(())
    }
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

proptest! {
    /// Any sequence of queue operations keeps the queue's promises.
    #[test]
    fn leases_keep_the_queue_promises(
        cfg in config(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut h = Harness::new(cfg);
        for op in &ops {
            h.apply(op)?;
        }
    }
}

/// The bug the property test found (see `Leases::insert`): a second
/// redrive of an older event of a task, while a redriven one waited behind
/// the task's event that was out, let two events of the task out at once.
#[test]
fn a_second_redrive_waits_behind_the_event_that_is_out() {
    let mut h = Harness::new(Config {
        lease: Duration::from_secs(30),
        max_deliveries: Some(1),
    });
    let step = |h: &mut Harness, r: Check| {
        r.and_then(|()| h.end_step())
            .expect("the queue keeps its promises");
    };
    for _ in 0..3 {
        h.commit(0);
        step(&mut h, Ok(()));
    }
    // Events 1 and 2 go dead: delivered once, nacked, over the limit.
    for _ in 0..2 {
        let r = h.take(0, 1);
        step(&mut h, r);
        let r = h.change(
            &[Pick::Last],
            LeaseChange::Nack(Some(Duration::ZERO)),
            false,
        );
        step(&mut h, r);
        let r = h.take(0, 1);
        step(&mut h, r);
        let r = h.flush(0, true);
        step(&mut h, r);
    }
    let r = h.take(0, 1);
    step(&mut h, r);
    assert_eq!(h.issued.last().map(|h| h.seq), Some(3), "event 3 is out");
    h.redrive(2);
    step(&mut h, Ok(()));
    h.redrive(1);
    step(&mut h, Ok(()));
    let r = h.take(0, 4);
    step(&mut h, r);
}
