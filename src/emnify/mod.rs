//! The emnify REST API: authentication, paged event listing, the event model and its fast decoder.

pub mod client;
mod fields;
pub mod model;
pub mod scan;

pub use client::{ApiError, Client, ClientSettings, EventPage, PageQuery, TokenSource};
pub use model::{decode_event, DecodedEvent, Event, Unreadable, UNREADABLE_REASONS};
pub use scan::{decode_event_list, decode_event_object_or_list, DecodeError};
