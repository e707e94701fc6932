//! Event leasing: which loaded events are waiting behind an earlier event
//! of their task, which are due (and from when), which are leased to whom,
//! and which are being settled. This is the in-memory implementation, for a
//! store that one process owns: pure and synchronous, and lost in a crash
//! on purpose (every unconfirmed event is then simply delivered again); the
//! hub does the durable writes (see `queue/hub.rs`).
//!
//! The contract any implementation keeps, per event, and what a store
//! shared by several processes must therefore hold in its rows:
//! - a lease token per delivery, so that a handle names one delivery: an
//!   old handle (an expired lease, a redelivery, a handle from before a
//!   restart) answers EXPIRED or ALREADY_CONFIRMED, never settles a newer
//!   delivery (here: `token` plus the process `epoch` in the handle);
//! - visible-at: when the event may be delivered next (its event time, a
//!   nack's delay, an expired lease's backoff) and, while leased, until
//!   when (here: `Due(t)` and `Leased { until }`);
//! - the delivery count, which max_deliveries compares and which grows with
//!   each lease, whether or not it was confirmed;
//! - the consumer holding the lease (a stream or a callback worker), so
//!   that a consumer's leases can be released at once and its credit
//!   counted;
//! - head of line per order key (a task): at most one event of a key is
//!   out at a time, the earliest unsettled one, and the next becomes due
//!   only when it is settled (a redriven earlier event waits for the one
//!   out, then goes first).
//!
//! Invariants: an entry is in `due` iff its state is `Due`, in `leases` iff
//! `Leased`; at most one entry of a key is not `Waiting`, and it is the
//! front of the key's list unless a redriven event came back in front of it
//! while it was out (`insert`). `model_tests.rs` checks them.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::events::{
    Delivery, Event, EventConfig, HandleResult, MAX_VISIBILITY_TIMEOUT, MsgHandle,
};
use crate::store::PendingEvent;
pub use crate::store::leases::LeaseChange;
use crate::time::{Timestamp, from_micros, to_micros};

/// Identifies a stream (SubscribeEvents), whose leases are released together
/// when it breaks and whose in-flight count is its used credit.
pub type ConsumerId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Behind an earlier unsettled event of the same key.
    Waiting,
    /// Deliverable from this time (micros).
    Due(i64),
    Leased {
        token: u64,
        until: i64,
        consumer: Option<ConsumerId>,
    },
    /// A confirm or dead-letter write is on its way to the store; the event
    /// is with nobody and goes to nobody meanwhile.
    Settling,
}

#[derive(Debug)]
struct Entry {
    event: Event,
    order_key: Arc<str>,
    state: State,
}

/// What became of the handles of one settle call.
#[derive(Debug, Default)]
pub struct Verdicts {
    /// One per handle; None where only the store can tell (the event is not
    /// in memory, or the handle is from an earlier run).
    pub results: Vec<Option<HandleResult>>,
    /// Events now `Settling`, to be written as confirmed.
    pub confirm: Vec<i64>,
    /// The seqs of the `None` results, for the store to look up.
    pub unknown: Vec<i64>,
    /// Streams whose credit came back (each once): only they need waking.
    pub credited: Vec<ConsumerId>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub ready: i64,
    pub in_flight: i64,
    pub delayed: i64,
}

#[derive(Debug)]
pub struct Leases {
    epoch: u32,
    next_token: u64,
    entries: HashMap<i64, Entry>,
    /// Unsettled seqs of each order key, ascending.
    keys: HashMap<Arc<str>, VecDeque<i64>>,
    due: BTreeSet<(i64, i64)>,
    leases: BTreeSet<(i64, i64)>,
    held: HashMap<ConsumerId, u32>,
}

