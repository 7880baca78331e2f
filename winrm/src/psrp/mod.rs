//! PowerShell Remoting Protocol 2.3 (MS-PSRP), the parts a `Set-BmcCredential` call needs.

pub mod client;
pub mod clixml;
pub mod crypto;
pub mod fragment;
pub mod message;
pub mod server;

/// A PSRP decoding or protocol error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PSRP: {0}")]
pub struct PsrpError(pub String);

impl PsrpError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        PsrpError(message.into())
    }
}

/// A runspace pool's state (MS-PSRP 2.2.3.4, RunspacePoolState), as RUNSPACEPOOL_STATE carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunspaceState {
    /// 0.
    BeforeOpen,
    /// 1.
    Opening,
    /// 2: commands may run.
    Opened,
    /// 3.
    Closed,
    /// 4.
    Closing,
    /// 5: the pool failed.
    Broken,
    /// 6.
    NegotiationSent,
    /// 7.
    NegotiationSucceeded,
    /// 8.
    Connecting,
    /// 9.
    Disconnected,
    /// A value MS-PSRP does not define, kept as sent.
    Other(i32),
}

impl RunspaceState {
    /// The wire value.
    pub fn code(self) -> i32 {
        match self {
            RunspaceState::BeforeOpen => 0,
            RunspaceState::Opening => 1,
            RunspaceState::Opened => 2,
            RunspaceState::Closed => 3,
            RunspaceState::Closing => 4,
            RunspaceState::Broken => 5,
            RunspaceState::NegotiationSent => 6,
            RunspaceState::NegotiationSucceeded => 7,
            RunspaceState::Connecting => 8,
            RunspaceState::Disconnected => 9,
            RunspaceState::Other(code) => code,
        }
    }

    /// From the wire value.
    pub fn from_code(code: i32) -> RunspaceState {
        match code {
            0 => RunspaceState::BeforeOpen,
            1 => RunspaceState::Opening,
            2 => RunspaceState::Opened,
            3 => RunspaceState::Closed,
            4 => RunspaceState::Closing,
            5 => RunspaceState::Broken,
            6 => RunspaceState::NegotiationSent,
            7 => RunspaceState::NegotiationSucceeded,
            8 => RunspaceState::Connecting,
            9 => RunspaceState::Disconnected,
            other => RunspaceState::Other(other),
        }
    }
}

/// A pipeline's state (MS-PSRP 2.2.3.5, PSInvocationState), as PIPELINE_STATE carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PipelineState {
    /// 0: also what a pipeline that never reported a state counts as.
    #[default]
    NotStarted,
    /// 1.
    Running,
    /// 2.
    Stopping,
    /// 3.
    Stopped,
    /// 4.
    Completed,
    /// 5: `ExceptionAsErrorRecord` says why.
    Failed,
    /// 6.
    Disconnected,
    /// A value MS-PSRP does not define, kept as sent.
    Other(i32),
}

impl PipelineState {
    /// The wire value.
    pub fn code(self) -> i32 {
        match self {
            PipelineState::NotStarted => 0,
            PipelineState::Running => 1,
            PipelineState::Stopping => 2,
            PipelineState::Stopped => 3,
            PipelineState::Completed => 4,
            PipelineState::Failed => 5,
            PipelineState::Disconnected => 6,
            PipelineState::Other(code) => code,
        }
    }

    /// From the wire value.
    pub fn from_code(code: i32) -> PipelineState {
        match code {
            0 => PipelineState::NotStarted,
            1 => PipelineState::Running,
            2 => PipelineState::Stopping,
            3 => PipelineState::Stopped,
            4 => PipelineState::Completed,
            5 => PipelineState::Failed,
            6 => PipelineState::Disconnected,
            other => PipelineState::Other(other),
        }
    }

    /// The pipeline will send nothing more: Stopped and every later value (an unknown value
    /// above them too, so a newer server's final state does not leave the client polling).
    pub fn is_final(self) -> bool {
        self.code() >= 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_keep_their_wire_values() {
        for code in -1..12 {
            assert_eq!(RunspaceState::from_code(code).code(), code);
            assert_eq!(PipelineState::from_code(code).code(), code);
        }
        assert_eq!(RunspaceState::from_code(2), RunspaceState::Opened);
        assert_eq!(PipelineState::from_code(5), PipelineState::Failed);
        assert!(!PipelineState::Running.is_final() && PipelineState::Stopped.is_final());
        assert!(PipelineState::Other(7).is_final() && !PipelineState::Other(-1).is_final());
    }
}
