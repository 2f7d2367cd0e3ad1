//! A team of threads that train one model together.
//!
//! A mini-batch is far too little work to spawn threads for: spawning per batch made two
//! threads slower than one (docs/ARCHITECTURE.md, "A team of persistent threads"). So the
//! team's threads live for the whole run and meet at a spinning barrier three times per
//! batch. Each thread *owns* a block of hidden units — its columns of `w1`, `b1` and `w2`, their
//! momentum and gradients — for the whole run, so the parameters need no locks; only the
//! batch's inputs and the logits contributions are shared, behind `RwLock`s that are never
//! contended (the barrier orders the phases):
//!
//! | phase | every thread                                                         |
//! |-------|----------------------------------------------------------------------|
//! | A     | reads the command (batch, snapshot, stop) that thread 0 wrote        |
//! | B     | sparse inputs of its share of the samples                            |
//! | C     | forward of its units over the whole batch: their share of the logits |
//! | D     | logits, loss and output gradient of the batch (every thread the same, so none waits for another), its copy of `b2` updated; then backward and update of its units |
//!
//! Every hidden unit's numbers are computed by the same code in the same order whatever block
//! it is in, and logits are summed over fixed groups of [`mlp::SUB`] units, so the model is
//! bit-identical with any number of threads.

use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use crate::kernels::{self, BlockState, Source};
use pismo_core::mlp::{self, Block, Dropout, Mlp, Sparse, CLASSES, INPUT};
use pismo_engine::aligned::Floats;

/// A barrier that spins for up to 50 µs, then yields its core, then sleeps in short naps (a
/// wait at the end of an epoch, while thread 0 evaluates, should not burn a core). If a thread of the team panics, the
/// others panic out of their wait instead of waiting forever.
#[derive(Debug)]
struct SpinBarrier {
    n: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

impl SpinBarrier {
    fn new(n: usize) -> Self {
        SpinBarrier {
            n,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    fn wait(&self) {
        let gen = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        // Spin (the other threads are normally microseconds away), then yield the core (more
        // threads than free cores), then nap (thread 0 evaluating at the end of an epoch).
        let start = std::time::Instant::now();
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == gen {
            assert!(
                !self.poisoned.load(Ordering::Relaxed),
                "another training thread panicked"
            );
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) {
                spin_loop();
                continue;
            }
            let waited = start.elapsed();
            if waited < Duration::from_micros(50) {
                spin_loop();
            } else if waited < Duration::from_millis(2) {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
}

/// Marks the barrier poisoned if its thread unwinds.
struct PoisonOnPanic<'a>(&'a SpinBarrier);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Relaxed);
        }
    }
}

/// A block of hidden units `h0 .. h0 + width` with its parameters, momentum and scratch,
/// and the thread's own copy of the output bias (every thread updates it identically).
#[derive(Debug)]
struct UnitBlock {
    h0: usize,
    width: usize,
    w1: Floats,
    v1: Floats,
    start: Box<[u32; INPUT + 1]>,
    entries: Vec<(u32, f32)>,
    b1: Vec<f32>,
    vb1: Vec<f32>,
    w2: Vec<f32>,
    v2: Vec<f32>,
    gw2: Vec<f32>,
    gb1: Vec<f32>,
    a: Floats,
    b2: [f32; CLASSES],
    vb2: [f32; CLASSES],
    z: Vec<[f32; CLASSES]>,
    dz2: Vec<[f32; CLASSES]>,
}

