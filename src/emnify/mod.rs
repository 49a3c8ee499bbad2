//! The emnify REST API: authentication, paged event listing, the event model and its fast decoder.

pub mod budget;
pub mod client;
pub mod clock;
mod fields;
pub mod model;
pub mod scan;

pub use client::{ApiError, Client, ClientSettings, EventPage, PageQuery, RequestObserver, TokenSource};
pub use clock::EmnifyClock;
pub use model::{decode_event, DecodedEvent, Event, IdText, Unreadable, MAX_EVENT_ID, UNREADABLE_REASONS};
pub use scan::{decode_event_list, decode_event_object_or_list, DecodeError};

/// emnify's event retention: older events cannot be fetched.
pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
