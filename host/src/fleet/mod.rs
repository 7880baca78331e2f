//! The fleet: hardware profiles now; inventory, orchestrator, journal and resume as they land.

pub mod inventory;
pub mod profiles;
