//! Latency histograms and the results table.

use std::time::Duration;

use hdrhistogram::Histogram;

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

/// What a row is measured against.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// At least this many calls per second.
    MinRate(f64),
    /// p99 below this.
    MaxP99(Duration),
}

impl Target {
    fn describe(self) -> String {
        match self {
            Target::MinRate(rate) => format!(">= {}/s", thousands(rate)),
            Target::MaxP99(p99) => format!("p99 < {}", millis(p99)),
        }
    }

    fn met(self, row: &Row) -> Option<bool> {
        match self {
            Target::MinRate(min) => row.rate.map(|rate| rate >= min),
            Target::MaxP99(max) => Some(row.latencies.quantile(0.99) < max),
        }
    }
}

/// One measured operation.
pub struct Row {
    pub operation: String,
    pub latencies: Latencies,
    /// Calls per second, for the throughput phases.
    pub rate: Option<f64>,
    pub target: Option<Target>,
}

impl Row {
    pub fn new(operation: impl Into<String>, latencies: Latencies) -> Self {
        Row {
            operation: operation.into(),
            latencies,
            rate: None,
            target: None,
        }
    }

    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = Some(rate);
        self
    }

    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }
}

/// Prints the rows as an aligned table.
pub fn print_table(rows: &[Row]) {
    let header = ["operation", "count", "p50", "p99", "rate", "target", ""];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            let verdict = match row.target.and_then(|t| t.met(row)) {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "",
            };
            [
                row.operation.clone(),
                thousands(row.latencies.count() as f64),
                millis(row.latencies.quantile(0.5)),
                millis(row.latencies.quantile(0.99)),
                row.rate
                    .map(|r| format!("{}/s", thousands(r)))
                    .unwrap_or_default(),
                row.target.map(Target::describe).unwrap_or_default(),
                verdict.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            // Left-align the operation name, right-align the figures.
            if i == 0 {
                out.push_str(&format!("{cell:<width$}"));
            } else {
                out.push_str(&format!("  {cell:>width$}"));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&header);
    println!(
        "{}",
        "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
    );
    for row in &cells {
        line(&row.each_ref().map(String::as_str));
    }
}

/// `1.23 ms`: two decimals are enough to read sub-millisecond calls.
pub fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A whole number with thousands separators: `1,234,567`.
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

pub fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
