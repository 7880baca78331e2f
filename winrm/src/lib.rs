//! The wire protocols between bmc-rotate and the Azure Stack Hub privileged endpoint (PEP):
//! NTLM authentication (raw or inside SPNEGO) and message sealing, WinRM's `multipart/encrypted`
//! framing, WS-Man shell envelopes and the PowerShell Remoting Protocol 2.3 with its CLIXML subset.
//!
//! Everything here is sans-IO — bytes in, bytes out — so the host's native PEP client and the
//! lab's PEP simulator share one implementation and each layer is tested without sockets; the
//! client's conversation (`psrp::client::Session`) takes the time and its random source from
//! the caller. Specifications: MS-NLMP (NTLM), MS-WSMV (WS-Man shells), MS-PSRP (PSRP, CLIXML).

pub mod ntlm;
pub mod psrp;
pub mod sealing;
pub mod spnego;
pub mod wsman;
pub mod xml;
