//! The open-file limit. Every connection is a file descriptor, and many
//! hosts start processes with a soft limit of 1,024: a modest flood of idle
//! connections then exhausts it and the service cannot accept its own
//! health checks. The soft limit is raised to the hard one at start (ECS
//! task definitions set both through `ulimits`); the figures are logged.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft
/// limit before and after, and the hard limit.
pub(crate) fn raise_to_hard_limit() -> std::io::Result<OpenFileLimits> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let raised = rlimit::increase_nofile_limit(hard)?;
    Ok(OpenFileLimits {
        soft_before: soft,
        soft: raised,
        hard,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenFileLimits {
    pub(crate) soft_before: u64,
    pub(crate) soft: u64,
    pub(crate) hard: u64,
}

/// Raises the limit and says so in the log, or why it could not.
pub fn raise_and_log() {
    match raise_to_hard_limit() {
        Ok(limits) => tracing::info!(
            soft_before = limits.soft_before,
            soft = limits.soft,
            hard = limits.hard,
            "open-file limit"
        ),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let limits = raise_to_hard_limit().expect("getrlimit works here");
        assert_eq!(limits.soft, limits.hard);
        assert!(limits.soft >= limits.soft_before);
        assert_eq!(
            rlimit::getrlimit(rlimit::Resource::NOFILE).expect("read").0,
            limits.hard
        );
    }
}