impl UnitBlock {
    fn from_model<const H: usize>(m: &Mlp<H>, h0: usize, width: usize, batch: usize) -> Self {
        let cols = |rows: &[[f32; H]]| {
            rows.iter()
                .flat_map(|r| r[h0..h0 + width].iter().copied())
                .collect::<Vec<_>>()
        };
        let mut w1 = Floats::zeroed(INPUT * width);
        mlp::pack_columns(&m.w1, h0, width, &mut w1);
        UnitBlock {
            h0,
            width,
            w1,
            v1: Floats::zeroed(INPUT * width),
            start: Box::new([0; INPUT + 1]),
            entries: Vec::new(),
            b1: m.b1[h0..h0 + width].to_vec(),
            vb1: vec![0.0; width],
            w2: cols(&m.w2),
            v2: vec![0.0; CLASSES * width],
            gw2: vec![0.0; CLASSES * width],
            gb1: vec![0.0; width],
            a: Floats::zeroed(batch * width),
            b2: m.b2,
            vb2: [0.0; CLASSES],
            z: vec![[0.0; CLASSES]; batch],
            dz2: vec![[0.0; CLASSES]; batch],
        }
    }

    fn write_into<const H: usize>(&self, m: &mut Mlp<H>) {
        let (h0, w) = (self.h0, self.width);
        mlp::unpack_columns(&self.w1, h0, w, &mut m.w1);
        for (row, src) in m.w2.iter_mut().zip(self.w2.chunks_exact(w)) {
            row[h0..h0 + w].copy_from_slice(src);
        }
        m.b1[h0..h0 + w].copy_from_slice(&self.b1);
        m.b2 = self.b2;
    }
}

/// One mini-batch step.
#[derive(Clone, Debug)]
struct Job {
    idx: Vec<u32>,
    dropout: Dropout,
    lr: f32,
    momentum: f32,
    l2: f32,
}

#[derive(Clone, Debug)]
enum Command {
    Batch(Job),
    Snapshot,
    Stop,
}

/// What the team shares.
#[derive(Debug)]
pub struct Shared<'a, const H: usize> {
    src: Source<'a>,
    threads: usize,
    widths: Vec<usize>,
    barrier: SpinBarrier,
    command: RwLock<Command>,
    /// Per thread, the sparse inputs of its share of the batch.
    xs: Vec<RwLock<Vec<Sparse>>>,
    /// Per thread, its units' logits contributions: (B, width/SUB, C).
    partials: Vec<RwLock<Vec<[f32; CLASSES]>>>,
    snapshot: Mutex<Box<Mlp<H>>>,
}

impl<'a, const H: usize> Shared<'a, H> {
    /// The samples of thread `t`'s share of a batch of `n`.
    fn range(&self, t: usize, n: usize) -> std::ops::Range<usize> {
        let per = n.div_ceil(self.threads);
        (t * per).min(n)..((t + 1) * per).min(n)
    }

    /// Phases B, C and D for thread `t`; returns the batch's summed loss and correct count.
    /// Each phase reads only what the barrier before it has published.
    fn run_batch(&self, t: usize, blk: &mut UnitBlock, job: &Job) -> (f64, usize) {
        let n = job.idx.len();
        self.prepare_inputs(t, job);
        self.barrier.wait();
        let guards: Vec<_> = self
            .xs
            .iter()
            .map(|l| l.read().expect("inputs lock"))
            .collect();
        let chunks: Vec<&[Sparse]> = guards
            .iter()
            .enumerate()
            .map(|(c, g)| &g[..self.range(c, n).len()])
            .collect();
        self.forward(t, blk, &chunks, job);
        self.barrier.wait();
        let result = self.output_loss(blk, job);
        update_output_bias(blk, job);
        backward(blk, &chunks, job);
        result
    }

    /// B: the sparse inputs of thread `t`'s share of the samples.
    fn prepare_inputs(&self, t: usize, job: &Job) {
        let r = self.range(t, job.idx.len());
        let mut xs = self.xs[t].write().expect("inputs lock");
        kernels::prepare_inputs(
            self.src,
            &job.idx[r.clone()],
            r.start,
            job.dropout.step,
            &mut xs[..r.len()],
        );
    }

