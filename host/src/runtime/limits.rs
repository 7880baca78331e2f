//! One memory budget per job, for the guest's linear memory and for what the host keeps on the
//! guest's behalf (log lines, the redactor's needles, session-token handles): a guest cannot
//! make the host hold more than the limit it holds itself to.

/// A job's memory budget. Records what was refused so the runtime can report a memory bomb as
/// such rather than as an anonymous trap.
pub struct JobLimits {
    max_memory: usize,
    linear: usize,
    host: usize,
    pub(crate) refused: Option<usize>,
}

impl JobLimits {
    /// A budget of `max_memory` bytes.
    pub fn new(max_memory: usize) -> JobLimits {
        JobLimits { max_memory, linear: 0, host: 0, refused: None }
    }

    /// Charges `bytes` the host keeps for the guest until the job ends; past the budget the
    /// guest traps, as it would had it grown its own memory.
    pub fn charge(&mut self, bytes: usize) -> wasmtime::Result<()> {
        let wanted = self.linear.saturating_add(self.host).saturating_add(bytes);
        if wanted > self.max_memory {
            return Err(self.refuse(wanted));
        }
        self.host += bytes;
        Ok(())
    }

    /// Bytes the host holds for the guest.
    #[cfg(test)]
    pub fn host_bytes(&self) -> usize {
        self.host
    }

    fn refuse(&mut self, wanted: usize) -> wasmtime::Error {
        self.refused = Some(wanted);
        wasmtime::Error::msg(format!(
            "memory limit of {} MiB exceeded (the plugin asked for {} MiB, {} MiB of it held by the host for the plugin)",
            self.max_memory >> 20,
            wanted.div_ceil(1 << 20),
            self.host.div_ceil(1 << 20)
        ))
    }
}

impl wasmtime::ResourceLimiter for JobLimits {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let wanted = desired.saturating_add(self.host);
        if wanted > self.max_memory {
            return Err(self.refuse(wanted));
        }
        self.linear = desired;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn host_bytes_and_linear_memory_share_one_budget() {
        let mut limits = JobLimits::new(10 << 20);
        assert!(limits.memory_growing(0, 6 << 20, None).unwrap());
        limits.charge(3 << 20).unwrap();
        assert_eq!(limits.host_bytes(), 3 << 20);
        let err = limits.charge(2 << 20).unwrap_err().to_string();
        assert!(err.contains("memory limit of 10 MiB") && err.contains("held by the host"), "{err}");
        assert_eq!(limits.refused, Some(11 << 20));
        assert!(limits.memory_growing(6 << 20, 8 << 20, None).is_err(), "the host's share counts against growth");
        assert!(limits.memory_growing(6 << 20, 7 << 20, None).unwrap());
    }
}
