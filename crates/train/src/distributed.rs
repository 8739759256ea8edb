//! The processes one run is spread over: data-parallel ranks and the collective
//! operations between them.
//!
//! [`Solo`] is one process (no communication). With the `mpi` feature, `Mpi` is the
//! ranks that `mpirun -np N` started (rsmpi over OpenMPI, MPICH or another MPI library):
//! every rank takes its share of each global batch, and the gradients are summed over
//! the ranks with one all-reduce per step. [`launched_by_mpirun`] says, in any build,
//! whether the environment says this process is one of several that mpirun started, so
//! that a build without the feature can refuse instead of training N separate copies.

use ember_core::{Error, Result};

/// The processes one run is spread over (data-parallel ranks).
pub trait Collective: Send + Sync + std::fmt::Debug {
    /// This process's rank, 0..size.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Element-wise sum over all ranks, in place; every rank passes a buffer of the same length.
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()>;
    /// The same for f64.
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Element-wise sum over all ranks in one fixed order, the pairwise tree over ranks
    /// in rank order ((r0 + r1) + (r2 + r3), ...), so that the bits of the result do not
    /// depend on the MPI library's algorithm. The number of ranks must be a power of two.
    fn all_reduce_tree_f32(&self, buf: &mut [f32]) -> Result<()>;
    /// The same for f64.
    fn all_reduce_tree_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Element-wise sum over all ranks of a contiguous tensor on this rank's GPU, in
    /// place, without a copy to host memory; `Ok(false)` when this collective has no such
    /// path (the caller then sums a host copy). `Nccl` (the `nccl` feature) sums CUDA tensors.
    fn all_reduce_sum_device(&self, _flat: &candle_core::Tensor) -> Result<bool> {
        Ok(false)
    }
    /// Rank `root`'s bytes on every rank (other ranks' `bytes` are replaced; lengths may differ).
    fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()>;
    /// A name for messages: "MPI (OpenMPI 4.1.4), 2 ranks" etc.
    fn describe(&self) -> String;
}

/// One process (no communication): rank 0 of 1; the all-reduces leave the buffer as it is.
#[derive(Debug, Default, Clone, Copy)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_sum_f32(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn all_reduce_sum_f64(&self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }

    fn all_reduce_tree_f32(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn all_reduce_tree_f64(&self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }

    fn broadcast_bytes(&self, root: usize, _bytes: &mut Vec<u8>) -> Result<()> {
        check_root(root, 1, "one process")
    }

    fn describe(&self) -> String {
        "one process".into()
    }
}

/// Every rank's bytes on every rank, in rank order (one broadcast per rank).
pub fn all_gather_bytes(collective: &dyn Collective, mine: Vec<u8>) -> Result<Vec<Vec<u8>>> {
    let mut all = Vec::with_capacity(collective.size());
    let mut mine = Some(mine);
    for root in 0..collective.size() {
        let mut bytes = if root == collective.rank() { mine.take().unwrap_or_default() } else { Vec::new() };
        collective.broadcast_bytes(root, &mut bytes)?;
        all.push(bytes);
    }
    Ok(all)
}

