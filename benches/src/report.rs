//! Medians with min–max, ratios, targets: the Markdown table and the JSON file.

use serde_json::{Value, json};

/// Samples per implementation (`addin`, `raw`, `hop`, …) of one row, in insertion order.
type Row = Vec<(String, Vec<f64>)>;

/// Samples of every scenario row, in insertion order.
#[derive(Default)]
pub struct Results {
    rows: Vec<(String, Row)>,
}

/// Median, min and max of some samples.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Metric {
    fn of(v: &[f64]) -> Option<Metric> {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Metric {
            median,
            min: s[0],
            max: s[n - 1],
        })
    }
}

/// What a row must reach, as a ratio or an absolute bound on the add-in's median.
enum Target {
    /// add-in / raw+hop at least.
    HopAtLeast(f64),
    /// add-in / raw at least.
    RawAtLeast(f64),
    /// add-in / raw at most.
    RawAtMost(f64),
    /// add-in at most.
    AtMost(f64),
    /// add-in at least.
    AtLeast(f64),
    /// No target.
    None,
}

fn target_of(name: &str) -> Target {
    if name.starts_with("1.") || name.starts_with("2.") || name.starts_with("3.") {
        Target::HopAtLeast(0.5)
    } else if name.starts_with("4.") {
        Target::HopAtLeast(0.4)
    } else if name.starts_with("5.") && name.contains("p50") {
        Target::RawAtMost(1.25)
    } else if name.starts_with("5.") {
        Target::RawAtMost(1.5)
    } else if name.starts_with("6.") && name.contains("ПринятьОт") {
        // Issue 16: one connection's next message with 10,000 of others waiting.
        Target::AtMost(2000.0)
    } else if name.starts_with("6.") && !name.contains("Отправить") && !name.contains("empty")
    {
        Target::AtMost(1000.0)
    } else if name.starts_with("7.") && name.contains("KiB") {
        Target::AtMost(24.0)
    } else if name.starts_with("7.") {
        Target::AtLeast(19_000.0)
    } else if name.starts_with("8.") {
        Target::RawAtLeast(0.8)
    } else if name.starts_with("9.") {
        // Issue 17: the Socket.IO layer costs at most 30 % of the Client object's rate.
        Target::RawAtLeast(0.7)
    } else {
        Target::None
    }
}

fn fmt(name: &str, v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if name.ends_with("/s") && v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn cell(name: &str, m: Option<Metric>) -> String {
    match m {
        None => "—".into(),
        Some(m) if m.min == m.max => fmt(name, m.median),
        Some(m) => format!(
            "{} ({}–{})",
            fmt(name, m.median),
            fmt(name, m.min),
            fmt(name, m.max)
        ),
    }
}

impl Results {
    /// No samples yet.
    pub fn new() -> Results {
        Results::default()
    }

    /// One sample of `imp` (`addin`, `raw`, `hop`, …) for row `name`.
    pub fn add(&mut self, name: &str, imp: &str, v: f64) {
        eprintln!("   {name} [{imp}]: {v:.1}");
        let row = match self.rows.iter().position(|(n, _)| n == name) {
            Some(i) => &mut self.rows[i].1,
            None => {
                self.rows.push((name.to_owned(), Vec::new()));
                &mut self.rows.last_mut().expect("row").1
            }
        };
        match row.iter_mut().find(|(i, _)| i == imp) {
            Some((_, v2)) => v2.push(v),
            None => row.push((imp.to_owned(), vec![v])),
        }
    }

    fn metric(&self, row: &[(String, Vec<f64>)], imp: &str) -> Option<Metric> {
        row.iter()
            .find(|(i, _)| i == imp)
            .and_then(|(_, v)| Metric::of(v))
    }

    fn verdict(&self, name: &str, row: &[(String, Vec<f64>)]) -> (String, String, Option<bool>) {
        let a = self.metric(row, "addin").map(|m| m.median);
        let raw = self.metric(row, "raw").map(|m| m.median);
        let hop = self.metric(row, "hop").map(|m| m.median);
        let ratio = |d: Option<f64>| a.zip(d).map(|(a, d)| a / d);
        let (text, met) = match target_of(name) {
            Target::HopAtLeast(t) => (format!("≥ {t} × hop"), ratio(hop).map(|r| r >= t)),
            Target::RawAtLeast(t) => (format!("≥ {t} × raw"), ratio(raw).map(|r| r >= t)),
            Target::RawAtMost(t) => (format!("≤ {t} × raw"), ratio(raw).map(|r| r <= t)),
            Target::AtMost(t) => (format!("≤ {}", fmt(name, t)), a.map(|a| a <= t)),
            Target::AtLeast(t) => (format!("≥ {}", fmt(name, t)), a.map(|a| a >= t)),
            Target::None => (String::new(), None),
        };
        let shown = match met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "",
        };
        (text, shown.to_owned(), met)
    }

    /// The Markdown table.
    pub fn table(&self) -> String {
        let mut t = String::from(
            "| scenario | add-in | raw | raw + hop | add-in / raw | add-in / hop | target | |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for (name, row) in &self.rows {
            let a = self.metric(row, "addin");
            let raw = self
                .metric(row, "raw")
                .or_else(|| self.metric(row, "raw-default"));
            let hop = self.metric(row, "hop");
            let ratio = |d: Option<Metric>| {
                a.zip(d)
                    .map_or("—".into(), |(a, d)| format!("{:.2}", a.median / d.median))
            };
            let mut raw_cell = cell(name, self.metric(row, "raw"));
            if let Some(d) = self.metric(row, "raw-default") {
                raw_cell = format!("{raw_cell}; defaults: {}", cell(name, Some(d)));
            }
            let (target, shown, _) = self.verdict(name, row);
            t += &format!(
                "| {name} | {} | {raw_cell} | {} | {} | {} | {target} | {shown} |\n",
                cell(name, a),
                cell(name, hop),
                ratio(raw),
                ratio(hop),
            );
        }
        t
    }

    /// Everything, samples included.
    pub fn json(&self, machine: &str, runs: usize, quick: bool) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|(name, row)| {
                let imps: serde_json::Map<String, Value> = row
                    .iter()
                    .map(|(imp, v)| {
                        let m = Metric::of(v);
                        (
                            imp.clone(),
                            json!({
                                "samples": v,
                                "median": m.map(|m| m.median),
                                "min": m.map(|m| m.min),
                                "max": m.map(|m| m.max),
                            }),
                        )
                    })
                    .collect();
                let (target, _, met) = self.verdict(name, row);
                json!({"scenario": name, "results": imps, "target": target, "met": met})
            })
            .collect();
        json!({
            "machine": machine,
            "runs": runs,
            "quick": quick,
            "unix_time": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            "rows": rows,
        })
    }
}

/// One line describing the machine.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(String::new(), |k| format!(", {} GiB RAM", k / 1024 / 1024));
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_owned())
        .unwrap_or_default();
    format!(
        "Machine: {model}, {cores} cores{mem}; {os}, Linux {}",
        kernel.trim()
    )
}