    /// C: forward of thread `t`'s units over the whole batch (`chunks`: every thread's
    /// inputs): their activations, and their share of the logits.
    fn forward(&self, t: usize, blk: &mut UnitBlock, chunks: &[&[Sparse]], job: &Job) {
        let (n, w) = (job.idx.len(), blk.width);
        let mut partial = self.partials[t].write().expect("partials lock");
        let block = Block {
            h0: blk.h0,
            width: w,
            w1: &blk.w1,
            b1: &blk.b1,
            w2: &blk.w2,
        };
        kernels::forward_block(
            block,
            chunks,
            n,
            job.dropout,
            &mut blk.a[..n * w],
            &mut partial[..n * (w / mlp::SUB)],
        );
    }

    /// D, first half: the logits from every thread's share, the batch's loss, correct count
    /// and output gradient (into `blk.dz2`), identically on every thread.
    fn output_loss(&self, blk: &mut UnitBlock, job: &Job) -> (f64, usize) {
        let n = job.idx.len();
        let guards: Vec<_> = self
            .partials
            .iter()
            .map(|l| l.read().expect("partials lock"))
            .collect();
        let partials: Vec<&[[f32; CLASSES]]> = guards
            .iter()
            .zip(&self.widths)
            .map(|(g, &w)| &g[..n * (w / mlp::SUB)])
            .collect();
        let labels: Vec<u8> = job.idx.iter().map(|&i| self.src.label(i)).collect();
        kernels::output_loss(
            &blk.b2,
            &partials,
            &labels,
            &mut blk.z[..n],
            &mut blk.dz2[..n],
        )
    }
}

/// D: the thread's own copy of the output bias, updated from the batch's output gradient
/// (every thread the same).
fn update_output_bias(blk: &mut UnitBlock, job: &Job) {
    let n = job.idx.len();
    let mut gb2 = [0.0f32; CLASSES];
    for d in &blk.dz2[..n] {
        for k in 0..CLASSES {
            gb2[k] += d[k];
        }
    }
    mlp::sgd_momentum(&mut blk.b2, &mut blk.vb2, &gb2, job.lr, job.momentum, 0.0);
}

/// D, second half: backward and update of the block's units (`chunks`: the batch's
/// inputs).
fn backward(blk: &mut UnitBlock, chunks: &[&[Sparse]], job: &Job) {
    let (n, w) = (job.idx.len(), blk.width);
    let scale = if job.dropout.rate > 0.0 {
        job.dropout.scale()
    } else {
        1.0
    };
    let state = BlockState {
        w1: &mut blk.w1,
        v1: &mut blk.v1,
        start: &mut blk.start,
        entries: &mut blk.entries,
        b1: &mut blk.b1,
        vb1: &mut blk.vb1,
        w2: &mut blk.w2,
        v2: &mut blk.v2,
        gw2: &mut blk.gw2,
        gb1: &mut blk.gb1,
        a: &mut blk.a,
    };
    kernels::backward_block(
        state,
        w,
        chunks,
        &blk.dz2[..n],
        scale,
        job.lr,
        job.momentum,
        job.l2,
    );
}

impl<const H: usize> Shared<'_, H> {
    /// The loop of threads 1.. of the team.
    fn member(&self, t: usize, mut blk: UnitBlock) {
        let _guard = PoisonOnPanic(&self.barrier);
        loop {
            self.barrier.wait();
            let command = self.command.read().expect("command lock").clone();
            match command {
                Command::Stop => return,
                Command::Snapshot => {
                    blk.write_into(&mut self.snapshot.lock().expect("snapshot lock"));
                    self.barrier.wait();
                }
                Command::Batch(job) => {
                    self.run_batch(t, &mut blk, &job);
                }
            }
        }
    }
}

/// Thread 0's handle on the team: runs steps, takes snapshots, and stops the others when
/// dropped (also on early return or panic).
#[derive(Debug)]
pub struct Team<'s, 'a, const H: usize> {
    shared: &'s Shared<'a, H>,
    block: UnitBlock,
}

