//! # pismo-digits
//!
//! The digits pismo learns from and is measured on, as 28x28 images with labels
//! ([`mnist::Dataset`]), and the files they come from.
//!
//! - [`mnist`]: the dataset type; MNIST files on disk (raw or gzip, SHA-256 checked) and
//!   fetching them.
//! - [`known`]: published files read raw or gzip, size-limited and SHA-256 checked (MNIST,
//!   the corpora, UNIPEN).
//! - [`image`]: PNG and IDX image files → grey images for the core's preprocessing.
//! - [`drawn`]: the folder of corrected drawings ("Wrong? This is a …"), atomic and
//!   concurrent-safe.
//! - [`pen`]: a round pen on a canvas, as the page and the window draw.
//! - [`synth`]: synthetic pen-written digits in the styles MNIST lacks.
//! - [`redraw`]: MNIST digits thinned to strokes and redrawn with a canvas pen.
//! - [`corpora`]: the shipped non-MNIST handwriting (optdigits, semeion).
//! - [`unipen`]: the shipped pen trajectories of UNIPEN's writers, drawn as on the page.
//! - [`devsets`]: the named sets models are measured on (MNIST, scans, canvas drawings).
//! - [`preview`]: a contact sheet of model inputs (PNG), to look at training data.
//!
//! Depends on the core, `pismo-engine` (the preprocessing compiled per CPU, for synthetic,
//! corpus and drawn digits) and `pismo-files` (atomic writes, stamps). It may not depend on
//! training, storage or tuning: a dataset knows nothing of who learns from it.
pub mod corpora;
pub mod devsets;
pub mod drawn;
pub mod image;
pub mod known;
pub mod mnist;
pub mod pen;
pub mod preview;
pub mod redraw;
pub mod synth;
pub mod unipen;
