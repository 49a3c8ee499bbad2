//! The emnify REST API: authentication, paged event listing, and the event model.

pub mod client;
pub mod model;

pub use client::{ApiError, Client, ClientSettings, EventPage, PageQuery, TokenSource};
pub use model::{
    decode_event, decode_event_list, decode_event_object_or_list, DecodedEvent, Event, Unreadable, UNREADABLE_REASONS,
};
