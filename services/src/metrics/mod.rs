//! CPU and memory, sampled in the background.
//!
//! A sysinfo refresh costs about 0.3 ms and CPU figures need two refreshes at
//! least 200 ms apart, so refreshing per request would be slow and wrong (the
//! original app blocked one second per status request). A sampler thread
//! refreshes on an interval and publishes an immutable [`Sample`]; requests
//! read the latest one without locking.
//!
//! Percentages are of what the process may use, as ECS measures a task:
//! CPU against its cgroup's quota and memory against its cgroup's limit
//! ([`cgroup`]), the host's cores and memory only where none is set.

mod cgroup;

use std::{
    sync::{Arc, OnceLock, Weak},
    thread,
    time::{Duration, Instant, SystemTime},
};

use arc_swap::ArcSwapOption;
use sysinfo::{MINIMUM_CPU_UPDATE_INTERVAL, Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::watch;

/// One reading of this process and its host.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub taken_at: SystemTime,
    /// Whole system, percent of all cores.
    pub cpu_percent: f64,
    /// This process, percent of one core.
    pub process_cpu_percent: f64,
    /// The cores this process may use: its cgroup's CPU quota, else the
    /// host's cores.
    pub cpu_capacity_cores: f64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub process_memory_bytes: u64,
    /// The memory limit of this process's cgroup (the container's, or the
    /// task's above it), if one is set.
    pub container_memory_limit_bytes: Option<u64>,
}

impl Sample {
    /// Memory in use in percent: this process's resident memory of its
    /// cgroup's limit when one is set (what ECS's MemoryUtilization
    /// compares), else the host's memory in use of its total.
    pub fn memory_percent(&self) -> f64 {
        let (used, total) = match self.container_memory_limit_bytes {
            Some(limit) => (self.process_memory_bytes, limit),
            None => (self.memory_used_bytes, self.memory_total_bytes),
        };
        if total == 0 {
            return 0.0;
        }
        used as f64 * 100.0 / total as f64
    }

    /// This process's CPU in percent of what it may use (its cgroup's
    /// quota, else all the host's cores): what ECS's CPUUtilization means
    /// for a task.
    pub fn process_cpu_percent_of_capacity(&self) -> f64 {
        self.process_cpu_percent / self.cpu_capacity_cores.max(f64::MIN_POSITIVE)
    }
}

/// The cores this process may use: its cgroup's CPU quota, else the
/// host's logical cores. Read once.
pub fn cpu_capacity_cores() -> f64 {
    static CORES: OnceLock<f64> = OnceLock::new();
    *CORES.get_or_init(|| {
        cgroup::own_limits().cpu_cores.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1.0, |cores| cores.get() as f64)
        })
    })
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot read system metrics: {0}")]
    Unsupported(String),
    #[error("cannot start the metrics sampler thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Handle to the latest sample. Cheap to clone; the sampler thread stops
/// when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    latest: ArcSwapOption<Sample>,
    ready: watch::Sender<bool>,
}

impl Metrics {
    /// Starts sampling every `interval`. The first sample is published after
    /// sysinfo's minimum CPU interval, so CPU figures are real from the first
    /// one: wait for [`Metrics::ready`] before reporting SERVING.
    pub fn start(interval: Duration) -> Result<Self, MetricsError> {
        let pid =
            sysinfo::get_current_pid().map_err(|e| MetricsError::Unsupported(e.to_string()))?;
        let system = System::new().map_err(|e| MetricsError::Unsupported(e.to_string()))?;
        let shared = Arc::new(Shared {
            latest: ArcSwapOption::empty(),
            ready: watch::Sender::new(false),
        });
        let weak = Arc::downgrade(&shared);
        thread::Builder::new()
            .name("metrics-sampler".into())
            .spawn(move || run_sampler(system, pid, interval, weak))?;
        Ok(Self { shared })
    }

    /// The latest sample; `None` until the first one is taken.
    pub fn latest(&self) -> Option<Arc<Sample>> {
        self.shared.latest.load_full()
    }

    /// Completes once the first sample is published.
    pub async fn ready(&self) {
        let mut ready = self.shared.ready.subscribe();
        // The sender lives in `shared`, which `self` keeps alive.
        let _ = ready.wait_for(|ready| *ready).await;
    }
}

fn run_sampler(mut system: System, pid: Pid, interval: Duration, shared: Weak<Shared>) {
    // CPU figures are differences between two readings: prime the counters.
    let mut previous = refresh(&mut system, pid);
    thread::sleep(MINIMUM_CPU_UPDATE_INTERVAL);
    loop {
        release_free_memory();
        let reading = refresh(&mut system, pid);
        let sample = reading.sample(&previous);
        previous = reading;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.latest.store(Some(Arc::new(sample)));
        shared.ready.send_replace(true);
        drop(shared);
        thread::sleep(interval);
    }
}

