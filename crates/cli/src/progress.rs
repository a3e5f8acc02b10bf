//! Progress bars on stderr while a sync runs: one per download, a line per delivery,
//! each cleared when done so that only the summary on stdout remains.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use connectly_model::{ReportId, RunId};
use connectly_orchestrator::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// A download whose size is known: bytes against the expected total.
const BAR: &str = "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}";
/// A download of unknown size, or a delivery: what is happening and for how long.
const SPINNER: &str = "{spinner} {msg} {bytes} {bytes_per_sec}";
/// A delivery in flight.
const DELIVERY: &str = "{spinner} {msg} ({elapsed})";

/// How often spinners turn while nothing else moves them.
const TICK: Duration = Duration::from_millis(120);

/// The bars on screen, shared with the log writer so log lines go above them.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Progress bars on stderr when it is a terminal that allows them (neither `NO_COLOR`
/// nor `TERM=dumb`); `None` otherwise, so pipes, logs and CI stay silent.
pub(crate) fn for_stderr() -> Option<Arc<dyn Progress>> {
    if !allowed(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
        std::env::var_os("TERM"),
    ) {
        return None;
    }
    let multi = BARS.get_or_init(MultiProgress::new).clone();
    Some(Arc::new(Bars {
        multi,
        downloads: Mutex::new(HashMap::new()),
        deliveries: Mutex::new(HashMap::new()),
    }))
}

/// Writes `buf` to stderr with the bars, if any, cleared meanwhile and drawn again
/// after, so that a log line never tears them.
pub(crate) fn write_stderr(buf: &[u8]) -> std::io::Result<()> {
    let write = || std::io::stderr().lock().write_all(buf);
    match BARS.get() {
        Some(multi) => multi.suspend(write),
        None => write(),
    }
}

/// Whether bars may be drawn: on a terminal, unless `NO_COLOR` is set (to anything but
/// the empty string) or the terminal is `dumb`.
fn allowed(is_terminal: bool, no_color: Option<OsString>, term: Option<OsString>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty()) && term.is_none_or(|t| t != "dumb")
}

/// `template`, or indicatif's plain default should it not parse (it is a constant, and
/// a test checks it does).
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// The first characters of a report id (a UUID): enough to tell reports apart.
fn short(report: &ReportId) -> String {
    report.as_str().chars().take(8).collect()
}

/// The bars of one sync.
struct Bars {
    multi: MultiProgress,
    /// A report has at most one download in flight.
    downloads: Mutex<HashMap<ReportId, ProgressBar>>,
    /// Keyed by report and sink name.
    deliveries: Mutex<HashMap<(ReportId, String), ProgressBar>>,
}

impl Bars {
    fn start(&self, bar: ProgressBar, message: String) -> ProgressBar {
        let bar = self.multi.add(bar);
        bar.set_message(message);
        bar.enable_steady_tick(TICK);
        bar
    }

    fn clear(&self, bar: Option<ProgressBar>) {
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

impl Progress for Bars {
    fn download_started(&self, report: &ReportId, run: &RunId, expected_bytes: Option<u64>) {
        let bar = match expected_bytes {
            Some(total) => ProgressBar::new(total).with_style(style(BAR).progress_chars("=> ")),
            None => ProgressBar::new_spinner().with_style(style(SPINNER)),
        };
        let bar = self.start(bar, format!("fetching report {} run {run}", short(report)));
        if let Ok(mut downloads) = self.downloads.lock()
            && let Some(old) = downloads.insert(report.clone(), bar)
        {
            self.clear(Some(old));
        }
    }

    fn download_progress(&self, report: &ReportId, bytes: u64) {
        if let Ok(downloads) = self.downloads.lock()
            && let Some(bar) = downloads.get(report)
        {
            if bar.length().is_some_and(|total| bytes > total) {
                // The expected size came from an earlier download; this one is larger.
                bar.set_length(bytes);
            }
            bar.set_position(bytes);
        }
    }

    fn download_finished(&self, report: &ReportId, _ok: bool) {
        let bar = self.downloads.lock().ok().and_then(|mut d| d.remove(report));
        self.clear(bar);
    }

    fn delivery_started(&self, report: &ReportId, sink: &str) {
        let bar = ProgressBar::new_spinner().with_style(style(DELIVERY));
        let bar = self.start(bar, format!("delivering report {} to {sink}", short(report)));
        if let Ok(mut deliveries) = self.deliveries.lock()
            && let Some(old) = deliveries.insert((report.clone(), sink.to_owned()), bar)
        {
            self.clear(Some(old));
        }
    }

    fn delivery_finished(&self, report: &ReportId, sink: &str, _ok: bool) {
        let bar = self
            .deliveries
            .lock()
            .ok()
            .and_then(|mut d| d.remove(&(report.clone(), sink.to_owned())));
        self.clear(bar);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bars_only_on_a_terminal_that_allows_them() {
        let os = |s: &str| Some(OsString::from(s));
        assert!(allowed(true, None, os("xterm-256color")));
        assert!(allowed(true, os(""), None));
        assert!(!allowed(false, None, os("xterm")));
        assert!(!allowed(true, os("1"), os("xterm")));
        assert!(!allowed(true, None, os("dumb")));
    }

    #[test]
    fn the_templates_parse() {
        for template in [BAR, SPINNER, DELIVERY] {
            ProgressStyle::with_template(template).unwrap();
        }
    }

    #[test]
    fn hooks_draw_and_clear_bars_without_a_terminal() {
        let bars = Bars {
            multi: MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden()),
            downloads: Mutex::new(HashMap::new()),
            deliveries: Mutex::new(HashMap::new()),
        };
        let report = ReportId::from("2d503e81-e270-4467-a05f-21a900efbbc1");
        bars.download_started(&report, &RunId::from("r1"), Some(10));
        bars.download_progress(&report, 25);
        assert_eq!(bars.downloads.lock().unwrap()[&report].length(), Some(25));
        bars.download_finished(&report, true);
        bars.delivery_started(&report, "sqlite");
        bars.delivery_finished(&report, "sqlite", false);
        assert!(bars.downloads.lock().unwrap().is_empty());
        assert!(bars.deliveries.lock().unwrap().is_empty());
    }
}
