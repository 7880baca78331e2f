//! The fleet: the inventory, hardware profiles, the members they make, the rotation itself, its
//! journal and the resume that converges from it.

pub mod audit;
pub mod cancel;
pub mod engine;
pub mod escrow;
pub mod inventory;
pub mod journal;
pub mod ledger;
pub mod lock;
pub mod members;
pub mod profiles;
