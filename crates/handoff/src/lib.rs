//! Handoffs: turning an analysed call into the right records in the right tools, exactly
//! once in effect, or into a review item with its reason.
//!
//! - [`kind`]: the integrations and their configs (credentials redacted in `Debug`);
//! - [`payload`]: the action-ready content every connector renders;
//! - [`connector`]: the trait each integration implements, and the HTTP helpers they share;
//! - [`connectors`]: one small module per integration;
//! - [`policy`]: which handoffs a call gets; [`repeat`]: whether a call repeats an issue
//!   already handed off; [`delivery`]: enrichment waits, weak matches and retry decisions.

pub mod connector;
pub mod connectors;
pub mod delivery;
pub mod kind;
pub mod payload;
pub mod policy;
pub mod repeat;
pub mod rules;

pub use connector::{AttemptLog, Connector, Delivered, DeliveryError, HandoffRequest};
pub use kind::IntegrationKind;
pub use payload::HandoffPayload;