/// Appends a CPU copy of `t` (dtype, shape, data) to `buf`, for [`read_tensor`].
pub(crate) fn write_tensor(t: &candle_core::Tensor, buf: &mut Vec<u8>) -> Result<()> {
    use candle_core::DType;
    let t = t.to_device(&candle_core::Device::Cpu)?;
    let dims = t.dims().to_vec();
    let flat = t.flatten_all()?;
    let (tag, data): (u8, Vec<u8>) = match flat.dtype() {
        DType::F32 => (0, flat.to_vec1::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::F64 => (1, flat.to_vec1::<f64>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::I64 => (2, flat.to_vec1::<i64>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::U32 => (3, flat.to_vec1::<u32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::U8 => (4, flat.to_vec1::<u8>()?),
        // Half precision: sent as f64, which holds every value exactly.
        _ => (1, flat.to_dtype(DType::F64)?.to_vec1::<f64>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
    };
    buf.push(tag);
    buf.extend((dims.len() as u64).to_le_bytes());
    for d in dims {
        buf.extend((d as u64).to_le_bytes());
    }
    buf.extend(data);
    Ok(())
}

/// Reads a tensor [`write_tensor`] wrote at `*at`, advancing `*at`.
pub(crate) fn read_tensor(buf: &[u8], at: &mut usize) -> Result<candle_core::Tensor> {
    use candle_core::{Device, Tensor};
    let bad = || Error::input("data-parallel evaluation: a rank sent a malformed tensor (a bug)");
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = buf.get(*at..*at + n).ok_or_else(bad)?;
        *at += n;
        Ok(s)
    };
    let tag = take(1)?[0];
    let mut word = || -> Result<usize> { Ok(u64::from_le_bytes(take(8)?.try_into().map_err(|_| bad())?) as usize) };
    let rank = word()?;
    let dims = (0..rank).map(|_| word()).collect::<Result<Vec<usize>>>()?;
    let n: usize = dims.iter().product();
    let size = match tag {
        0 | 3 => 4,
        1 | 2 => 8,
        4 => 1,
        _ => return Err(bad()),
    };
    let data = take(n * size)?;
    Ok(match tag {
        0 => Tensor::from_vec(
            data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<_>>(),
            dims,
            &Device::Cpu,
        )?,
        1 => Tensor::from_vec(
            data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect::<Vec<_>>(),
            dims,
            &Device::Cpu,
        )?,
        2 => Tensor::from_vec(
            data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect::<Vec<_>>(),
            dims,
            &Device::Cpu,
        )?,
        3 => Tensor::from_vec(
            data.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<_>>(),
            dims,
            &Device::Cpu,
        )?,
        _ => Tensor::from_vec(data.to_vec(), dims, &Device::Cpu)?,
    })
}

/// `root` must be a rank of a run of `size` ranks.
fn check_root(root: usize, size: usize, what: &str) -> Result<()> {
    if root < size {
        Ok(())
    } else {
        Err(Error::input(format!(
            "broadcast from rank {root}: {what} has ranks 0 to {} only; broadcast from one of them",
            size - 1
        )))
    }
}

/// The environment variables in which launchers give the number of processes they
/// started: Open MPI's `mpirun` (`OMPI_COMM_WORLD_SIZE`), MPICH's and Intel MPI's Hydra
/// `mpiexec` (`PMI_SIZE`), MVAPICH (`MV2_COMM_WORLD_SIZE`). (Open MPI's PMIx sets
/// `PMIX_RANK` but no size; Slurm's `srun` is not recognized.)
pub const LAUNCHER_SIZE_VARS: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"];

/// The world size when the environment says this process was started by
/// mpirun/mpiexec ([`LAUNCHER_SIZE_VARS`]); `None` when it was not (or the variable
/// holds no number). Needs no MPI library: a build without the `mpi` feature uses it to
/// refuse a multi-rank launch.
pub fn launched_by_mpirun() -> Option<usize> {
    launched_size(|k| std::env::var(k).ok())
}

/// [`launched_by_mpirun`] over the environment `get`.
fn launched_size(get: impl Fn(&str) -> Option<String>) -> Option<usize> {
    LAUNCHER_SIZE_VARS.iter().find_map(|&k| get(k)?.trim().parse::<usize>().ok().filter(|&n| n >= 1))
}

/// The variable of [`LAUNCHER_SIZE_VARS`] that is set, with its value (for messages).
#[cfg(feature = "mpi")]
fn launcher_var() -> Option<String> {
    LAUNCHER_SIZE_VARS.iter().find_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
}

#[cfg(feature = "mpi")]
pub use self::mpi_impl::Mpi;

#[cfg(feature = "nccl")]
pub use self::nccl_impl::Nccl;

/// The environment variables in which launchers give a process's rank among those on its
/// own node: Open MPI, MPICH / Intel MPI's Hydra, MVAPICH, Slurm.
pub const LAUNCHER_LOCAL_RANK_VARS: [&str; 4] =
    ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"];

/// This process's rank on its node, when a launcher says ([`LAUNCHER_LOCAL_RANK_VARS`]).
pub fn local_rank() -> Option<usize> {
    local_rank_in(|k| std::env::var(k).ok())
}

fn local_rank_in(get: impl Fn(&str) -> Option<String>) -> Option<usize> {
    LAUNCHER_LOCAL_RANK_VARS.iter().find_map(|&k| get(k)?.trim().parse::<usize>().ok())
}

/// The device a rank trains on, from the `--device` it was given: one GPU per rank, so a
/// bare `cuda` (or `metal`) becomes `cuda:L` for the rank's local rank L on its node; an
/// explicit ordinal (`cuda:1`) and `cpu` stay as given. `auto` is left to resolve alone.
pub fn device_for_rank(spec: &str, local_rank: Option<usize>) -> String {
    match (spec.trim(), local_rank) {
        (kind @ ("cuda" | "metal"), Some(l)) => format!("{kind}:{l}"),
        (other, _) => other.to_string(),
    }
}

#[cfg(feature = "mpi")]
mod mpi_impl {
    use std::sync::{Arc, Mutex};
    use std::thread::ThreadId;

    use ember_core::{Error, Result};
    use mpi::collective::SystemOperation;
    use mpi::environment::Universe;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;
    use mpi::Threading;

    use super::{check_root, launched_by_mpirun, launcher_var, Collective};

    /// The most elements one MPI call takes (its count is a C `int`); longer buffers go
    /// in pieces of this size, the same on every rank.
    const MAX_COUNT: usize = i32::MAX as usize;

    /// The ranks of `MPI_COMM_WORLD` (the processes that `mpirun -np N` started).
    ///
    /// Clones share one MPI session: MPI is finalized when the last clone is dropped
    /// (a clone kept by the caller lets it [`Mpi::abort`] all ranks after the Learner
    /// holding another clone has been dropped). Calls from several threads are
    /// serialized.
    #[derive(Clone)]
    pub struct Mpi {
        inner: Arc<Inner>,
    }

    struct Inner {
        /// Finalizes MPI when dropped: lives as long as any clone of the [`Mpi`].
        _universe: Universe,
        rank: usize,
        size: usize,
        /// The MPI library's own name and version, e.g. `Open MPI v4.1.4`.
        library: String,
        /// The thread support MPI provides; below `Serialized`, calls must come from
        /// the thread that initialized MPI.
        threading: Threading,
        init_thread: ThreadId,
        /// One MPI call at a time (MPI_THREAD_SERIALIZED).
        lock: Mutex<()>,
    }

    impl std::fmt::Debug for Mpi {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Mpi")
                .field("rank", &self.inner.rank)
                .field("size", &self.inner.size)
                .field("library", &self.inner.library)
                .field("threading", &self.inner.threading)
                .finish()
        }
    }

    impl Drop for Inner {
        fn drop(&mut self) {
            // A panic on one rank while the others wait in a collective: MPI_Finalize
            // (the Universe's drop) would wait for them forever. End the whole job.
            if std::thread::panicking() && self.size > 1 {
                SimpleCommunicator::world().abort(1);
            }
        }
    }

    impl Mpi {
        /// Initializes MPI (once per process) and takes `MPI_COMM_WORLD`. An error when
        /// MPI is already initialized in this process, or when the launcher's
        /// environment says N ranks but MPI's world has another size (this ember was
        /// linked against another MPI library than the `mpirun` that started it).
        pub fn init() -> Result<Mpi> {
            let Some((universe, threading)) = mpi::initialize_with_threading(Threading::Serialized) else {
                return Err(Error::input(
                    "MPI cannot be initialized: it is already initialized (or finalized) in this process; create one Mpi per process and clone it",
                ));
            };
            let world = universe.world();
            let (rank, size) = (world.rank(), world.size());
            let (rank, size) = match (usize::try_from(rank), usize::try_from(size)) {
                (Ok(r), Ok(s)) if s >= 1 && r < s => (r, s),
                _ => return Err(Error::input(format!("MPI reports rank {rank} of {size} ranks: not a valid world"))),
            };
            let library = mpi::environment::library_version()
                .ok()
                .and_then(|v| {
                    let first = v.lines().next()?.split(',').next()?.split_whitespace().collect::<Vec<_>>().join(" ");
                    (!first.is_empty()).then_some(first)
                })
                .unwrap_or_else(|| {
                    let (major, minor) = mpi::environment::version();
                    format!("MPI {major}.{minor} library")
                });
            let this = Mpi {
                inner: Arc::new(Inner {
                    _universe: universe,
                    rank,
                    size,
                    library,
                    threading,
                    init_thread: std::thread::current().id(),
                    lock: Mutex::new(()),
                }),
            };
            if let Some(n) = launched_by_mpirun().filter(|&n| n != size) {
                let var = launcher_var().unwrap_or_default();
                return Err(Error::input(format!(
                    "the launcher started {n} processes ({var}) but {} has {size} rank(s): this ember is linked against another MPI library than the mpirun that started it; start it with the mpirun of the MPI it was built with (see `ldd $(which ember) | grep -i mpi`), or rebuild it against this one",
                    this.describe()
                )));
            }
            Ok(this)
        }

        /// Ends every rank's process at once (`MPI_Abort` on the world) with exit status
        /// `code`: what to do after an error on one rank while the others may be waiting
        /// in a collective (dropping the last [`Mpi`] would finalize MPI, which waits for
        /// every rank).
        pub fn abort(&self, code: i32) -> ! {
            SimpleCommunicator::world().abort(code)
        }

        /// Runs `f` on the world communicator, one call at a time.
        fn call<T>(&self, f: impl FnOnce(&SimpleCommunicator) -> T) -> Result<T> {
            let inner = &self.inner;
            if inner.threading < Threading::Serialized && std::thread::current().id() != inner.init_thread {
                return Err(Error::input(format!(
                    "{}: this MPI library provides only {:?} thread support, so MPI may be called only from the thread that initialized it; use an MPI built with thread support (MPI_THREAD_SERIALIZED or better)",
                    self.describe(),
                    inner.threading
                )));
            }
            let _one = inner.lock.lock().unwrap_or_else(|e| e.into_inner());
            Ok(f(&SimpleCommunicator::world()))
        }

        /// Sums `buf` over the ranks in place, in pieces of at most [`MAX_COUNT`].
        fn all_reduce_sum<T: Equivalence + Copy>(&self, buf: &mut [T]) -> Result<()> {
            if self.inner.size == 1 || buf.is_empty() {
                return Ok(());
            }
            self.call(|world| {
                // rsmpi has no MPI_IN_PLACE: each piece is sent from a copy.
                for piece in buf.chunks_mut(MAX_COUNT) {
                    let send = piece.to_vec();
                    world.all_reduce_into(&send[..], piece, SystemOperation::sum());
                }
            })
        }
    }

    impl Mpi {
        /// Sums `buf` over the ranks by recursive doubling: at level l, ranks r and
        /// r xor 2^l swap their sums and add them. Each level joins two neighbouring
        /// subtrees, so every rank ends with the pairwise tree's sum in rank order (and
        /// addition commutes bit for bit, so both partners get the same bits).
        fn all_reduce_tree<T>(&self, buf: &mut [T]) -> Result<()>
        where
            T: Equivalence + Copy + Default + std::ops::Add<Output = T>,
        {
            let (me, n) = (self.inner.rank, self.inner.size);
            if n == 1 || buf.is_empty() {
                return Ok(());
            }
            if !n.is_power_of_two() {
                return Err(Error::input(format!(
                    "{}: a sum in fixed order (train.blocks) needs a power-of-two number of ranks; start 2, 4, 8, ... ranks",
                    self.describe()
                )));
            }
            self.call(|world| {
                let mut theirs = vec![T::default(); buf.len().min(MAX_COUNT)];
                let mut level = 1;
                while level < n {
                    let partner = world.process_at_rank((me ^ level) as mpi::Rank);
                    for piece in buf.chunks_mut(MAX_COUNT) {
                        let other = &mut theirs[..piece.len()];
                        mpi::point_to_point::send_receive_into(&piece[..], &partner, other, &partner);
                        for (a, b) in piece.iter_mut().zip(other.iter()) {
                            *a = *a + *b;
                        }
                    }
                    level *= 2;
                }
            })
        }
    }

    impl Collective for Mpi {
        fn rank(&self) -> usize {
            self.inner.rank
        }

        fn size(&self) -> usize {
            self.inner.size
        }

        fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
            self.all_reduce_sum(buf)
        }

        fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
            self.all_reduce_sum(buf)
        }

        fn all_reduce_tree_f32(&self, buf: &mut [f32]) -> Result<()> {
            self.all_reduce_tree(buf)
        }

        fn all_reduce_tree_f64(&self, buf: &mut [f64]) -> Result<()> {
            self.all_reduce_tree(buf)
        }

        fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()> {
            check_root(root, self.inner.size, &self.describe())?;
            if self.inner.size == 1 {
                return Ok(());
            }
            let me = self.inner.rank;
            self.call(|world| {
                let from = world.process_at_rank(root as mpi::Rank);
                let mut len = bytes.len() as u64;
                from.broadcast_into(&mut len);
                if me != root {
                    bytes.clear();
                    bytes.resize(len as usize, 0);
                }
                for piece in bytes.chunks_mut(MAX_COUNT) {
                    from.broadcast_into(piece);
                }
            })
        }

        fn describe(&self) -> String {
            let n = self.inner.size;
            format!("MPI ({}), {n} rank{}", self.inner.library, if n == 1 { "" } else { "s" })
        }
    }
}

/// NCCL for the gradient all-reduce on GPUs, MPI for everything else (start-up, the
/// unique id NCCL's ranks meet through, the checks and small host-side sums).
#[cfg(feature = "nccl")]
mod nccl_impl {
    use std::sync::Mutex;

    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::nccl::{Comm, Id, ReduceOp};
    use candle_core::{CpuStorage, CudaStorage, Device, InplaceOp1, Layout, Tensor};
    use ember_core::{Error, Result};

    use super::{Collective, Mpi};

    /// A cudarc communicator, used under the lock of [`Nccl`].
    struct Shared(Comm);

    // SAFETY: an NCCL communicator may be used from any thread, one call at a time; the
    // Mutex in `Nccl` serializes the calls.
    unsafe impl Send for Shared {}

    /// The ranks of an MPI job, each on its own CUDA device, summing gradients with NCCL
    /// (`ncclAllReduce` on the device's stream) and using MPI for the rest.
    pub struct Nccl {
        mpi: Mpi,
        comm: Mutex<Shared>,
        device: Device,
        version: String,
    }

    impl std::fmt::Debug for Nccl {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Nccl").field("mpi", &self.mpi).field("device", &self.device).finish()
        }
    }

    impl Nccl {
        /// An NCCL communicator over the ranks of `mpi`, this rank on `device` (a CUDA
        /// device; one per rank): rank 0 creates NCCL's unique id and MPI broadcasts it.
        pub fn init(mpi: Mpi, device: &Device) -> Result<Nccl> {
            let Device::Cuda(cuda) = device else {
                return Err(Error::input(format!(
                    "NCCL sums gradients on CUDA devices; this rank trains on {device:?}: pass --device cuda (or leave out the nccl feature)"
                )));
            };
            let stream = cuda.cuda_stream();
            stream
                .context()
                .bind_to_thread()
                .map_err(|e| Error::input(format!("NCCL: cannot bind the CUDA context to this thread: {e:?}")))?;
            let fail = |what: &str, e: &dyn std::fmt::Debug| {
                Error::input(format!(
                    "NCCL ({what}) failed on rank {} of {}: {e:?}; check that libnccl.so.2 is on the library path (pip install nvidia-nccl-cu13) and that each rank has a GPU of its own",
                    mpi.rank(),
                    mpi.size()
                ))
            };
            let mut bytes = Vec::new();
            if mpi.rank() == 0 {
                let id = Id::new().map_err(|e| fail("ncclGetUniqueId", &e))?;
                bytes = id.internal().iter().map(|&c| c as u8).collect();
            }
            mpi.broadcast_bytes(0, &mut bytes)?;
            let internal: [std::ffi::c_char; 128] =
                bytes.iter().map(|&b| b as std::ffi::c_char).collect::<Vec<_>>().try_into().map_err(|_| {
                    Error::input(format!("NCCL: rank 0 sent a unique id of {} bytes, not 128", bytes.len()))
                })?;
            let comm = Comm::from_rank(stream, mpi.rank(), mpi.size(), Id::uninit(internal))
                .map_err(|e| fail("ncclCommInitRank", &e))?;
            let version = {
                let mut v: std::ffi::c_int = 0;
                // SAFETY: ncclGetVersion writes one int.
                let ok = unsafe { candle_core::cuda_backend::cudarc::nccl::sys::ncclGetVersion(&mut v) };
                if ok == candle_core::cuda_backend::cudarc::nccl::sys::ncclResult_t::ncclSuccess {
                    format!("NCCL {}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
                } else {
                    "NCCL".to_string()
                }
            };
            Ok(Nccl { mpi, comm: Mutex::new(Shared(comm)), device: device.clone(), version })
        }
    }

    /// The in-place sum of a CUDA tensor's storage over the ranks.
    struct AllReduce<'a>(&'a Comm);

    impl InplaceOp1 for AllReduce<'_> {
        fn name(&self) -> &'static str {
            "nccl-all-reduce"
        }

        fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout) -> candle_core::Result<()> {
            candle_core::bail!("NCCL sums CUDA tensors, not host ones")
        }

        fn cuda_fwd(&self, storage: &mut CudaStorage, layout: &Layout) -> candle_core::Result<()> {
            if !layout.is_contiguous() || layout.start_offset() != 0 {
                candle_core::bail!("NCCL all-reduce: the gradient buffer must be contiguous from its start");
            }
            let n = layout.shape().elem_count();
            let status = match storage.dtype() {
                candle_core::DType::F32 => {
                    let s = storage.as_cuda_slice_mut::<f32>()?;
                    if s.len() != n {
                        candle_core::bail!("NCCL all-reduce: the buffer holds {} values, the tensor {n}", s.len());
                    }
                    self.0.all_reduce_in_place(s, &ReduceOp::Sum)
                }
                candle_core::DType::F64 => {
                    let s = storage.as_cuda_slice_mut::<f64>()?;
                    if s.len() != n {
                        candle_core::bail!("NCCL all-reduce: the buffer holds {} values, the tensor {n}", s.len());
                    }
                    self.0.all_reduce_in_place(s, &ReduceOp::Sum)
                }
                other => candle_core::bail!("NCCL all-reduce: {other:?} gradients are not summed (f32 and f64 are)"),
            };
            status.map(|_| ()).map_err(|e| candle_core::Error::Msg(format!("ncclAllReduce: {e:?}")))
        }
    }

    impl Collective for Nccl {
        fn rank(&self) -> usize {
            self.mpi.rank()
        }

        fn size(&self) -> usize {
            self.mpi.size()
        }

        fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
            self.mpi.all_reduce_sum_f32(buf)
        }

        fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
            self.mpi.all_reduce_sum_f64(buf)
        }

        fn all_reduce_tree_f32(&self, buf: &mut [f32]) -> Result<()> {
            self.mpi.all_reduce_tree_f32(buf)
        }

        fn all_reduce_tree_f64(&self, buf: &mut [f64]) -> Result<()> {
            self.mpi.all_reduce_tree_f64(buf)
        }

        fn all_reduce_sum_device(&self, flat: &Tensor) -> Result<bool> {
            if !flat.device().same_device(&self.device) {
                return Ok(false);
            }
            let comm = self.comm.lock().unwrap_or_else(|e| e.into_inner());
            flat.inplace_op1(&AllReduce(&comm.0))?;
            Ok(true)
        }

        fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()> {
            self.mpi.broadcast_bytes(root, bytes)
        }

        fn describe(&self) -> String {
            format!("{} over {}", self.version, self.mpi.describe())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_gpu_device_becomes_the_local_ranks() {
        assert_eq!(device_for_rank("cuda", Some(3)), "cuda:3");
        assert_eq!(device_for_rank("metal", Some(1)), "metal:1");
        assert_eq!(device_for_rank("cuda:1", Some(3)), "cuda:1");
        assert_eq!(device_for_rank("cpu", Some(3)), "cpu");
        assert_eq!(device_for_rank("cuda", None), "cuda");
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(local_rank_in(env(&[("OMPI_COMM_WORLD_LOCAL_RANK", "2")])), Some(2));
        assert_eq!(local_rank_in(env(&[("MPI_LOCALRANKID", "1")])), Some(1));
        assert_eq!(local_rank_in(env(&[("SLURM_LOCALID", "x")])), None);
        assert_eq!(local_rank_in(env(&[])), None);
    }

    #[test]
    fn solo_is_rank_0_of_1() {
        let solo = Solo;
        assert_eq!((solo.rank(), solo.size()), (0, 1));
        assert_eq!(solo.describe(), "one process");
        let boxed: Box<dyn Collective> = Box::new(Solo);
        assert_eq!(format!("{boxed:?}"), "Solo");
    }

    #[test]
    fn solo_all_reduce_leaves_the_buffer() {
        let mut a = vec![1.5f32, -2.0, f32::MAX, 0.0];
        Solo.all_reduce_sum_f32(&mut a).unwrap();
        assert_eq!(a, [1.5, -2.0, f32::MAX, 0.0]);
        let mut b = vec![0.1f64, 1e300, -7.0];
        Solo.all_reduce_sum_f64(&mut b).unwrap();
        assert_eq!(b, [0.1, 1e300, -7.0]);
        Solo.all_reduce_sum_f64(&mut []).unwrap();
    }

    #[test]
    fn solo_broadcast_from_0_keeps_the_bytes_and_other_roots_are_refused() {
        let mut bytes = b"config".to_vec();
        Solo.broadcast_bytes(0, &mut bytes).unwrap();
        assert_eq!(bytes, b"config");
        let e = Solo.broadcast_bytes(1, &mut bytes).unwrap_err().to_string();
        assert!(e.contains("rank 1") && e.contains("ranks 0 to 0"), "{e}");
        assert_eq!(bytes, b"config");
    }

    #[test]
    fn launched_size_reads_open_mpi_and_hydra_variables() {
        fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
            move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        }
        assert_eq!(launched_size(env(&[])), None);
        assert_eq!(launched_size(env(&[("OMPI_COMM_WORLD_SIZE", "4")])), Some(4));
        assert_eq!(launched_size(env(&[("PMI_SIZE", " 2 ")])), Some(2));
        assert_eq!(launched_size(env(&[("MV2_COMM_WORLD_SIZE", "1")])), Some(1));
        // Open MPI's variable first; a value that is no size is no launch.
        assert_eq!(launched_size(env(&[("OMPI_COMM_WORLD_SIZE", "3"), ("PMI_SIZE", "5")])), Some(3));
        assert_eq!(launched_size(env(&[("OMPI_COMM_WORLD_SIZE", "x"), ("PMI_SIZE", "5")])), Some(5));
        assert_eq!(launched_size(env(&[("PMI_SIZE", "0")])), None);
        assert_eq!(launched_size(env(&[("PMIX_RANK", "1")])), None);
    }
}
