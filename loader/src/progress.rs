//! The progress bar: rows, rows/s and ETA on stderr, drawn only on a terminal.

use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress display for the load passes (no-op when disabled).
#[derive(Debug)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    state: Mutex<(String, Instant)>,
}

impl Progress {
    pub(crate) fn new(enabled: bool) -> Progress {
        let bar = enabled.then(|| {
            let b =
                ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr_with_hz(5));
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:<26} [{bar:30}] {percent:>3}%  {msg}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        });
        Progress {
            bar,
            state: Mutex::new((String::new(), Instant::now())),
        }
    }

    pub(crate) fn update(&self, phase: &str, rows: u64, fraction: Option<f64>) {
        let Some(bar) = &self.bar else { return };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.0 != phase {
            *st = (phase.to_string(), Instant::now());
            bar.reset_eta();
            bar.set_prefix(phase.to_string());
        }
        let secs = st.1.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!("{rows} rows, {:.0} rows/s", rows as f64 / secs));
        if let Some(f) = fraction {
            bar.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
        }
    }

    pub(crate) fn finish(&self, rows: u64, secs: f64) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(format!(
                "{rows} rows in {secs:.1} s ({:.0} rows/s)",
                rows as f64 / secs.max(1e-3)
            ));
        }
    }
}
