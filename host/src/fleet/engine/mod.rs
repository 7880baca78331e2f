//! The engine: one state machine for `rotate` and `resume`.
//!
//! Per BMC: `unknown` until a login tells → `old` or `new`; a change is journalled `changing`
//! before it is sent and `holds` after it is verified, so a lost answer leaves `unknown`, which
//! the next command verifies (each password once, within the failed-login ledger).
//!
//! Per run: planned → [`preflight`] (every BMC, the PEP, the new password) → [`Preflighted`]
//! (its plan shown; a dry run ends here) → [`Preflighted::execute`] → converging forward, or back
//! once → PEP → done. [`resume`] enters the same converging from the journal's state
//! ([`state`]) after verifying what each BMC holds.

mod bmcs;
mod converge;
mod plan;
mod preflight;
mod report;
mod resume;
mod snmp;
pub mod state;
mod steps;

pub use converge::PepStep;
pub use plan::{ChangeOrder, Plan, PlannedBmc, PlannedPep};
pub use preflight::{Preflight, Preflighted, RotationOptions, RunSecrets, preflight};
pub use report::{BmcReport, BmcResult, Observer, Phase, RunOutcome, RunReport, Silent};
pub use resume::{ResumeError, ResumeOptions, resume};
pub use snmp::{SnmpCheck, SnmpMode};
pub use state::{LedgerRow, NO_START, Recovery, RunState, state, state_of};
pub use steps::name;
