//! How the restorer's status reads in the editor.

use std::time::Duration;

use crate::plugin::restorer::Status;

/// A duration as a person says it: "45 s", "3 min 20 s", "1 h 05 min".
pub fn spoken(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3_600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3_600, s % 3_600 / 60),
    }
}

/// The progress bar's caption while a job (a `preview` or not) runs.
pub fn progress_caption(status: &Status, preview: bool) -> Option<String> {
    match status {
        Status::LoadingModel => Some("Loading the model…".into()),
        Status::Running { step, steps, loss, eta, .. } => {
            let mut text = if *steps == 0 { "Starting…".to_string() } else { format!("Step {step}/{steps}") };
            if preview {
                text = format!("Preview · {text}");
            }
            if let Some(loss) = loss {
                text += &format!(" · loss {loss:.3}");
            }
            if let Some(eta) = eta {
                text += &format!(" · about {} left", spoken(*eta));
            }
            Some(text)
        }
        _ => None,
    }
}

/// The line under the buttons once a job (a `preview` or not) ended: the text and whether
/// it is an error.
pub fn outcome(status: &Status, preview: bool) -> Option<(String, bool)> {
    match status {
        Status::Done if preview => Some((
            "Preview ready (a few tens of steps). Listen → Restored plays it; Restore renders it in full, with the same seed and settings.".into(),
            false,
        )),
        Status::Done => Some(("Restored. Listen → Restored plays it in place of the track; bounce or export it when it sounds right.".into(), false)),
        Status::Cancelled => Some(("Cancelled. The clip and the previous restoration are unchanged.".into(), false)),
        Status::Failed(message) => Some((message.clone(), true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_spoken() {
        assert_eq!(spoken(Duration::from_secs(45)), "45 s");
        assert_eq!(spoken(Duration::from_secs(200)), "3 min 20 s");
        assert_eq!(spoken(Duration::from_secs(3_900)), "1 h 05 min");
    }

    #[test]
    fn a_running_job_shows_step_loss_and_time_left() {
        let running = Status::Running { fraction: 0.37, step: 37, steps: 100, loss: Some(12.3456), eta: Some(Duration::from_secs(83)) };
        assert_eq!(progress_caption(&running, false).unwrap(), "Step 37/100 · loss 12.346 · about 1 min 23 s left");
        assert_eq!(progress_caption(&running, true).unwrap(), "Preview · Step 37/100 · loss 12.346 · about 1 min 23 s left");
        let starting = Status::Running { fraction: 0.0, step: 0, steps: 0, loss: None, eta: None };
        assert_eq!(progress_caption(&starting, false).unwrap(), "Starting…");
        assert!(progress_caption(&Status::Done, false).is_none());
        assert_eq!(outcome(&Status::Failed("no model".into()), false), Some(("no model".into(), true)));
        assert!(outcome(&Status::Done, true).unwrap().0.starts_with("Preview ready"));
        assert!(outcome(&running, false).is_none());
    }
}
