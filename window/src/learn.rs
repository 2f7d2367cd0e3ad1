//! Learning from the corrections (the L key): one adaptation
//! (`pismo_training::adapt::session`, exactly what `pismo adapt` runs) on a thread of its
//! own, so the window keeps drawing and answering while it works.
//!
//! - [`Job::start`] spawns the thread; [`Job::poll`] (called by the window loop every frame)
//!   takes its news without ever blocking: the progress, then the result.
//! - The thread owns clones of the registry and the runs (both share their stores), so the
//!   adapted model is registered, and its run recorded, exactly where the window reads.
//! - A thread that dies without an answer (a panic inside the adaptation) is reported as an
//!   error by [`Job::poll`], never lost.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, TryRecvError};

use pismo_storage::registry::Registry;
use pismo_storage::runs::Runs;
use pismo_training::adapt::session::{self, AdaptError, AdaptEvent, AdaptRequest, Adapted};
use pismo_training::adapt::AdaptRecipe;

/// Suffix of the adapted model's name: `mnist-int8` gives `mnist-int8-mine`.
pub const SUFFIX: &str = "-mine";

/// The name an adaptation of model `base` (a name, no version) is registered under: `base`
/// with [`SUFFIX`], or `base` itself if it already ends so (learning again from an adapted
/// model gives its next version).
pub fn adapted_name(base: &str) -> String {
    if base.ends_with(SUFFIX) {
        base.to_owned()
    } else {
        format!("{base}{SUFFIX}")
    }
}

/// Where an adaptation started from the window reads and writes.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Where its run is recorded.
    pub runs: Runs,
    /// The MNIST folder (rehearsal and the forgetting check).
    pub data_dir: PathBuf,
}

/// How far the adaptation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading the corrections, the base model and MNIST.
    Loading,
    /// Fine-tuning: steps done of all.
    Steps(u32, u32),
    /// Fine-tuning is over: scoring on MNIST validation, registering.
    Checking,
}

/// News from the thread.
enum News {
    Stage(Stage),
    Done(Box<Result<Adapted, AdaptError>>),
}

/// What [`Job::poll`] found.
#[derive(Debug)]
pub enum Poll {
    /// Still working; `true` if the stage changed since the last poll.
    Working(bool),
    /// Over: the adapted model, or why there is none (the message to show).
    Done(Box<Result<Adapted, String>>),
}

/// One adaptation running in the background.
#[derive(Debug)]
pub struct Job {
    news: Receiver<News>,
    corrections: Option<usize>,
    stage: Stage,
}

impl Job {
    /// Starts adapting model `base` (a `NAME@VERSION`, registered as
    /// [`adapted_name`]`(NAME)`) to the corrections in `drawn_dir` (`corrections` of them,
    /// `None` if the folder could not be counted: the session then says what is wrong).
    pub fn start(
        base: &pismo_storage::registry::ModelId,
        drawn_dir: PathBuf,
        corrections: Option<usize>,
        registry: &Registry,
        setup: &Setup,
    ) -> Result<Self, String> {
        let request = AdaptRequest {
            base: Some(base.to_string()),
            name: adapted_name(&base.name),
            aliases: Vec::new(),
            drawn_dir,
            data_dir: setup.data_dir.clone(),
            threads: 0,
            force: false,
            recipe: AdaptRecipe::DEFAULT,
            seed: 1,
        };
        let (tx, news) = mpsc::channel();
        let (registry, runs) = (registry.clone(), setup.runs.clone());
        std::thread::Builder::new()
            .name("pismo-learn".to_owned())
            .spawn(move || {
                let mut last = Stage::Loading;
                let mut on_event = |event: AdaptEvent<'_>| {
                    let stage = match event {
                        AdaptEvent::Steps { done, total } if done >= total => Stage::Checking,
                        AdaptEvent::Steps { done, total } => Stage::Steps(done, total),
                        AdaptEvent::Started { .. } | AdaptEvent::Line(_) => last,
                    };
                    if stage != last {
                        last = stage;
                        // The window may be gone: nobody to tell, carry on to the end.
                        let _ = tx.send(News::Stage(stage));
                    }
                    ControlFlow::Continue(())
                };
                let result = session::run(&request, &registry, &runs, &mut on_event);
                let _ = tx.send(News::Done(Box::new(result)));
            })
            .map_err(|e| format!("cannot start learning: {e}"))?;
        Ok(Self {
            news,
            corrections,
            stage: Stage::Loading,
        })
    }

    /// Takes the thread's news, without waiting.
    pub fn poll(&mut self) -> Poll {
        let mut changed = false;
        loop {
            match self.news.try_recv() {
                Ok(News::Stage(stage)) => {
                    changed |= stage != self.stage;
                    self.stage = stage;
                }
                Ok(News::Done(result)) => {
                    return Poll::Done(Box::new((*result).map_err(|e| message(&e))))
                }
                Err(TryRecvError::Empty) => return Poll::Working(changed),
                Err(TryRecvError::Disconnected) => {
                    return Poll::Done(Box::new(Err(
                        "learning stopped without an answer (the adapting thread failed)"
                            .to_owned(),
                    )))
                }
            }
        }
    }

    /// The status line while it works: "learning from 5 corrections... 40 %".
    pub fn status(&self) -> String {
        let what = match self.corrections {
            Some(1) => "learning from 1 correction".to_owned(),
            Some(n) => format!("learning from {n} corrections"),
            None => "learning from the corrections".to_owned(),
        };
        match self.stage {
            Stage::Loading => format!("{what}: loading MNIST..."),
            Stage::Steps(done, total) => {
                let pct = u64::from(done) * 100 / u64::from(total.max(1));
                format!("{what}... {pct} %")
            }
            Stage::Checking => format!("{what}: checking it on MNIST validation..."),
        }
    }
}

/// Why learning failed, in the window's words: the session's message, except that a
/// refusal for forgetting does not point at `--force` (the window has no such switch).
fn message(e: &AdaptError) -> String {
    match e {
        AdaptError::Forgets {
            run_id,
            before,
            after,
        } => format!(
            "not learned: the adapted model would read {:.2} % of MNIST validation digits \
             right, the model now {:.2} % (more than {:.1} points lost; run {run_id}); check \
             the corrections' labels (`pismo data drawn list`)",
            after * 100.0,
            before * 100.0,
            session::MAX_FORGETTING * 100.0
        ),
        e => format!("cannot learn: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adapted_name_adds_the_suffix_once() {
        assert_eq!(adapted_name("mnist-mcu-int8"), "mnist-mcu-int8-mine");
        assert_eq!(adapted_name("mnist-mcu-int8-mine"), "mnist-mcu-int8-mine");
    }

    #[test]
    fn refusing_for_forgetting_says_so_without_pointing_at_force() {
        let m = message(&AdaptError::Forgets {
            run_id: "r1".to_owned(),
            before: 0.98,
            after: 0.9,
        });
        assert!(m.starts_with("not learned: "), "{m}");
        assert!(m.contains("90.00 %") && m.contains("98.00 %"), "{m}");
        assert!(!m.contains("--force"), "{m}");
    }
}
