//! A small persistent thread pool for the forward pass: one caller at a time hands it `n` independent
//! tasks and helps run them; workers spin briefly between calls and park when idle.
//!
//! A forward pass calls [`Pool::run`] about 150 times per token in tight sequence, each call a few
//! microseconds to a few milliseconds of work. A general-purpose pool (rayon) costs ~10 µs per call and
//! a futex wake-up costs about as much, so workers here spin for [`SPIN_BEFORE_PARK`] after each call
//! before they park, and the caller runs tasks itself instead of waiting idle.
//!
//! Protocol. One 64-bit word `state` holds `epoch:32 | n_tasks:16 | next:16`. The caller publishes a
//! job by storing a fresh epoch with `next = 0`; every thread (caller included) claims task `next` by a
//! compare-and-swap that also checks the epoch, so a thread that is late for one call can never claim a
//! task of the following call. The job's closure is read only after a successful claim, and the caller
//! returns only after every task has completed, so no thread touches a closure after its call returned.

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins for the next call before it parks on a condition variable.
pub const SPIN_BEFORE_PARK: Duration = Duration::from_micros(100);

/// The most tasks one published round can hold (the width of the `n_tasks` field of `state`);
/// [`Pool::run`] splits larger calls into rounds.
const ROUND_TASKS_MAX: usize = 0xFFFF;

/// The most threads a pool may have; more than this is certainly a configuration mistake.
pub const THREADS_MAX: usize = 256;

thread_local! {
    /// Set while this thread runs a pool task, so a nested [`Pool::run`] runs inline instead of
    /// deadlocking on the caller lock.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

type Task<'a> = dyn Fn(usize) + Sync + 'a;

/// What the caller publishes: a thin pointer to this (on the caller's stack) fits in an `AtomicPtr`.
struct JobRef<'a> {
    task: &'a Task<'a>,
}

struct Shared {
    /// `epoch:32 | n_tasks:16 | next:16`, see the module documentation.
    state: AtomicU64,
    /// `*const JobRef` of the current call; valid while a task of the current epoch is unfinished.
    job: AtomicPtr<()>,
    /// Tasks of the current round that have finished (or panicked).
    completed: AtomicUsize,
    /// The first panic payload of the current call.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    shutdown: AtomicBool,
    /// Workers parked (or about to park) on `wake`; the caller notifies only when this is non-zero.
    sleepers: AtomicUsize,
    park: Mutex<()>,
    wake: Condvar,
}

fn pack(epoch: u32, n_tasks: usize, next: usize) -> u64 {
    debug_assert!(n_tasks <= ROUND_TASKS_MAX && next <= n_tasks);
    (u64::from(epoch) << 32) | ((n_tasks as u64) << 16) | next as u64
}

fn epoch_of(state: u64) -> u32 {
    (state >> 32) as u32
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Tasks run under catch_unwind and no lock is held across user code, so poisoning carries no
    // information here.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Claim and run tasks of `epoch` until none is left.
    fn work(&self, epoch: u32) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let n_tasks = ((state >> 16) & 0xFFFF) as usize;
            let next = (state & 0xFFFF) as usize;
            if epoch_of(state) != epoch || next >= n_tasks {
                return;
            }
            match self.state.compare_exchange_weak(state, state + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.run_claimed(next);
                    state = self.state.load(Ordering::Acquire);
                }
                Err(current) => state = current,
            }
        }
    }

    fn run_claimed(&self, index: usize) {
        let job = self.job.load(Ordering::Acquire).cast::<JobRef<'_>>().cast_const();
        // SAFETY: this thread just claimed an unfinished task of the current epoch, and the caller that
        // published `job` (a `JobRef` on its stack, stored before the epoch with Release) does not
        // return, nor overwrite `job`, until `completed` reaches the task count, which needs this task.
        let job = unsafe { &*job };
        let was_in_task = IN_TASK.replace(true);
        let result = catch_unwind(AssertUnwindSafe(|| (job.task)(index)));
        IN_TASK.set(was_in_task);
        if let Err(payload) = result {
            lock(&self.panic).get_or_insert(payload);
        }
        self.completed.fetch_add(1, Ordering::Release);
    }

    /// Wait until the epoch differs from `seen`: spin first, then park. `false` means shut down.
    fn wait_for_call(&self, seen: u32) -> bool {
        let start = Instant::now();
        let mut spins: u32 = 0;
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                return false;
            }
            if epoch_of(self.state.load(Ordering::Acquire)) != seen {
                return true;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && start.elapsed() > SPIN_BEFORE_PARK {
                break;
            }
            std::hint::spin_loop();
        }
        let mut guard = lock(&self.park);
        // SeqCst pairs with the caller's SeqCst store of `state` then load of `sleepers`: either we see
        // the new epoch below, or the caller sees us counted and notifies under `park`.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let woken = loop {
            if self.shutdown.load(Ordering::SeqCst) {
                break false;
            }
            if epoch_of(self.state.load(Ordering::SeqCst)) != seen {
                break true;
            }
            guard = self.wake.wait(guard).unwrap_or_else(PoisonError::into_inner);
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        woken
    }

    fn notify_sleepers(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = lock(&self.park);
            self.wake.notify_all();
        }
    }
}

