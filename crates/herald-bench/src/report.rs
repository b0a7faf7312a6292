//! Reporting: the machine a run measured, the date, and `docs/benchmarks.md`,
//! where each benchmark owns one `## ` section that a new run replaces.

use crate::Result;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const INTRO: &str = "# Benchmarks\n\n\
Numbers measured by the programs in `crates/herald-bench`, which start herald \
servers in-process and drive them over real sockets. Each section is written by \
the program named in it; rerun the command to refresh it. Absolute numbers \
depend on the machine; compare results measured in the same run.\n";

/// What every benchmark that writes a section of the document takes.
#[derive(clap::Args)]
pub struct Output {
    /// smoke (seconds, for CI), small (about a minute) or full.
    #[arg(long, default_value = "small")]
    pub scale: String,
    /// Print the tables only; leave docs/benchmarks.md alone.
    #[arg(long)]
    pub no_doc: bool,
    /// The document to write.
    #[arg(long, default_value_os_t = default_doc_path())]
    pub doc_path: PathBuf,
}

impl Output {
    /// The scale named by `--scale`, found with `lookup`.
    pub fn scale<T>(&self, lookup: impl Fn(&str) -> Option<T>) -> Result<T> {
        lookup(&self.scale).ok_or_else(|| {
            format!("--scale must be smoke, small or full, not {}", self.scale).into()
        })
    }

    /// Replaces `section` in the document, unless `--no-doc`.
    pub fn write(&self, section: impl FnOnce() -> String) -> Result<()> {
        if !self.no_doc {
            write_section(&self.doc_path, &section())?;
            eprintln!("wrote {}", self.doc_path.display());
        }
        Ok(())
    }
}

/// `docs/benchmarks.md` at the workspace root.
pub fn default_doc_path() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir.ancestors().nth(2).unwrap_or(crate_dir);
    root.join("docs/benchmarks.md")
}

/// CPUs, CPU model and memory, as one markdown line.
pub fn machine_facts() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = field(&cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = field(&meminfo, "MemTotal")
        .and_then(|kb| kb.trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(
            || "unknown memory".into(),
            |kb| format!("{:.1} GiB RAM", kb / 1024.0 / 1024.0),
        );
    format!(
        "{cpus} CPUs (nproc), {model}, {memory}, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// The value after `key:` on the first line that starts with `key`.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|line| line.starts_with(key))
        .and_then(|line| line.split_once(':'))
        .map(|(_, value)| value.trim().to_string())
}

/// `20000` as `20,000`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .map(|chunk| std::str::from_utf8(chunk).expect("ASCII digits"))
        .collect();
    groups.reverse();
    groups.join(",")
}

/// Today's UTC date as `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Writes `section` (which starts with its `## ` heading line) into `path`,
/// replacing the section with the same heading up to the next `## `, or
/// appending it. Creates the file with a short intro when it is missing.
pub fn write_section(path: &Path, section: &str) -> Result<()> {
    let heading = section.lines().next().unwrap_or_default();
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => INTRO.to_string(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display()).into()),
    };
    let updated = replace_section(&existing, heading, section);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, updated).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

fn replace_section(existing: &str, heading: &str, section: &str) -> String {
    let lines: Vec<&str> = existing.lines().collect();
    let section = section.trim_end();
    let Some(start) = lines.iter().position(|line| line.trim_end() == heading) else {
        return format!("{}\n\n{section}\n", existing.trim_end());
    };
    let end = lines[start + 1..]
        .iter()
        .position(|line| line.starts_with("## "))
        .map_or(lines.len(), |i| start + 1 + i);
    let before = lines[..start].join("\n");
    let after = lines[end..].join("\n");
    let mut out = String::new();
    if !before.trim().is_empty() {
        out.push_str(before.trim_end());
        out.push_str("\n\n");
    }
    out.push_str(section);
    out.push('\n');
    if !after.is_empty() {
        out.push('\n');
        out.push_str(&after);
        out.push('\n');
    }
    out
}

/// The value of an unlabelled series `name` in a Prometheus text exposition.
pub fn gauge(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value.max(0.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn dates_convert() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn a_section_is_replaced_and_its_neighbours_kept() {
        let doc = "# B\n\nintro\n\n## A\nold\n\n## H\nold h\n\n## Z\nz\n";
        let out = replace_section(doc, "## H", "## H\nnew h\n");
        assert_eq!(out, "# B\n\nintro\n\n## A\nold\n\n## H\nnew h\n\n## Z\nz\n");
        let appended = replace_section("# B\n\nintro\n", "## H", "## H\nx\n");
        assert_eq!(appended, "# B\n\nintro\n\n## H\nx\n");
    }
}
