//! [`Collective`] over MPI (the `mpi` feature): the processes `mpirun`, `srun --mpi=pmix` or
//! MPICH's `mpiexec` started. Only the calling thread talks to MPI (the batch loader and
//! burn's workers never do), so MPI runs at its "funneled" threading level.

use anyhow::{Result, bail};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::collective::Collective;

/// The environment variables by which launchers tell a process it is one of several.
const LAUNCHER_VARS: [&str; 4] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "PMIX_RANK",
    "MPI_LOCALNRANKS",
];

/// Set to 1 in tests only: the gradients are *not* summed, which a correct comparison must
/// catch.
pub const SKIP_GRADIENT_SUM_VAR: &str = "BERT_TRAIN_TEST_SKIP_GRADIENT_SUM";

pub struct MpiJob {
    // Dropped last: MPI_Finalize.
    _universe: Universe,
    world: SimpleCommunicator,
    local_rank: usize,
    local_size: usize,
    skip_gradient_sum: bool,
}

impl MpiJob {
    /// The MPI job this process belongs to, if a launcher started it; `None` for a plain run.
    pub fn from_launcher() -> Result<Option<Self>> {
        if !LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
            return Ok(None);
        }
        let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Funneled) else {
            bail!("MPI was initialised already");
        };
        let world = universe.world();
        // The processes sharing this machine: which device is ours.
        let local = world.split_shared(world.rank());
        let job = Self {
            local_rank: local.rank() as usize,
            local_size: local.size() as usize,
            world,
            _universe: universe,
            skip_gradient_sum: std::env::var(SKIP_GRADIENT_SUM_VAR).is_ok_and(|v| v == "1"),
        };
        Ok(Some(job))
    }

    /// How many processes of the job run on this machine.
    pub fn local_size(&self) -> usize {
        self.local_size
    }

    /// End the whole job (the other processes are waiting in a collective operation and
    /// would never return).
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

impl Collective for MpiJob {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn sum_f32(&self, values: &mut [f32]) {
        for chunk in values.chunks_mut(1 << 28) {
            let local = chunk.to_vec();
            self.world
                .all_reduce_into(&local[..], chunk, SystemOperation::sum());
        }
    }

    fn sum_f64(&self, values: &mut [f64]) {
        for chunk in values.chunks_mut(1 << 27) {
            let local = chunk.to_vec();
            self.world
                .all_reduce_into(&local[..], chunk, SystemOperation::sum());
        }
    }

    fn broadcast(&self, bytes: &mut Vec<u8>) {
        let root = self.world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        // MPI counts are 32-bit: a checkpoint of BERT-large with its optimizer state is larger.
        for chunk in bytes.chunks_mut(1 << 30) {
            root.broadcast_into(chunk);
        }
    }

    fn sums_gradients(&self) -> bool {
        !self.skip_gradient_sum
    }
}
