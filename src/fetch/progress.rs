//! A byte counter on stderr for long reads (indicatif): a bar on a terminal, hidden otherwise, and one closing line either way (so logs get one line, not hundreds).

use indicatif::{ProgressBar, ProgressStyle};

/// A read of fewer bytes than this that also ends within [`QUIET_SECONDS`] gets no closing line.
const QUIET_BYTES: u64 = 1 << 20;
const QUIET_SECONDS: f64 = 0.2;

pub struct Progress {
    bar: ProgressBar,
    label: String,
}

impl Progress {
    /// A bar over `total` bytes (0: not known) named `label`, drawn on stderr if it is a terminal.
    pub fn new(label: &str, total: u64) -> Progress {
        let (bar, template) = if total > 0 {
            (
                ProgressBar::new(total),
                "{prefix}: {percent:>3}% [{wide_bar}] {decimal_bytes}/{decimal_total_bytes}, eta {eta}",
            )
        } else {
            (
                ProgressBar::no_length(),
                "{prefix}: {decimal_bytes}, {decimal_bytes_per_sec}",
            )
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        Progress {
            bar,
            label: label.to_string(),
        }
    }

    pub fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    /// Clears the bar and prints what was read in how long (prefixed `pipespec:` where no bar
    /// was drawn), unless the read was small and quick.
    pub fn finish(&self) {
        let drawn = !self.bar.is_hidden();
        self.bar.finish_and_clear();
        let elapsed = self.bar.elapsed().as_secs_f64();
        if self.bar.position() < QUIET_BYTES && elapsed < QUIET_SECONDS {
            return;
        }
        let prefix = if drawn { "" } else { "pipespec: " };
        eprintln!("{prefix}{} in {elapsed:.1} s", self.line());
    }

    /// "verifying a.gguf:  50% (1.0/2.0 MB)", or "verifying a.gguf: 1.0 MB" without a total.
    fn line(&self) -> String {
        let mb = |bytes: u64| bytes as f64 / 1e6;
        let done = self.bar.position();
        match self.bar.length() {
            Some(total) if total > 0 => format!(
                "{}: {:3.0}% ({:.1}/{:.1} MB)",
                self.label,
                100.0 * done as f64 / total as f64,
                mb(done),
                mb(total)
            ),
            _ => format!("{}: {:.1} MB", self.label, mb(done)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_line_gives_the_share_and_the_megabytes() {
        let progress = Progress::new("verifying a.gguf", 2_000_000);
        progress.advance(500_000);
        progress.advance(500_000);
        assert_eq!(progress.line(), "verifying a.gguf:  50% (1.0/2.0 MB)");
        let unknown = Progress::new("extracting b.gguf", 0);
        unknown.advance(1_500_000);
        assert_eq!(unknown.line(), "extracting b.gguf: 1.5 MB");
    }
}
