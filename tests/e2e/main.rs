//! End-to-end tests, one binary, one module per area (see docs/ARCHITECTURE.md, "Tests").
// A test reads as one script of steps; the 80-line limit (clippy.toml) is for the code.
#![allow(clippy::too_many_lines)]

mod adapt;
mod cli;
mod corrections;
mod docs;
mod draw;
mod fetch;
mod firmware;
mod memory;
mod mlflow;
mod onnx;
mod postgres_cluster;
mod preprocess;
mod quant;
mod serve;
mod stores;
mod styles;
mod team_store;
mod team_tune;
mod training;
mod tune;
mod web;
