//! Registered f32 models joined into one committee model ([`AnyMlp::committee`]: their
//! hidden layers side by side, the mean of their outputs), as `pismo models join` makes it:
//! measured beside each member on the validation split they share and on MNIST test
//! ([`Committee::measure`]), and described for its model file ([`Committee::model_meta`]).
//! The shell loads the members, registers the model ([`crate::session::register`]) and prints.

use std::path::Path;

use pismo_core::hyper::{Hyper, Metrics};
use pismo_digits::mnist::{self, Dataset, MnistError, Split};
use pismo_engine::model::{AnyMlp, CommitteeError};
use pismo_engine::tally::Tally;
use pismo_storage::registry::{ModelId, OwnedMeta};

use crate::session::ModelMeta;
use crate::trainer::validation_set;

/// A registered model taking part in a committee.
#[derive(Debug)]
pub struct Member {
    /// Its registry id.
    pub id: ModelId,
    /// Its network.
    pub model: AnyMlp,
    /// What its file records.
    pub meta: OwnedMeta,
}

/// Members and the one model they make.
#[derive(Debug)]
pub struct Committee {
    /// The members, in the order given.
    pub members: Vec<Member>,
    /// Their committee as one network.
    pub joined: AnyMlp,
}

/// The scores of a committee on one set.
#[derive(Debug, Clone, PartialEq)]
pub struct SetScore {
    /// `"validation"` or `"test"`.
    pub set: &'static str,
    /// The joined model's mean loss.
    pub loss: f64,
    /// The joined model's accuracy.
    pub accuracy: f64,
    /// Each member's accuracy, in member order.
    pub members: Vec<f64>,
}

impl Committee {
    /// `members` joined ([`AnyMlp::committee`]: f32 models treating inputs alike, of a total
    /// width pismo supports).
    pub fn join(members: Vec<Member>) -> Result<Committee, CommitteeError> {
        let models: Vec<&AnyMlp> = members.iter().map(|m| &m.model).collect();
        let joined = AnyMlp::committee(&models)?;
        Ok(Committee { members, joined })
    }

    /// The first member's file metadata, whose hyperparameters and data the committee keeps.
    fn first(&self) -> &OwnedMeta {
        &self.members[0].meta
    }

    /// Whether every member held out the same validation split (the same seed and a size
    /// above 0): only then is the committee measured on it.
    pub fn shares_validation_split(&self) -> bool {
        let first = &self.first().hyper;
        first.val_size > 0
            && self
                .members
                .iter()
                .all(|m| m.meta.hyper.seed == first.seed && m.meta.hyper.val_size == first.val_size)
    }

    /// The sets the committee is measured on, named: the validation split its members held
    /// out of the training file in `mnist_dir` (when they share one) and MNIST test (when it
    /// is there). An error only when the shared split's training file cannot be read.
    pub fn sets(&self, mnist_dir: &Path) -> Result<Vec<(&'static str, Dataset)>, MnistError> {
        let mut sets = Vec::new();
        if self.shares_validation_split() {
            let train = mnist::load_split(mnist_dir, Split::Train)?;
            let hyper = &self.first().hyper;
            let split = validation_set(&train, hyper.val_size as usize, hyper.seed);
            sets.push(("validation", split));
        }
        if let Ok(test) = mnist::load_split(mnist_dir, Split::Test) {
            sets.push(("test", test));
        }
        Ok(sets)
    }

    /// The joined model's loss and accuracy and each member's accuracy on every one of
    /// `sets`, counted as `pismo eval` counts ([`Tally`]) on all cores. `progress` is called
    /// with the images done: each set's once per model, the joined one and every member.
    pub fn measure(
        &self,
        sets: &[(&'static str, Dataset)],
        progress: &(dyn Fn(u64) + Sync),
    ) -> Vec<SetScore> {
        let tally = |m: &AnyMlp, d: &Dataset| Tally::of(m, &d.images, &d.labels, 0, progress);
        sets.iter()
            .map(|(set, d)| {
                let members = self
                    .members
                    .iter()
                    .map(|m| tally(&m.model, d).accuracy())
                    .collect();
                let joined = tally(&self.joined, d);
                SetScore {
                    set,
                    loss: joined.mean_loss(),
                    accuracy: joined.accuracy(),
                    members,
                }
            })
            .collect()
    }

    /// The members' ids joined with `+`: the committee's parent, as its file records it.
    pub fn parent(&self) -> String {
        let ids: Vec<String> = self.members.iter().map(|m| m.id.to_string()).collect();
        ids.join("+")
    }

    /// What the committee's model file records under `name`: the first member's
    /// hyperparameters at the joined width, metrics of the members and of `scores`
    /// ([`Metrics::of_committee`]; NaN validation figures without a validation set), no run,
    /// the first member's data, and `parent` ([`Self::parent`]).
    pub fn model_meta<'a>(
        &'a self,
        name: &'a str,
        parent: &'a str,
        scores: &[SetScore],
    ) -> ModelMeta<'a> {
        let first = self.first();
        let score = |set: &str| scores.iter().find(|s| s.set == set);
        let validation = score("validation");
        let each: Vec<Metrics> = self.members.iter().map(|m| m.meta.metrics).collect();
        ModelMeta {
            name,
            hyper: Hyper {
                hidden_size: self.joined.hidden_size(),
                ..first.hyper
            },
            metrics: Metrics::of_committee(
                &each,
                validation.map_or(f32::NAN, |s| s.loss as f32),
                validation.map_or(f32::NAN, |s| s.accuracy as f32),
                score("test").map(|s| s.accuracy as f32),
            ),
            run_id: "",
            dataset: &first.dataset,
            parent,
        }
    }
}
