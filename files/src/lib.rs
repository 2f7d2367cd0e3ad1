//! # pismo-files
//!
//! Writing files on a host so that readers and other writers never see half of one, naming
//! them, and finding their default folders. Used by every crate that keeps something on disk
//! (`pismo-digits`, `pismo-storage`); it depends on no other pismo crate, not even the core.
//!
//! - [`atomic`]: whole-file writes by temp file (`tempfile`'s), fsync and a rename that
//!   replaces or one that never does; temp files of dead writers are found and removed.
//! - [`dirs`]: default folders from environment variables (an empty variable counts as
//!   unset).
//! - [`process`]: whether a process, named by pid and start time, is alive.
//! - [`stamp`]: `YYYYMMDD-HHMMSS` UTC timestamps for run ids, study names and saved
//!   drawings, and the dates listings show (through `time`).
pub mod atomic;
pub mod dirs;
pub mod process;
pub mod stamp;
