//! What the user sees while training: on a terminal a progress bar over the steps with the log
//! lines printed above it; otherwise (a log file, CI) the plain log lines only.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    print: bool,
}

impl Progress {
    /// A bar from `start` to `total` steps when `print` is on and stderr is a terminal.
    pub fn new(print: bool, start: u64, total: u64) -> Self {
        let bar = (print && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} step {pos}/{len} (eta {eta}) {msg}",
                )
                .expect("valid template"),
            );
            bar.set_position(start);
            bar.reset_eta();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self { bar, print }
    }

    /// A log line: above the bar on a terminal, on stderr otherwise.
    pub fn line(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None if self.print => eprintln!("{message}"),
            None => {}
        }
    }

    /// The latest figures, shown beside the bar.
    pub fn set_message(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
    }

    pub fn step(&self, step: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
