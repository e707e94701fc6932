//! How every benchmark prints: a heading with what ran where, an aligned
//! table, and the notes below it; and the figures' formats.

use std::time::Duration;

use super::measure::Latencies;

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

/// Prints the rows as a table of latency quantiles, rates and targets.
pub fn print_rows(rows: &[Row]) {
    let mut table = Table::new(&["operation", "count", "p50", "p99", "rate", "target", ""]);
    for row in rows {
        table.row([
            row.operation.clone(),
            thousands(row.latencies.count() as f64),
            millis(row.latencies.quantile(0.5)),
            millis(row.latencies.quantile(0.99)),
            row.rate
                .map(|r| format!("{}/s", thousands(r)))
                .unwrap_or_default(),
            row.target.map(Target::describe).unwrap_or_default(),
            row.target
                .and_then(|t| t.met(row))
                .map(verdict)
                .unwrap_or_default(),
        ]);
    }
    table.print();
}

/// An aligned table: the first column left-aligned, the figures right-aligned,
/// a rule under the header.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.rows.push(cells.into_iter().collect());
    }

    pub fn print(&self) {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, (cell, &width)) in cells.iter().zip(&widths).enumerate() {
                if i == 0 {
                    out.push_str(&format!("{cell:<width$}"));
                } else {
                    out.push_str(&format!("  {cell:>width$}"));
                }
            }
            println!("{}", out.trim_end());
        };
        line(&self.header);
        println!(
            "{}",
            "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
        );
        for row in &self.rows {
            line(row);
        }
    }
}

/// A blank line, the benchmark's title, and what ran where, one `label:
/// value` line each (an empty label prints the value alone), then a blank
/// line.
pub fn print_heading(title: &str, fields: &[(&str, String)]) {
    let width = fields.iter().map(|(label, _)| label.len() + 2).max();
    println!();
    println!("{title}");
    for (label, value) in fields {
        if label.is_empty() {
            println!("  {value}");
        } else {
            let label = format!("{label}:");
            println!("  {label:<width$}{value}", width = width.unwrap_or(0));
        }
    }
    println!();
}

/// The notes under a table, after a blank line.
pub fn print_notes(notes: &[String]) {
    println!();
    for note in notes {
        println!("  - {note}");
    }
}

/// The cores this benchmark and everything it starts share.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

pub fn verdict(met: bool) -> String {
    if met { "met" } else { "MISSED" }.into()
}

/// `1.23 ms`: two decimals are enough to read sub-millisecond calls.
pub fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `12,345/s`, or `n/a` for none.
pub fn per_second(rate: Option<f64>) -> String {
    rate.map_or("n/a".into(), |r| format!("{}/s", thousands(r)))
}

/// A whole number with thousands separators: `1,234,567`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