/// Hands memory that was freed back to the OS. glibc's allocator keeps
/// freed pages of its per-thread arenas: after a burst of 256 connections a
/// service held 34 MB, of which 22 MB free, until trimmed (12 MB). Once per
/// sample, on this background thread, so requests never wait on it.
#[allow(unsafe_code)] // the crate's one unsafe call; see the SAFETY note
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only returns free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What one refresh reads.
struct Reading {
    at: Instant,
    wall_time: SystemTime,
    system_cpu_percent: f64,
    /// CPU time this process has used since it started, in milliseconds.
    process_cpu_ms: u64,
    memory_used_bytes: u64,
    memory_total_bytes: u64,
    process_memory_bytes: u64,
    container_memory_limit_bytes: Option<u64>,
}

impl Reading {
    fn sample(&self, previous: &Reading) -> Sample {
        // Our own difference of the process's CPU time: sysinfo's per-process
        // percentage stays 0 until a young process has used a clock tick
        // before the first of two readings, which would make the first
        // samples read 0% for real work.
        let wall_ms = self.at.duration_since(previous.at).as_secs_f64() * 1000.0;
        let cpu_ms = self.process_cpu_ms.saturating_sub(previous.process_cpu_ms) as f64;
        Sample {
            taken_at: self.wall_time,
            cpu_percent: self.system_cpu_percent,
            process_cpu_percent: if wall_ms > 0.0 {
                cpu_ms * 100.0 / wall_ms
            } else {
                0.0
            },
            cpu_capacity_cores: cpu_capacity_cores(),
            memory_used_bytes: self.memory_used_bytes,
            memory_total_bytes: self.memory_total_bytes,
            process_memory_bytes: self.process_memory_bytes,
            container_memory_limit_bytes: self.container_memory_limit_bytes,
        }
    }
}

fn refresh(system: &mut System, pid: Pid) -> Reading {
    system.refresh_cpu_usage();
    system.refresh_memory();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_cpu().with_memory(),
    );
    let process = system.process(pid);
    Reading {
        at: Instant::now(),
        wall_time: SystemTime::now(),
        system_cpu_percent: f64::from(system.global_cpu_usage()),
        process_cpu_ms: process.map_or(0, |p| p.accumulated_cpu_time()),
        memory_used_bytes: system.used_memory(),
        memory_total_bytes: system.total_memory(),
        process_memory_bytes: process.map_or(0, |p| p.memory()),
        // The process's own cgroup (and those above it), not the root one:
        // inside a container the root cgroup is the host's, with no limit.
        container_memory_limit_bytes: cgroup::own_limits().memory_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_sample_has_real_figures() {
        // Keep one core busy across the warm-up: the first sample must see it
        // (a sample taken without primed counters reads 0% CPU).
        let busy = thread::spawn(|| {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(600) {
                std::hint::spin_loop();
            }
        });
        let metrics = Metrics::start(Duration::from_secs(60)).expect("sysinfo works here");
        assert!(
            metrics.latest().is_none(),
            "published before the CPU counters were primed"
        );
        tokio::time::timeout(Duration::from_secs(5), metrics.ready())
            .await
            .expect("ready in time");
        let sample = metrics.latest().expect("a sample once ready");
        assert!(sample.memory_total_bytes > 0);
        assert!(sample.memory_used_bytes <= sample.memory_total_bytes);
        assert!(sample.process_memory_bytes > 0);
        assert!((0.0..=100.0).contains(&sample.memory_percent()));
        assert!(sample.cpu_capacity_cores > 0.0, "{sample:?}");
        assert!((0.0..=100.0).contains(&sample.cpu_percent));
        assert!(sample.process_cpu_percent > 5.0, "{sample:?}");
        assert!(sample.cpu_percent > 0.0, "{sample:?}");
        busy.join().expect("busy thread");
    }

    #[test]
    fn percentages_are_of_what_the_process_may_use() {
        let host = Sample {
            taken_at: SystemTime::UNIX_EPOCH,
            cpu_percent: 0.0,
            process_cpu_percent: 50.0,
            cpu_capacity_cores: 2.0,
            memory_used_bytes: 4 << 30,
            memory_total_bytes: 16 << 30,
            process_memory_bytes: 128 << 20,
            container_memory_limit_bytes: None,
        };
        let task = Sample {
            process_cpu_percent: 20.0,
            cpu_capacity_cores: 0.25,
            container_memory_limit_bytes: Some(512 << 20),
            ..host.clone()
        };
        for (sample, cpu, memory) in [(&host, 25.0, 25.0), (&task, 80.0, 25.0)] {
            assert_eq!(sample.process_cpu_percent_of_capacity(), cpu, "{sample:?}");
            assert_eq!(sample.memory_percent(), memory, "{sample:?}");
        }
        let limited = Sample {
            process_memory_bytes: 384 << 20,
            ..task
        };
        assert_eq!(limited.memory_percent(), 75.0);
    }
}
