//! The CPU and memory this process may use: the limits of its own cgroup
//! (the container's, or the task's above it), cgroup v1 or v2.
//!
//! A container sees the host's cores and memory; what ECS measures (and
//! what a task is killed or throttled at) is the cgroup's quota and limit.
//! The tightest limit from the process's cgroup up to the top of the
//! hierarchy it can see counts: on ECS the task-level limit sits on the
//! container's parent. When the process's cgroup path is not visible under
//! the mount (a container's own cgroup mounted as the root), the mount's
//! root is the process's cgroup.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// The cgroup file system.
const ROOT: &str = "/sys/fs/cgroup";
/// A v1 memory limit at least this large means "no limit" (the kernel's
/// unlimited is 2^63 rounded down to a page).
const UNLIMITED_MEMORY: u64 = 1 << 62;

/// The limits of this process's cgroup; `None` where none is set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CgroupLimits {
    /// CPU quota in cores (`cpu.max` or `cpu.cfs_quota_us / cpu.cfs_period_us`).
    pub(crate) cpu_cores: Option<f64>,
    /// Memory limit in bytes (`memory.max` or `memory.limit_in_bytes`).
    pub(crate) memory_bytes: Option<u64>,
}

/// Reads this process's limits (none when there is no cgroup file system).
pub(crate) fn own_limits() -> CgroupLimits {
    let Ok(membership) = fs::read_to_string("/proc/self/cgroup") else {
        return CgroupLimits::default();
    };
    let root = Path::new(ROOT);
    if root.join("cgroup.controllers").exists() {
        // v2: one hierarchy.
        let path = cgroup_path(&membership, None).unwrap_or("/");
        return CgroupLimits {
            cpu_cores: tightest(root, path, |dir| {
                parse_cpu_max(&fs::read_to_string(dir.join("cpu.max")).ok()?)
            }),
            memory_bytes: tightest(root, path, |dir| {
                parse_memory_limit(&fs::read_to_string(dir.join("memory.max")).ok()?)
            }),
        };
    }
    // v1: a hierarchy per controller (cpu is sometimes mounted with cpuacct).
    let cpu_mount = ["cpu", "cpu,cpuacct", "cpuacct,cpu"]
        .iter()
        .map(|name| root.join(name))
        .find(|mount| mount.join("cpu.cfs_quota_us").exists());
    let cpu_cores = cpu_mount.and_then(|mount| {
        let path = cgroup_path(&membership, Some("cpu")).unwrap_or("/");
        tightest(&mount, path, |dir| {
            parse_cfs_quota(
                &fs::read_to_string(dir.join("cpu.cfs_quota_us")).ok()?,
                &fs::read_to_string(dir.join("cpu.cfs_period_us")).ok()?,
            )
        })
    });
    let memory_path = cgroup_path(&membership, Some("memory")).unwrap_or("/");
    let memory_bytes = tightest(&root.join("memory"), memory_path, |dir| {
        parse_memory_limit(&fs::read_to_string(dir.join("memory.limit_in_bytes")).ok()?)
    });
    CgroupLimits {
        cpu_cores,
        memory_bytes,
    }
}

/// The process's cgroup path in `/proc/self/cgroup` for a v1 `controller`,
/// or the v2 one (`0::/path`) for `None`.
fn cgroup_path<'a>(membership: &'a str, controller: Option<&str>) -> Option<&'a str> {
    membership.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let matches = match controller {
            None => controllers.is_empty(),
            Some(wanted) => controllers.split(',').any(|c| c == wanted),
        };
        matches.then_some(path)
    })
}

/// The smallest value `read` finds from `mount`/`path` up to `mount`.
fn tightest<T: PartialOrd + Copy>(
    mount: &Path,
    path: &str,
    read: impl Fn(&Path) -> Option<T>,
) -> Option<T> {
    let mut dir: PathBuf = mount.join(path.trim_start_matches('/'));
    if !dir.is_dir() {
        dir = mount.to_path_buf();
    }
    let mut best: Option<T> = None;
    loop {
        if let Some(value) = read(&dir) {
            best = Some(match best {
                Some(known) if known <= value => known,
                _ => value,
            });
        }
        if dir == mount || !dir.pop() || !dir.starts_with(mount) {
            return best;
        }
    }
}

