
mod cli;
mod training;
