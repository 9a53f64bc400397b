//! A tune's progress on stderr: a bar with the loss and tokens/s on a terminal, a line every
//! few percent otherwise (logs).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use pipespec_tune::TuneEvent;

pub struct TuneProgress {
    bar: Option<ProgressBar>,
    /// Whether to show DLoRA's counters (a split run or Kill-and-Revive).
    counters: bool,
    /// Steps between log lines when there is no terminal.
    log_every: usize,
}

impl TuneProgress {
    pub fn new(counters: bool) -> TuneProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} steps, eta {eta} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        TuneProgress {
            bar,
            counters,
            log_every: 0,
        }
    }

    pub fn event(&mut self, event: TuneEvent) {
        match event {
            TuneEvent::Evaluating { after } => {
                let when = if after { "after" } else { "before" };
                self.say(&format!("pipespec tune: evaluating {when} training"));
            }
            TuneEvent::Step {
                step,
                total,
                loss,
                rate,
                tokens,
                seconds,
                active,
                counters: c,
            } => {
                let speed = tokens as f64 / seconds.max(1e-9);
                let mut message = format!("loss {loss:.4}, lr {rate:.2e}, {speed:.0} tokens/s");
                if self.counters {
                    message += &format!(
                        ", {active} modules, device {:.1} GFLOP, link {:.1} MB",
                        c.device_flops as f64 / 1e9,
                        (c.bytes_to_cloud + c.bytes_from_cloud) as f64 / 1e6
                    );
                }
                if let Some(bar) = &self.bar {
                    bar.set_length(total as u64);
                    bar.set_position(step as u64);
                    bar.set_message(message);
                    return;
                }
                if self.log_every == 0 {
                    self.log_every = total.div_ceil(20).max(1);
                }
                if step % self.log_every == 0 || step == total || step == 1 {
                    eprintln!("pipespec tune: step {step}/{total}: {message}");
                }
            }
            TuneEvent::Review {
                step,
                killed,
                revived,
                active,
            } => {
                self.say(&format!(
                    "pipespec tune: review at step {step}: {killed} killed, {revived} revived, {active} active"
                ));
            }
            TuneEvent::Epoch { epoch, mean_loss } => {
                self.say(&format!(
                    "pipespec tune: epoch {epoch}: mean loss {mean_loss:.4}"
                ));
            }
        }
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
