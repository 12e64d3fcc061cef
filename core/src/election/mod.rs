//! The engine: [`Election`] and what runs it. The state machine is written here
//! once, as a pure transition function (`machine.rs`); backends only report facts
//! through the `Backend` and `Entry` traits, and the async code around the machine
//! feeds it those facts and performs what it decides.
//!
//! ```text
//! Idle --campaign--> Campaigning --won--> Leader --resign--> Idle
//!                         ^                 |  ^
//!                         |              suspend  reconnect (ownership re-verified)
//!                         |                 v  |
//!                         +----lost------ Suspended
//! Any state --end() by anyone--> Ended (terminal)      Any state --close--> Closed (terminal)
//! ```
//!
//! The files, each importing only those above it in this list:
//!
//! - `handle.rs`: the public [`Election`] and [`Leadership`];
//! - `campaign.rs`: join, wait to win, rejoin, start the hold, requeue;
//! - `monitor.rs`: the election watch (epoch, leader) and [`Observe`];
//! - `hold.rs`: the watch of a won leadership (session health, the entry);
//! - `participant.rs`: one participant: the machine behind its lock, the
//!   effects every input shares, proclaim, resign, close;
//! - `events.rs`: the bounded event queues and [`Events`];
//! - `in_flight.rs`: background joins and withdrawals, counted;
//! - `machine.rs`: the state machine; no I/O, no lock, no clock.

mod campaign;
mod events;
mod handle;
mod hold;
mod in_flight;
mod machine;
mod monitor;
mod participant;
#[cfg(test)]
pub(crate) mod testing;

pub use events::Events;
#[cfg(test)]
pub(crate) use events::EVENT_QUEUE_CAPACITY;
pub use handle::{Election, Leadership};
pub use monitor::Observe;
pub(crate) use participant::Participant;
