//! Formatting shared by the commands: percentages, sizes, times, durations and aligned
//! tables. Every function takes values that may be missing or not finite (a run without a
//! validation split has NaN accuracies) and shows them as `-`, never as `NaN`.

use pismo_core::hyper::Hyper;
pub use pismo_storage::runs::hyper_fields;

/// `97.52 %`, or `-` for NaN / missing. `x` is a fraction (0..1).
pub fn percent(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{:.2} %", x * 100.0),
        _ => "-".to_owned(),
    }
}

/// `0.0812`, or `-` for NaN / missing.
pub fn number(x: Option<f64>, decimals: usize) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "-".to_owned(),
    }
}

/// `812 B`, `101.9 kB`, `3.2 MB` (decimal units).
pub fn bytes(n: u64) -> String {
    if n < 1000 {
        format!("{n} B")
    } else if n < 1_000_000 {
        format!("{:.1} kB", n as f64 / 1e3)
    } else {
        format!("{:.1} MB", n as f64 / 1e6)
    }
}

/// `4.2s`, `1m05s`, `2h03m`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_owned();
    }
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let s = seconds.round() as u64;
    if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    }
}

/// Unix seconds as `2026-11-26 23:05` (UTC), or `-` for 0 (unknown).
pub fn utc(unix_secs: u64) -> String {
    if unix_secs == 0 {
        return "-".to_owned();
    }
    pismo_files::stamp::utc_minute(unix_secs)
}

/// `hidden_size 128, dropout_rate 0.5, …` wrapped into lines of at most `width` characters,
/// each starting with `indent`.
pub fn hyper_block(h: &Hyper, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for (name, value) in hyper_fields(h) {
        let item = format!("{name} {value}");
        if !line.is_empty() && indent.len() + line.len() + 2 + item.len() > width {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push_str(", ");
        }
        line.push_str(&item);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A table printed with columns padded to their widest cell; columns listed in `right`
/// are right-aligned (numbers), the others left-aligned.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
    right: Vec<usize>,
}

impl Table {
    /// A table with this header row.
    pub fn new(header: &[&str], right: &[usize]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
            right: right.to_vec(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, two spaces between columns, no trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i] - cell.chars().count();
                if self.right.contains(&i) {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_nan_values_show_as_a_dash() {
        assert_eq!(percent(Some(0.97524)), "97.52 %");
        assert_eq!(percent(Some(f64::NAN)), "-");
        assert_eq!(percent(None), "-");
        assert_eq!(number(Some(f64::INFINITY), 3), "-");
    }

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(101_912), "101.9 kB");
        assert_eq!(bytes(3_215_000), "3.2 MB");
        assert_eq!(duration(4.23), "4.2s");
        assert_eq!(duration(65.0), "1m05s");
        assert_eq!(duration(7380.0), "2h03m");
    }

    #[test]
    fn dates_match_known_days() {
        assert_eq!(utc(0), "-");
        assert_eq!(utc(86_400 + 3600 + 120), "1970-01-02 01:02");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc(1_709_251_199), "2024-02-29 23:59");
        assert_eq!(utc(4_107_542_400), "2100-03-01 00:00");
    }

    #[test]
    fn tables_pad_columns_and_align_numbers_right() {
        let mut t = Table::new(&["id", "size"], &[1]);
        t.row(vec!["mnist@10".into(), "5 B".into()]);
        t.row(vec!["a@1".into(), "101.9 kB".into()]);
        assert_eq!(
            t.render(),
            "id            size\nmnist@10       5 B\na@1       101.9 kB\n"
        );
    }
}