impl Leases {
    pub fn new(epoch: u32) -> Self {
        Leases {
            epoch,
            next_token: 1,
            entries: HashMap::new(),
            keys: HashMap::new(),
            due: BTreeSet::new(),
            leases: BTreeSet::new(),
            held: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn due_len(&self) -> usize {
        self.due.len()
    }

    /// Events leased to (or being confirmed by) a stream.
    /// Leases that ran out by `now` no longer count: their credit is back.
    pub fn held_by(&mut self, consumer: ConsumerId, now: Timestamp) -> u32 {
        self.expire(to_micros(now));
        self.held.get(&consumer).copied().unwrap_or(0)
    }

    /// Adds an unsettled event. It is due at its event time if it is the
    /// earliest of its key, else it waits.
    pub fn insert(&mut self, loaded: PendingEvent) {
        if self.entries.contains_key(&loaded.seq) {
            return;
        }
        let key: Arc<str> = match self.keys.get_key_value(loaded.order_key.as_str()) {
            Some((k, _)) => Arc::clone(k),
            None => Arc::from(loaded.order_key.as_str()),
        };
        let list = self.keys.entry(Arc::clone(&key)).or_default();
        let at = list.partition_point(|&s| s < loaded.seq);
        list.insert(at, loaded.seq);
        let state = if at == 0 {
            // A redriven event can come before a head that is already out;
            // that head stays where it is and this one waits for it. The
            // head is the key's one event not waiting, which need not be
            // the old front: an earlier redrive may wait in front of it.
            let head = list.iter().skip(1).copied().find(|s| {
                self.entries
                    .get(s)
                    .is_some_and(|e| e.state != State::Waiting)
            });
            match head.and_then(|s| self.entries.get_mut(&s).map(|e| (s, e))) {
                Some((_, e)) if !matches!(e.state, State::Due(_)) => State::Waiting,
                Some((s, e)) => {
                    if let State::Due(t) = e.state {
                        self.due.remove(&(t, s));
                    }
                    e.state = State::Waiting;
                    State::Due(to_micros(loaded.event.event_time))
                }
                None => State::Due(to_micros(loaded.event.event_time)),
            }
        } else {
            State::Waiting
        };
        if let State::Due(t) = state {
            self.due.insert((t, loaded.seq));
        }
        self.entries.insert(
            loaded.seq,
            Entry {
                event: loaded.event,
                order_key: key,
                state,
            },
        );
    }

    /// Leases that ran out become due again after a backoff.
    fn expire(&mut self, now: i64) {
        while let Some(&(until, seq)) = self.leases.first() {
            if until >= now {
                break;
            }
            self.leases.pop_first();
            let Some(entry) = self.entries.get_mut(&seq) else {
                continue;
            };
            if let State::Leased { consumer, .. } = entry.state {
                release_credit(&mut self.held, consumer);
                let again = until + micros(crate::events::backoff(entry.event.deliveries));
                entry.state = State::Due(again);
                self.due.insert((again, seq));
            }
        }
    }

    /// Leases up to `max` due events, oldest due first. Events that used up
    /// their deliveries are not leased but returned as `dead` (now settling).
    pub fn take(
        &mut self,
        max: u32,
        consumer: Option<ConsumerId>,
        rules: TakeRules,
        now: Timestamp,
    ) -> (Vec<Delivery>, Vec<(i64, u32)>) {
        let now = to_micros(now);
        self.expire(now);
        let until = now + micros(rules.lease);
        let mut out = Vec::new();
        let mut dead = Vec::new();
        while out.len() < max as usize {
            let Some(&(at, seq)) = self.due.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.due.pop_first();
            let Some(entry) = self.entries.get_mut(&seq) else {
                continue;
            };
            if rules
                .max_deliveries
                .is_some_and(|m| entry.event.deliveries >= m)
            {
                entry.state = State::Settling;
                dead.push((seq, entry.event.deliveries));
                continue;
            }
            entry.event.deliveries += 1;
            let token = self.next_token;
            self.next_token += 1;
            entry.state = State::Leased {
                token,
                until,
                consumer,
            };
            self.leases.insert((until, seq));
            if let Some(c) = consumer {
                *self.held.entry(c).or_default() += 1;
            }
            out.push(Delivery {
                handle: MsgHandle {
                    epoch: self.epoch,
                    seq,
                    token,
                },
                event: entry.event.clone(),
            });
        }
        (out, dead)
    }

    /// The lease behind a handle if it still holds; else the handle's
    /// answer, or None when only the store knows.
    fn held_lease(&self, h: &MsgHandle, now: i64) -> Result<Lease, Option<HandleResult>> {
        if h.epoch != self.epoch {
            return Err(None);
        }
        match self.entries.get(&h.seq).map(|e| e.state) {
            None => Err(None),
            Some(State::Leased {
                token,
                until,
                consumer,
            }) if token == h.token && until >= now => Ok(Lease {
                token,
                until,
                consumer,
            }),
            // Being confirmed by an earlier handle of the same call, or
            // dead-lettered: the store will tell which, once written.
            Some(State::Settling) => Err(None),
            Some(_) => Err(Some(HandleResult::Expired)),
        }
    }

    /// Applies a confirm, extend or nack to each handle whose lease holds.
    /// Confirmed events become `Settling` (listed in `confirm`) until the
    /// caller has written them and calls `settled`.
    pub fn change(
        &mut self,
        handles: &[Option<MsgHandle>],
        op: LeaseChange,
        now: Timestamp,
    ) -> Verdicts {
        let now = to_micros(now);
        let mut v = Verdicts::default();
        for h in handles {
            let Some(h) = h else {
                v.results.push(Some(HandleResult::Unknown));
                continue;
            };
            let lease = match self.held_lease(h, now) {
                Ok(lease) => lease,
                Err(Some(r)) => {
                    v.results.push(Some(r));
                    continue;
                }
                Err(None) => {
                    v.unknown.push(h.seq);
                    v.results.push(None);
                    continue;
                }
            };
            let Some(entry) = self.entries.get_mut(&h.seq) else {
                continue;
            };
            self.leases.remove(&(lease.until, h.seq));
            match op {
                LeaseChange::Settle => {
                    // The stream's credit comes back now, not after the
                    // write: the consumer is done with the event, and if the
                    // write fails the event goes to whoever is next.
                    release_credit(&mut self.held, lease.consumer);
                    v.credited.extend(lease.consumer);
                    entry.state = State::Settling;
                    v.confirm.push(h.seq);
                }
                LeaseChange::Extend(by) => {
                    let until = now + micros(by.min(MAX_VISIBILITY_TIMEOUT));
                    entry.state = Lease { until, ..lease }.into();
                    self.leases.insert((until, h.seq));
                }
                LeaseChange::Nack(delay) => {
                    let delay =
                        delay.unwrap_or_else(|| crate::events::backoff(entry.event.deliveries));
                    let at = now + micros(delay);
                    entry.state = State::Due(at);
                    self.due.insert((at, h.seq));
                    release_credit(&mut self.held, lease.consumer);
                    v.credited.extend(lease.consumer);
                }
            }
            v.results.push(Some(HandleResult::Done));
        }
        v.credited.sort_unstable();
        v.credited.dedup();
        v
    }

    /// The store recorded these events as settled (confirmed or dead): they
    /// leave, and the next event of each key becomes due. True when that
    /// made an event due or gave a stream credit: someone may have work.
    #[must_use]
    pub fn settled(&mut self, seqs: &[i64], now: Timestamp) -> bool {
        let now = to_micros(now);
        let mut news = false;
        for &seq in seqs {
            let Some(entry) = self.entries.remove(&seq) else {
                continue;
            };
            if let State::Leased { consumer, .. } = entry.state {
                release_credit(&mut self.held, consumer);
                news = true;
            }
            self.forget_indexes(seq, entry.state);
            let Some(list) = self.keys.get_mut(&entry.order_key) else {
                continue;
            };
            list.retain(|&s| s != seq);
            match list.front() {
                None => {
                    self.keys.remove(&entry.order_key);
                }
                Some(&next) => {
                    if let Some(e) = self.entries.get_mut(&next)
                        && e.state == State::Waiting
                    {
                        e.state = State::Due(now);
                        self.due.insert((now, next));
                        news = true;
                    }
                }
            }
        }
        news
    }

    /// Makes a due event due now (a resend). Events behind an earlier one
    /// of their task, and events out with a consumer, stay as they are.
    pub fn due_now(&mut self, seq: i64, now: Timestamp) {
        let now = to_micros(now);
        if let Some(entry) = self.entries.get_mut(&seq)
            && let State::Due(at) = entry.state
            && at > now
        {
            self.due.remove(&(at, seq));
            entry.state = State::Due(now);
            self.due.insert((now, seq));
        }
    }

    /// The write of settling events failed: they are due again at once.
    pub fn unsettle(&mut self, seqs: &[i64], now: Timestamp) {
        let now = to_micros(now);
        for &seq in seqs {
            if let Some(entry) = self.entries.get_mut(&seq)
                && entry.state == State::Settling
            {
                entry.state = State::Due(now);
                self.due.insert((now, seq));
            }
        }
    }

    /// A stream broke: its leased events are due at once (its settling ones
    /// finish as they would have).
    pub fn release(&mut self, consumer: ConsumerId, now: Timestamp) -> usize {
        let now = to_micros(now);
        let mine: Vec<(i64, i64)> = self
            .leases
            .iter()
            .copied()
            .filter(|(_, seq)| {
                self.entries.get(seq).is_some_and(
                    |e| matches!(e.state, State::Leased { consumer: Some(c), .. } if c == consumer),
                )
            })
            .collect();
        for (until, seq) in &mine {
            self.leases.remove(&(*until, *seq));
            if let Some(entry) = self.entries.get_mut(seq) {
                entry.state = State::Due(now);
                self.due.insert((now, *seq));
            }
        }
        if let Some(n) = self.held.get_mut(&consumer) {
            *n = n.saturating_sub(mine.len() as u32);
            if *n == 0 {
                self.held.remove(&consumer);
            }
        }
        mine.len()
    }

    /// Drops events older than `cutoff` (their rows were deleted by
    /// retention); true as `settled`.
    #[must_use]
    pub fn forget_before(&mut self, cutoff: Timestamp, now: Timestamp) -> bool {
        let old: Vec<i64> = self
            .entries
            .iter()
            .filter(|(_, e)| e.event.event_time < cutoff)
            .map(|(&s, _)| s)
            .collect();
        self.settled(&old, now)
    }

    /// When the earliest lease runs out (whoever holds it).
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.leases.first().map(|&(t, _)| from_micros(t + 1))
    }

    /// When the next due or leased event changes state by itself.
    pub fn next_change(&self) -> Option<Timestamp> {
        let due = self.due.first().map(|&(t, _)| t);
        let lease = self.leases.first().map(|&(t, _)| t + 1);
        due.into_iter().chain(lease).min().map(from_micros)
    }

    /// Counts of the loaded events.
    pub fn counts(&self, now: Timestamp) -> Counts {
        let now = to_micros(now);
        let mut c = Counts::default();
        for e in self.entries.values() {
            match e.state {
                State::Leased { until, .. } if until >= now => c.in_flight += 1,
                State::Settling => c.in_flight += 1,
                State::Due(t) if t <= now => c.ready += 1,
                _ => c.delayed += 1,
            }
        }
        c
    }

    fn forget_indexes(&mut self, seq: i64, state: State) {
        match state {
            State::Due(t) => {
                self.due.remove(&(t, seq));
            }
            State::Leased { until, .. } => {
                self.leases.remove(&(until, seq));
            }
            _ => {}
        }
    }
}

/// How a take leases events.
#[derive(Debug, Clone, Copy)]
pub struct TakeRules {
    pub lease: Duration,
    /// Events delivered this often go dead instead (None: no limit).
    pub max_deliveries: Option<u32>,
}

impl From<&EventConfig> for TakeRules {
    fn from(c: &EventConfig) -> TakeRules {
        TakeRules {
            lease: c.visibility_timeout,
            max_deliveries: Some(c.max_deliveries),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    token: u64,
    until: i64,
    consumer: Option<ConsumerId>,
}

impl From<Lease> for State {
    fn from(l: Lease) -> State {
        State::Leased {
            token: l.token,
            until: l.until,
            consumer: l.consumer,
        }
    }
}

fn release_credit(held: &mut HashMap<ConsumerId, u32>, consumer: Option<ConsumerId>) {
    if let Some(c) = consumer
        && let Some(n) = held.get_mut(&c)
    {
        *n = n.saturating_sub(1);
        if *n == 0 {
            held.remove(&c);
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod model_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::now;

    fn loaded(seq: i64, key: &str) -> PendingEvent {
        PendingEvent {
            seq,
            order_key: key.into(),
            event: Event {
                event_id: format!("ev-{seq}"),
                event_type: "TranscodeComplete".into(),
                task_id: key.into(),
                event_time: now() - chrono::Duration::seconds(1),
                task_sequence: seq,
                content_json: "{}".into(),
                deliveries: 0,
            },
        }
    }

    fn seqs(d: &[Delivery]) -> Vec<i64> {
        d.iter().map(|d| d.handle.seq).collect()
    }

    #[test]
    fn one_key_goes_in_order_and_other_keys_are_not_held_up() {
        let cfg = EventConfig::default();
        let mut l = Leases::new(7);
        l.insert(loaded(1, "a"));
        l.insert(loaded(2, "a"));
        l.insert(loaded(3, "b"));
        let (got, dead) = l.take(10, None, (&cfg).into(), now());
        assert_eq!(seqs(&got), vec![1, 3]);
        assert!(dead.is_empty());
        let v = l.change(&[Some(got[0].handle)], LeaseChange::Settle, now());
        assert_eq!(v.confirm, vec![1]);
        assert_eq!(
            l.take(10, None, (&cfg).into(), now()).0.len(),
            0,
            "settling holds the key"
        );
        assert!(l.settled(&v.confirm, now()), "the key's next event is due");
        assert_eq!(seqs(&l.take(10, None, (&cfg).into(), now()).0), vec![2]);
    }

    #[test]
    fn handles_die_with_their_delivery() {
        let cfg = EventConfig::default();
        let mut l = Leases::new(7);
        l.insert(loaded(1, "a"));
        let first = l.take(1, None, (&cfg).into(), now()).0[0].handle;
        let v = l.change(
            &[Some(first)],
            LeaseChange::Nack(Some(Duration::ZERO)),
            now(),
        );
        assert_eq!(v.results, vec![Some(HandleResult::Done)]);
        let second = l.take(1, None, (&cfg).into(), now()).0[0].handle;
        assert_ne!(first, second);
        let v = l.change(&[Some(first), Some(second)], LeaseChange::Settle, now());
        assert_eq!(
            v.results,
            vec![Some(HandleResult::Expired), Some(HandleResult::Done)]
        );
        let stale = MsgHandle { epoch: 6, ..second };
        assert_eq!(
            l.change(&[Some(stale)], LeaseChange::Settle, now()).unknown,
            vec![1]
        );
    }

    #[test]
    fn credits_return_and_released_streams_give_events_back() {
        let cfg = EventConfig::default();
        let mut l = Leases::new(1);
        for s in 1..=4 {
            l.insert(loaded(s, &format!("k{s}")));
        }
        let got = l.take(3, Some(9), (&cfg).into(), now()).0;
        assert_eq!(l.held_by(9, now()), 3);
        let v = l.change(&[Some(got[0].handle)], LeaseChange::Settle, now());
        assert_eq!(
            l.held_by(9, now()),
            2,
            "credit returns when the confirm is accepted"
        );
        assert_eq!(v.credited, vec![9], "and only that stream needs waking");
        assert!(
            !l.settled(&v.confirm, now()),
            "a key's last event settled: nothing new for anyone"
        );
        assert_eq!(l.held_by(9, now()), 2);
        assert_eq!(l.release(9, now()), 2);
        assert_eq!(l.held_by(9, now()), 0);
        let mut back = seqs(&l.take(10, None, (&cfg).into(), now()).0);
        back.sort();
        assert_eq!(back, vec![2, 3, 4]);
    }

    #[test]
    fn a_stream_gets_its_credit_back_when_its_leases_run_out() {
        let cfg = EventConfig::default();
        let mut l = Leases::new(1);
        l.insert(loaded(1, "a"));
        l.insert(loaded(2, "b"));
        let got = l.take(2, Some(9), (&cfg).into(), now()).0;
        assert_eq!(got.len(), 2);
        assert_eq!(l.held_by(9, now()), 2);
        let expiry = l.next_expiry().expect("leases are out");
        assert_eq!(
            l.held_by(9, expiry),
            0,
            "nobody else took from the queue, and still the credit is back"
        );
    }

    #[test]
    fn used_up_deliveries_go_dead() {
        let cfg = EventConfig {
            max_deliveries: 1,
            ..EventConfig::default()
        };
        let mut l = Leases::new(1);
        l.insert(loaded(1, "a"));
        let h = l.take(1, None, (&cfg).into(), now()).0[0].handle;
        l.change(&[Some(h)], LeaseChange::Nack(Some(Duration::ZERO)), now());
        let (got, dead) = l.take(1, None, (&cfg).into(), now());
        assert!(got.is_empty());
        assert_eq!(dead, vec![(1, 1)]);
        assert_eq!(l.counts(now()).in_flight, 1, "settling counts as in flight");
        assert!(!l.settled(&[1], now()));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn expired_leases_come_back_after_backoff() {
        let cfg = EventConfig {
            visibility_timeout: Duration::from_millis(1),
            ..EventConfig::default()
        };
        let mut l = Leases::new(1);
        l.insert(loaded(1, "a"));
        let h = l.take(1, None, (&cfg).into(), now()).0[0].handle;
        let later = now() + chrono::Duration::seconds(5);
        let (got, _) = l.take(1, None, (&cfg).into(), later);
        assert_eq!(seqs(&got), vec![1]);
        assert_eq!(got[0].event.deliveries, 2);
        assert_eq!(
            l.change(&[Some(h)], LeaseChange::Settle, later).results,
            vec![Some(HandleResult::Expired)]
        );
    }
}