/// How many threads (blocks of hidden units) a team for `H` units uses, at most `wanted`:
/// every block is a multiple of [`mlp::SUB`] units.
pub fn team_size<const H: usize>(wanted: usize) -> usize {
    wanted.clamp(1, (H / mlp::SUB).max(1))
}

/// Widths of the blocks: `H / SUB` groups of `SUB` units dealt out as evenly as possible.
fn widths<const H: usize>(threads: usize) -> Vec<usize> {
    let groups = H / mlp::SUB;
    (0..threads)
        .map(|t| (groups / threads + usize::from(t < groups % threads)) * mlp::SUB)
        .collect()
}

/// The shared state of a team of `threads` ([`team_size`]) training `init` on `src`.
pub fn shared<'a, const H: usize>(
    init: &Mlp<H>,
    src: Source<'a>,
    threads: usize,
    batch: usize,
) -> Shared<'a, H> {
    let widths = widths::<H>(threads);
    let per = batch.div_ceil(threads);
    let mut snapshot: Box<Mlp<H>> = pismo_engine::boxed_zeroed();
    snapshot.copy_from(init);
    Shared {
        src,
        threads,
        barrier: SpinBarrier::new(threads),
        command: RwLock::new(Command::Stop),
        xs: (0..threads)
            .map(|_| RwLock::new(vec![Sparse::new(); per]))
            .collect(),
        partials: widths
            .iter()
            .map(|w| RwLock::new(vec![[0.0; CLASSES]; batch * (w / mlp::SUB)]))
            .collect(),
        widths,
        snapshot: Mutex::new(snapshot),
    }
}

impl<'s, 'a, const H: usize> Team<'s, 'a, H> {
    /// Starts threads 1.. of the team in `scope`; the caller is thread 0.
    pub fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        shared: &'s Shared<'a, H>,
        init: &Mlp<H>,
        batch: usize,
    ) -> Self
    where
        's: 'scope,
    {
        let mut h0 = 0;
        let mut blocks: Vec<UnitBlock> = Vec::new();
        for &w in &shared.widths {
            blocks.push(UnitBlock::from_model(init, h0, w, batch));
            h0 += w;
        }
        let mut blocks = blocks.into_iter();
        let first = blocks.next().expect("a team has a thread");
        for (t, blk) in blocks.enumerate() {
            scope.spawn(move || shared.member(t + 1, blk));
        }
        Team {
            shared,
            block: first,
        }
    }

    fn publish(&self, command: Command) {
        *self.shared.command.write().expect("command lock") = command;
        self.shared.barrier.wait();
    }

    /// One mini-batch step on the samples `idx`; returns (summed cross-entropy, correct).
    pub fn step(
        &mut self,
        idx: &[u32],
        dropout: Dropout,
        lr: f32,
        momentum: f32,
        reg_lambda: f32,
    ) -> (f64, usize) {
        let _guard = PoisonOnPanic(&self.shared.barrier);
        let job = Job {
            idx: idx.to_vec(),
            dropout,
            lr,
            momentum,
            l2: reg_lambda / idx.len() as f32,
        };
        self.publish(Command::Batch(job.clone()));
        self.shared.run_batch(0, &mut self.block, &job)
    }

    /// Copies the current parameters into `out`.
    pub fn snapshot(&mut self, out: &mut Mlp<H>) {
        let _guard = PoisonOnPanic(&self.shared.barrier);
        self.publish(Command::Snapshot);
        self.block
            .write_into(&mut self.shared.snapshot.lock().expect("snapshot lock"));
        self.shared.barrier.wait();
        out.copy_from(&self.shared.snapshot.lock().expect("snapshot lock"));
    }
}

impl<const H: usize> Drop for Team<'_, '_, H> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.barrier.poisoned.store(true, Ordering::Relaxed);
        } else {
            self.publish(Command::Stop);
        }
    }
}