fn worker_loop(shared: &Shared) {
    let mut seen = epoch_of(shared.state.load(Ordering::Acquire));
    while shared.wait_for_call(seen) {
        seen = epoch_of(shared.state.load(Ordering::Acquire));
        shared.work(seen);
    }
}

/// A persistent pool of `threads - 1` workers plus the calling thread.
///
/// [`Pool::run`] may be called from any thread; concurrent callers are serialized. Dropping the pool
/// stops and joins its workers.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serializes callers: one call's tasks occupy the whole pool.
    caller: Mutex<()>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("threads", &self.threads()).finish()
    }
}

impl Pool {
    /// A pool whose calls run on `threads` threads, the caller included: `threads = 2` starts one
    /// worker. `threads` is clamped to `1..=THREADS_MAX`.
    ///
    /// # Panics
    /// If the operating system refuses to start a thread.
    pub fn new(threads: usize) -> Self {
        let threads = threads.clamp(1, THREADS_MAX);
        let shared = Arc::new(Shared {
            state: AtomicU64::new(pack(0, 0, 0)),
            job: AtomicPtr::new(std::ptr::null_mut()),
            completed: AtomicUsize::new(0),
            panic: Mutex::new(None),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            park: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads)
            .map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("gonka-pool-{i}"))
                    .spawn(move || worker_loop(&shared))
                    .expect("the OS starts a pool worker thread")
            })
            .collect();
        Self { shared, workers, caller: Mutex::new(()) }
    }

    /// Threads a call runs on, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Run `task(0)`, …, `task(n_tasks - 1)` on all the pool's threads (the caller takes part) and
    /// return when every one has finished. Tasks are claimed in index order, each by one thread.
    ///
    /// A call from inside a task of this or another pool runs its tasks inline, in order.
    ///
    /// # Panics
    /// If a task panics, the remaining tasks still run and the first panic is then resumed on the
    /// caller.
    pub fn run<F: Fn(usize) + Sync>(&self, n_tasks: usize, task: F) {
        if self.workers.is_empty() || n_tasks <= 1 || IN_TASK.get() {
            (0..n_tasks).for_each(task);
            return;
        }
        let _caller = lock(&self.caller);
        let mut first = 0;
        while first < n_tasks {
            let round = (n_tasks - first).min(ROUND_TASKS_MAX);
            let offset = first;
            self.run_round(round, &|i| task(offset + i));
            first += round;
        }
        let panic = lock(&self.shared.panic).take();
        if let Some(payload) = panic {
            drop(_caller);
            resume_unwind(payload);
        }
    }

    /// Run `task(i, chunk)` for chunk `i` of `data` cut into `chunk_len` elements (the last may be
    /// shorter), the chunks spread over the pool like the tasks of [`Pool::run`].
    pub fn for_each_chunk<T: Send, F: Fn(usize, &mut [T]) + Sync>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        task: F,
    ) {
        // Each chunk is taken by exactly one task, so its lock is never contended.
        let chunks: Vec<std::sync::Mutex<&mut [T]>> =
            data.chunks_mut(chunk_len.max(1)).map(std::sync::Mutex::new).collect();
        self.run(chunks.len(), |i| {
            let mut chunk = chunks[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            task(i, &mut chunk);
        });
    }

    fn run_round(&self, n_tasks: usize, task: &Task<'_>) {
        let shared = &*self.shared;
        let job = JobRef { task };
        shared.completed.store(0, Ordering::Relaxed);
        shared.job.store((&raw const job).cast_mut().cast::<()>(), Ordering::Release);
        let epoch = epoch_of(shared.state.load(Ordering::Relaxed)).wrapping_add(1);
        shared.state.store(pack(epoch, n_tasks, 0), Ordering::SeqCst);
        shared.notify_sleepers();
        shared.work(epoch);
        let mut spins: u32 = 0;
        while shared.completed.load(Ordering::Acquire) < n_tasks {
            spins = spins.wrapping_add(1);
            if spins < 1 << 14 {
                std::hint::spin_loop();
            } else {
                // A worker holding the last task was descheduled; give it the core.
                std::thread::yield_now();
            }
        }
        shared.job.store(std::ptr::null_mut(), Ordering::Relaxed);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _guard = lock(&self.shared.park);
            self.shared.wake.notify_all();
        }
        for worker in self.workers.drain(..) {
            // A worker never panics (tasks run under catch_unwind), so a join error cannot carry news.
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_task_runs_exactly_once() {
        for threads in [1, 2, 3, 5] {
            let pool = Pool::new(threads);
            for n_tasks in [0, 1, 2, 7, 100, 1000] {
                let hits: Vec<AtomicU32> = (0..n_tasks).map(|_| AtomicU32::new(0)).collect();
                pool.run(n_tasks, |i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "threads {threads} n {n_tasks}");
            }
        }
    }

    #[test]
    fn more_tasks_than_one_round_holds() {
        let pool = Pool::new(2);
        let n_tasks = ROUND_TASKS_MAX * 2 + 3;
        let hits: Vec<AtomicU32> = (0..n_tasks).map(|_| AtomicU32::new(0)).collect();
        pool.run(n_tasks, |i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn back_to_back_calls_and_calls_after_parking_both_complete() {
        let pool = Pool::new(2);
        let total = AtomicUsize::new(0);
        for call in 0..20_000 {
            pool.run(4, |i| {
                total.fetch_add(i + 1, Ordering::Relaxed);
            });
            if call % 5000 == 0 {
                std::thread::sleep(SPIN_BEFORE_PARK * 3);
            }
        }
        assert_eq!(total.load(Ordering::Relaxed), 20_000 * 10);
    }

    #[test]
    fn a_panicking_task_panics_the_caller_after_the_others_finish() {
        let pool = Pool::new(2);
        let finished = AtomicUsize::new(0);
        let result = catch_unwind(AssertUnwindSafe(|| {
            pool.run(16, |i| {
                assert_ne!(i, 5, "task five fails");
                finished.fetch_add(1, Ordering::Relaxed);
            });
        }));
        assert!(result.is_err());
        assert_eq!(finished.load(Ordering::Relaxed), 15);
        // The pool stays usable.
        let after = AtomicUsize::new(0);
        pool.run(8, |_| {
            after.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(after.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn concurrent_callers_are_serialized_and_nested_calls_run_inline() {
        let pool = Arc::new(Pool::new(2));
        let total = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let pool = Arc::clone(&pool);
                let total = Arc::clone(&total);
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        pool.run(3, |_| {
                            pool.run(2, |_| {
                                total.fetch_add(1, Ordering::Relaxed);
                            });
                        });
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().expect("caller thread finishes");
        }
        assert_eq!(total.load(Ordering::Relaxed), 3 * 2000 * 3 * 2);
    }

    #[test]
    fn dropping_a_parked_pool_joins_its_workers() {
        let pool = Pool::new(4);
        pool.run(4, |_| {});
        std::thread::sleep(SPIN_BEFORE_PARK * 3);
        drop(pool);
    }
}