/// v2 `cpu.max`: `"$MAX $PERIOD"`, `max` for no limit.
fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period: f64 = fields.next().map_or(Some(100_000.0), |p| p.parse().ok())?;
    cores(quota.parse().ok()?, period)
}

/// v1 `cpu.cfs_quota_us` (-1 for no limit) and `cpu.cfs_period_us`.
fn parse_cfs_quota(quota: &str, period: &str) -> Option<f64> {
    cores(quota.trim().parse().ok()?, period.trim().parse().ok()?)
}

fn cores(quota: f64, period: f64) -> Option<f64> {
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// v2 `memory.max` (`max` for none) or v1 `memory.limit_in_bytes` (a huge
/// number for none).
fn parse_memory_limit(text: &str) -> Option<u64> {
    text.trim()
        .parse()
        .ok()
        .filter(|bytes| (1..UNLIMITED_MEMORY).contains(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quotas_in_cores() {
        for (cpu_max, expected) in [
            ("max 100000\n", None),
            ("50000 100000\n", Some(0.5)),
            ("200000 100000", Some(2.0)),
            ("25000 100000", Some(0.25)),
            ("150000", Some(1.5)),
            ("", None),
            ("garbage 100000", None),
            ("50000 0", None),
        ] {
            assert_eq!(parse_cpu_max(cpu_max), expected, "cpu.max {cpu_max:?}");
        }
        for (quota, period, expected) in [
            ("-1\n", "100000\n", None),
            ("25000\n", "100000\n", Some(0.25)),
            ("100000", "50000", Some(2.0)),
            ("x", "100000", None),
            ("100000", "0", None),
        ] {
            assert_eq!(
                parse_cfs_quota(quota, period),
                expected,
                "cfs {quota:?} / {period:?}"
            );
        }
    }

    #[test]
    fn memory_limits_in_bytes() {
        for (text, expected) in [
            ("max\n", None),
            ("536870912\n", Some(536_870_912)),
            ("9223372036854771712\n", None),
            ("0", None),
            ("", None),
            ("-1", None),
        ] {
            assert_eq!(parse_memory_limit(text), expected, "{text:?}");
        }
    }

    #[test]
    fn the_process_cgroup_of_each_controller() {
        let v1 = "9:name=systemd:/\n4:memory:/ecs/task/container\n2:cpu,cpuacct:/ecs/task\n0::/\n";
        let v2 = "0::/system.slice/app.service\n";
        for (membership, controller, expected) in [
            (v1, Some("memory"), Some("/ecs/task/container")),
            (v1, Some("cpu"), Some("/ecs/task")),
            (v1, Some("cpuacct"), Some("/ecs/task")),
            (v1, Some("pids"), None),
            (v1, None, Some("/")),
            (v2, None, Some("/system.slice/app.service")),
            (v2, Some("memory"), None),
            ("", None, None),
        ] {
            assert_eq!(
                cgroup_path(membership, controller),
                expected,
                "{controller:?} in {membership:?}"
            );
        }
    }

    #[test]
    fn the_tightest_limit_from_the_cgroup_up_counts() {
        let mount = std::env::temp_dir().join(format!("cgroup-test-{}", std::process::id()));
        let container = mount.join("ecs/task/container");
        fs::create_dir_all(&container).unwrap();
        // The task's limit sits on the container's parent; the container's
        // own is unlimited.
        fs::write(mount.join("ecs/task/memory.max"), "536870912\n").unwrap();
        fs::write(container.join("memory.max"), "max\n").unwrap();
        let read =
            |dir: &Path| parse_memory_limit(&fs::read_to_string(dir.join("memory.max")).ok()?);
        assert_eq!(
            tightest(&mount, "/ecs/task/container", read),
            Some(536_870_912)
        );
        // A path not under the mount: the mount is the process's cgroup.
        fs::write(mount.join("memory.max"), "268435456\n").unwrap();
        assert_eq!(
            tightest(&mount, "/docker/elsewhere", read),
            Some(268_435_456)
        );
        assert_eq!(
            tightest(&mount, "/ecs/task/container", read),
            Some(268_435_456)
        );
        fs::remove_dir_all(&mount).unwrap();
    }
}
